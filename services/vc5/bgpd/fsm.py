"""The BGP finite state machine (RFC 4271 §8) as a pure state/event table.

`step(state, event)` returns (next state, actions). The session (session.py)
turns events (timers, TCP, received messages) into calls of `step` and carries
out the actions in order; nothing here does I/O, so the table is unit-tested
on its own. Any (state, event) pair missing from the table is an FSM error:
RFC 4271 §6.6 — NOTIFICATION Finite State Machine Error with the subcode of
RFC 6608 for the state, then the connection is dropped.

vc5-bgpd has no DelayOpen; the automatic restart after an error is the
ConnectRetry timer (the session backs off). The table describes the session's
one connection: a second one from the peer (an RFC 4271 §6.8 collision) is
handled beside it until resolved (transport.Collisions).
"""

import enum


class State(str, enum.Enum):
    IDLE = "Idle"
    CONNECT = "Connect"
    ACTIVE = "Active"
    OPEN_SENT = "OpenSent"
    OPEN_CONFIRM = "OpenConfirm"
    ESTABLISHED = "Established"


class Event(str, enum.Enum):
    START = "Start"                         # ManualStart / AutomaticStart (active)
    START_PASSIVE = "StartPassive"          # ManualStart_with_PassiveTcpEstablishment
    STOP = "Stop"                           # ManualStop (admin shutdown, peer removed, reset)
    CONNECT_RETRY_EXPIRES = "ConnectRetryTimerExpires"
    HOLD_TIMER_EXPIRES = "HoldTimerExpires"
    KEEPALIVE_TIMER_EXPIRES = "KeepaliveTimerExpires"
    TCP_CONNECTED = "TcpConnectionConfirmed"   # outgoing connected or incoming accepted
    TCP_FAILS = "TcpConnectionFails"
    OPEN = "BGPOpen"                        # a valid OPEN
    HEADER_ERROR = "BGPHeaderErr"
    OPEN_ERROR = "BGPOpenMsgErr"
    NOTIFICATION = "NotifMsg"
    KEEPALIVE = "KeepAliveMsg"
    UPDATE = "UpdateMsg"
    UPDATE_ERROR = "UpdateMsgErr"
    ROUTE_REFRESH = "RouteRefreshMsg"
    RIB_CHANGED = "RibChanged"              # local: the Adj-RIB-Out should change


class Action(str, enum.Enum):
    CONNECT = "connect"                     # start an outgoing TCP connection
    START_CONNECT_RETRY = "start_connect_retry"
    STOP_CONNECT_RETRY = "stop_connect_retry"
    SEND_OPEN = "send_open"
    SEND_KEEPALIVE = "send_keepalive"
    SEND_NOTIFICATION = "send_notification"  # the error that caused the event (or Cease for STOP)
    SEND_FSM_ERROR = "send_fsm_error"        # 5/x for the current state (RFC 6608)
    START_HOLD_LARGE = "start_hold_large"    # 4 minutes while waiting for OPEN (RFC 4271 §8.2.2)
    NEGOTIATE = "negotiate"                  # hold time, capabilities from the OPEN
    RESTART_HOLD = "restart_hold"
    START_KEEPALIVE = "start_keepalive"
    RESTART_KEEPALIVE = "restart_keepalive"
    ESTABLISHED = "established"              # count it, mark the time
    SYNC_RIB = "sync_rib"                    # send the Adj-RIB-Out difference
    RESEND_RIB = "resend_rib"                # route refresh: send the whole Adj-RIB-Out again
    PROCESS_UPDATE = "process_update"
    DROP = "drop"                            # close TCP, stop timers, clear the Adj-RIB-Out


S, E, A = State, Event, Action

_ERROR_EXIT = (A.SEND_NOTIFICATION, A.DROP, A.START_CONNECT_RETRY)
_FAIL_EXIT = (A.DROP, A.START_CONNECT_RETRY)
_STOP = (S.IDLE, (A.SEND_NOTIFICATION, A.DROP, A.STOP_CONNECT_RETRY))

