"""The FSM table (RFC 4271 §8): the paths a session takes, and that surprises are FSM errors."""

import pytest

from vc5.bgpd.fsm import Action as A
from vc5.bgpd.fsm import Event as E
from vc5.bgpd.fsm import State as S
from vc5.bgpd.fsm import step


def run(state, *events):
    actions = []
    for ev in events:
        state, acts = step(state, ev)
        actions.append(acts)
    return state, actions


def test_active_open_to_established_sends_rib():
    state, acts = run(S.IDLE, E.START, E.TCP_CONNECTED, E.OPEN, E.KEEPALIVE)
    assert state == S.ESTABLISHED
    assert acts[0] == (A.CONNECT,)
    assert A.SEND_OPEN in acts[1]
    assert acts[2][:2] == (A.NEGOTIATE, A.SEND_KEEPALIVE)
    assert A.SYNC_RIB in acts[3] and A.ESTABLISHED in acts[3]


def test_passive_waits_in_active():
    state, acts = run(S.IDLE, E.START_PASSIVE)
    assert state == S.ACTIVE and acts == [()]
    assert step(S.ACTIVE, E.TCP_CONNECTED)[0] == S.OPEN_SENT


def test_connect_failure_backs_off_then_retries():
    state, acts = run(S.IDLE, E.START, E.TCP_FAILS, E.CONNECT_RETRY_EXPIRES)
    assert state == S.CONNECT
    assert A.START_CONNECT_RETRY in acts[1]
    assert acts[2] == (A.CONNECT,)


@pytest.mark.parametrize("state", [S.OPEN_SENT, S.OPEN_CONFIRM, S.ESTABLISHED])
def test_errors_send_notification_and_restart(state):
    nxt, acts = step(state, E.HOLD_TIMER_EXPIRES)
    assert nxt == S.IDLE and acts[0] == A.SEND_NOTIFICATION
    assert A.DROP in acts and A.START_CONNECT_RETRY in acts


@pytest.mark.parametrize("state,event", [(S.OPEN_SENT, E.KEEPALIVE), (S.OPEN_SENT, E.UPDATE),
                                         (S.OPEN_CONFIRM, E.UPDATE), (S.ESTABLISHED, E.OPEN)])
def test_unexpected_message_is_fsm_error(state, event):
    assert step(state, event) == (S.IDLE, (A.SEND_FSM_ERROR, A.DROP, A.START_CONNECT_RETRY))


def test_notification_received_drops_without_reply():
    nxt, acts = step(S.ESTABLISHED, E.NOTIFICATION)
    assert nxt == S.IDLE and A.SEND_NOTIFICATION not in acts and A.DROP in acts


def test_established_events():
    assert step(S.ESTABLISHED, E.RIB_CHANGED) == (S.ESTABLISHED, (A.SYNC_RIB,))
    assert step(S.ESTABLISHED, E.ROUTE_REFRESH)[1][-1] == A.RESEND_RIB
    assert step(S.ESTABLISHED, E.STOP)[0] == S.IDLE


def test_stale_timers_are_ignored():
    for state in S:
        for ev in (E.KEEPALIVE_TIMER_EXPIRES, E.RIB_CHANGED, E.STOP):
            step(state, ev)          # never raises
    assert step(S.IDLE, E.KEEPALIVE_TIMER_EXPIRES) == (S.IDLE, ())


def test_every_state_event_pair_is_defined():
    for state in S:
        for ev in E:
            nxt, acts = step(state, ev)
            assert isinstance(nxt, S) and all(isinstance(a, A) for a in acts)