TABLE = {
    (S.IDLE, E.START): (S.CONNECT, (A.CONNECT,)),
    (S.IDLE, E.START_PASSIVE): (S.ACTIVE, ()),
    (S.IDLE, E.STOP): (S.IDLE, (A.STOP_CONNECT_RETRY,)),
    (S.IDLE, E.CONNECT_RETRY_EXPIRES): (S.CONNECT, (A.CONNECT,)),
    (S.IDLE, E.RIB_CHANGED): (S.IDLE, ()),

    (S.CONNECT, E.TCP_CONNECTED): (S.OPEN_SENT, (A.STOP_CONNECT_RETRY, A.SEND_OPEN, A.START_HOLD_LARGE)),
    (S.CONNECT, E.TCP_FAILS): (S.ACTIVE, _FAIL_EXIT),
    (S.CONNECT, E.CONNECT_RETRY_EXPIRES): (S.CONNECT, (A.DROP, A.CONNECT)),
    (S.CONNECT, E.STOP): (S.IDLE, (A.DROP, A.STOP_CONNECT_RETRY)),
    (S.CONNECT, E.RIB_CHANGED): (S.CONNECT, ()),

    (S.ACTIVE, E.TCP_CONNECTED): (S.OPEN_SENT, (A.STOP_CONNECT_RETRY, A.SEND_OPEN, A.START_HOLD_LARGE)),
    (S.ACTIVE, E.CONNECT_RETRY_EXPIRES): (S.CONNECT, (A.CONNECT,)),
    (S.ACTIVE, E.TCP_FAILS): (S.ACTIVE, _FAIL_EXIT),
    (S.ACTIVE, E.STOP): (S.IDLE, (A.DROP, A.STOP_CONNECT_RETRY)),
    (S.ACTIVE, E.RIB_CHANGED): (S.ACTIVE, ()),

    (S.OPEN_SENT, E.OPEN): (S.OPEN_CONFIRM,
                            (A.NEGOTIATE, A.SEND_KEEPALIVE, A.START_KEEPALIVE, A.RESTART_HOLD)),
    (S.OPEN_SENT, E.OPEN_ERROR): (S.IDLE, _ERROR_EXIT),
    (S.OPEN_SENT, E.HEADER_ERROR): (S.IDLE, _ERROR_EXIT),
    (S.OPEN_SENT, E.HOLD_TIMER_EXPIRES): (S.IDLE, _ERROR_EXIT),
    (S.OPEN_SENT, E.TCP_FAILS): (S.ACTIVE, _FAIL_EXIT),     # RFC 4271 §8.2.2: OpenSent -> Active
    (S.OPEN_SENT, E.NOTIFICATION): (S.IDLE, _FAIL_EXIT),
    (S.OPEN_SENT, E.STOP): _STOP,
    (S.OPEN_SENT, E.RIB_CHANGED): (S.OPEN_SENT, ()),

    (S.OPEN_CONFIRM, E.KEEPALIVE): (S.ESTABLISHED, (A.RESTART_HOLD, A.ESTABLISHED, A.SYNC_RIB)),
    (S.OPEN_CONFIRM, E.KEEPALIVE_TIMER_EXPIRES): (S.OPEN_CONFIRM, (A.SEND_KEEPALIVE, A.RESTART_KEEPALIVE)),
    (S.OPEN_CONFIRM, E.HOLD_TIMER_EXPIRES): (S.IDLE, _ERROR_EXIT),
    (S.OPEN_CONFIRM, E.HEADER_ERROR): (S.IDLE, _ERROR_EXIT),
    (S.OPEN_CONFIRM, E.OPEN_ERROR): (S.IDLE, _ERROR_EXIT),
    (S.OPEN_CONFIRM, E.TCP_FAILS): (S.IDLE, _FAIL_EXIT),
    (S.OPEN_CONFIRM, E.NOTIFICATION): (S.IDLE, _FAIL_EXIT),
    (S.OPEN_CONFIRM, E.STOP): _STOP,
    (S.OPEN_CONFIRM, E.RIB_CHANGED): (S.OPEN_CONFIRM, ()),

    (S.ESTABLISHED, E.KEEPALIVE): (S.ESTABLISHED, (A.RESTART_HOLD,)),
    (S.ESTABLISHED, E.UPDATE): (S.ESTABLISHED, (A.RESTART_HOLD, A.PROCESS_UPDATE)),
    (S.ESTABLISHED, E.ROUTE_REFRESH): (S.ESTABLISHED, (A.RESTART_HOLD, A.RESEND_RIB)),
    (S.ESTABLISHED, E.KEEPALIVE_TIMER_EXPIRES): (S.ESTABLISHED, (A.SEND_KEEPALIVE, A.RESTART_KEEPALIVE)),
    (S.ESTABLISHED, E.RIB_CHANGED): (S.ESTABLISHED, (A.SYNC_RIB,)),
    (S.ESTABLISHED, E.HOLD_TIMER_EXPIRES): (S.IDLE, _ERROR_EXIT),
    (S.ESTABLISHED, E.HEADER_ERROR): (S.IDLE, _ERROR_EXIT),
    (S.ESTABLISHED, E.UPDATE_ERROR): (S.IDLE, _ERROR_EXIT),
    (S.ESTABLISHED, E.TCP_FAILS): (S.IDLE, _FAIL_EXIT),
    (S.ESTABLISHED, E.NOTIFICATION): (S.IDLE, _FAIL_EXIT),
    (S.ESTABLISHED, E.STOP): _STOP,
}

# RFC 6608 subcodes of Finite State Machine Error by state
FSM_ERROR_SUBCODE = {S.OPEN_SENT: 1, S.OPEN_CONFIRM: 2, S.ESTABLISHED: 3}

# an event that merely arrives late (a timer racing a state change) is ignored, not an error
_IGNORED = {E.KEEPALIVE_TIMER_EXPIRES, E.HOLD_TIMER_EXPIRES, E.CONNECT_RETRY_EXPIRES, E.START,
            E.START_PASSIVE, E.TCP_FAILS, E.RIB_CHANGED, E.STOP}
# messages that can only come over a connection
_MESSAGES = {E.OPEN, E.HEADER_ERROR, E.OPEN_ERROR, E.NOTIFICATION, E.KEEPALIVE, E.UPDATE, E.UPDATE_ERROR,
             E.ROUTE_REFRESH, E.TCP_CONNECTED}


def step(state: State, event: Event):
    """(next state, actions) for `event` in `state` (RFC 4271 §8.2.2)."""
    try:
        return TABLE[(state, event)]
    except KeyError:
        pass
    if event in _MESSAGES and state in FSM_ERROR_SUBCODE:
        # unexpected message on an open connection: FSM error, restart
        return S.IDLE, (A.SEND_FSM_ERROR, A.DROP, A.START_CONNECT_RETRY)
    if event in _MESSAGES:
        # no connection in this state: anything that claims one is dropped
        return state, (A.DROP,) if event == E.TCP_CONNECTED else ()
    if event in _IGNORED:
        return state, ()
    raise AssertionError(f"unhandled FSM event {event} in {state}")
