"""The BFD session state machine (RFC 5880 §6.8) with a fake clock: no sockets, no sleeping."""

import pytest

from vc5.bgpd.bfd.packet import (ADMIN_DOWN, DIAG_ADMIN_DOWN, DIAG_NEIGHBOR_DOWN, DIAG_NONE,
                                 DIAG_TIME_EXPIRED,
                                 DOWN, INIT, UP, Control, decode)
from vc5.bgpd.bfd.session import SLOW_TX_US, Session


def session(interval_ms=100, mult=3, discr=11, now=0.0, rand=lambda: 0.5):
    return Session(discr, interval_ms * 1000, mult, now, rand)


def remote(state, mine=22, yours=11, tx=100_000, rx=100_000, mult=3, poll=False, final=False):
    return Control(state=state, detect_mult=mult, my_discriminator=mine, your_discriminator=yours,
                   desired_min_tx=tx, required_min_rx=rx, poll=poll, final=final)


def up_session(now=0.0):
    s = session(now=now)
    s.receive(remote(DOWN, yours=0), now)
    s.receive(remote(UP), now)
    assert s.state == UP
    return s


class Link:
    """Two sessions joined by a lossless wire; step() advances the fake clock to the next deadline."""

    def __init__(self, a, b):
        self.a, self.b, self.now, self.sent = a, b, 0.0, []

    def step(self):
        self.now = max(self.now, min(self.a.deadline(), self.b.deadline()))
        for x, y in ((self.a, self.b), (self.b, self.a)):
            x.expire(self.now)
            while True:
                p = x.due_packet(self.now)
                if p is None:
                    break
                self.sent.append((self.now, x, p))
                y.receive(decode(p.encode()), self.now)

    def run_until(self, cond, limit=60.0):
        while not cond():
            assert self.now < limit, "condition never met"
            self.step()


# ---------------------------------------------------------------- §6.8.6 state table

def test_down_receiving_down_goes_init_then_up_on_init():
    s = session()
    t = s.receive(remote(DOWN, yours=0), 1.0)
    assert (t.old, t.new) == (DOWN, INIT) and s.remote_discr == 22
    t = s.receive(remote(INIT), 1.1)
    assert (t.old, t.new, s.local_diag) == (INIT, UP, DIAG_NONE)


def test_down_receiving_init_goes_straight_up():
    s = session()
    assert s.receive(remote(INIT), 1.0).new == UP


def test_down_receiving_up_stays_down():
    s = session()
    assert s.receive(remote(UP), 1.0) is None and s.state == DOWN


def test_init_stays_init_on_down():
    s = session()
    s.receive(remote(DOWN, yours=0), 0)
    assert s.receive(remote(DOWN, yours=0), 0.1) is None and s.state == INIT


def test_up_receiving_down_goes_down_with_neighbor_signaled():
    s = up_session()
    t = s.receive(remote(DOWN, yours=0), 0.5)
    assert (t.old, t.new, t.diag) == (UP, DOWN, DIAG_NEIGHBOR_DOWN) and s.down_count == 1


@pytest.mark.parametrize("start", ["init", "up"])
def test_remote_admin_down_takes_us_down(start):
    s = up_session() if start == "up" else session()
    if start == "init":
        s.receive(remote(DOWN, yours=0), 0)
    t = s.receive(remote(ADMIN_DOWN, yours=0), 0.5)
    assert t.new == DOWN and t.diag == DIAG_NEIGHBOR_DOWN and s.remote_state == ADMIN_DOWN


def test_remote_admin_down_while_down_changes_nothing():
    s = session()
    assert s.receive(remote(ADMIN_DOWN, yours=0), 0.5) is None and s.local_diag == DIAG_NONE


def test_local_admin_down_discards_everything():
    s = up_session()
    t = s.admin_down(1.0)
    assert (t.new, t.diag) == (ADMIN_DOWN, DIAG_ADMIN_DOWN)
    assert s.receive(remote(INIT), 1.1) is None and s.state == ADMIN_DOWN
    assert s.packet().state == ADMIN_DOWN and s.packet().diag == DIAG_ADMIN_DOWN


def test_packet_for_another_discriminator_is_refused():
    with pytest.raises(ValueError):
        session().receive(remote(UP, yours=99), 0)


# ---------------------------------------------------------------- detection time (§6.8.4)

def test_detection_time_is_remote_mult_times_slower_of_our_rx_and_their_tx():
    s = session(interval_ms=100)
    s.receive(remote(DOWN, yours=0, tx=300_000, mult=4), 0)
    assert s.detection_time() == pytest.approx(1.2)
    s.receive(remote(INIT, tx=50_000, mult=2), 0)
    assert s.detection_time() == pytest.approx(0.2)          # our Required Min RX (100 ms) is slower


def test_silence_for_the_detection_time_takes_up_down():
    s = up_session(now=10.0)
    assert s.expire(10.299) is None and s.state == UP
    t = s.expire(10.3)
    assert (t.old, t.new, t.diag) == (UP, DOWN, DIAG_TIME_EXPIRED)
    assert s.remote_discr == 0 and s.packet().your_discriminator == 0
    assert s.packet().diag == DIAG_TIME_EXPIRED


def test_each_packet_restarts_detection():
    s = up_session()
    for i in range(1, 20):
        s.receive(remote(UP), i * 0.25)
        assert s.expire(i * 0.25 + 0.29) is None
    assert s.state == UP


def test_expiry_in_down_forgets_the_remote_discriminator_without_a_transition():
    s = session()
    s.receive(remote(DOWN, yours=0, tx=1_000_000), 0)   # -> Init
    s.receive(remote(ADMIN_DOWN, yours=0, tx=1_000_000), 0.1)   # -> Down
    assert s.expire(3.2) is None and s.remote_discr == 0


def test_no_detection_before_any_packet():
    s = session()
    assert s.expire(1e6) is None and s.detect_deadline() is None


# ---------------------------------------------------------------- transmission (§6.8.3, §6.8.7)

def test_slow_tx_while_not_up_then_configured_interval_announced_by_poll():
    s = session(interval_ms=100)
    first = s.due_packet(0.0)
    assert first.desired_min_tx == SLOW_TX_US and first.required_min_rx == 100_000 and not first.poll
    s.receive(remote(DOWN, yours=0), 0.1)
    s.receive(remote(INIT), 0.2)
    assert s.state == UP
    p = s.due_packet(0.2)                      # the decrease applies at once: the packet goes now
    assert p is not None and p.desired_min_tx == 100_000 and p.poll
    assert s.tx_interval() == pytest.approx(0.1)
    s.receive(remote(UP, final=True), 0.25)
    assert not s.polling and not s.due_packet(1.0).poll


def test_going_down_returns_to_one_second():
    s = up_session()
    s.receive(remote(UP, final=True), 0.0)
    s.expire(1.0)
    assert s.state == DOWN and s.desired_tx == SLOW_TX_US and s.tx_interval() == pytest.approx(1.0)


def test_poll_is_answered_with_final_at_once_without_poll():
    s = up_session()
    s.due_packet(0.0)
    s.receive(remote(UP, poll=True), 0.01)
    assert s.deadline() == 0.0
    p = s.due_packet(0.01)
    assert p.final and not p.poll


def test_tx_interval_respects_the_remote_required_min_rx():
    s = up_session()
    s.receive(remote(UP, rx=500_000), 0.0)
    assert s.tx_interval() == pytest.approx(0.5)


def test_nothing_periodic_when_remote_required_min_rx_is_zero():
    s = up_session()
    s.receive(remote(UP, rx=0), 0.0)
    assert s.due_packet(100.0) is None and s.deadline() == pytest.approx(0.3)   # only the detection


@pytest.mark.parametrize("mult, low, high", [(3, 0.75, 1.0), (1, 0.75, 0.9)])
def test_jitter_bounds(mult, low, high):
    for r, expect in ((0.0, low), (0.999999, high)):
        s = Session(1, 100_000, mult, 0.0, lambda: r)
        s.receive(remote(INIT, yours=1), 0.0)
        s.receive(remote(UP, yours=1, final=True), 0.0)
        s.due_packet(0.0)
        assert s.next_tx == pytest.approx(0.1 * expect, abs=1e-6)


def test_an_increase_while_up_waits_for_final():
    s = up_session()
    s.receive(remote(UP, final=True), 0.0)
    s.interval_us = 400_000
    s._set_desired_tx(400_000, 0.0)            # what a new configured interval does while Up
    assert s.desired_tx == 400_000 and s.tx_in_use == 100_000 and s.packet().poll
    s.receive(remote(UP, final=True), 0.1)
    assert s.tx_in_use == 400_000 and s.tx_interval() == pytest.approx(0.4)


# ---------------------------------------------------------------- two sessions on a fake wire

def test_two_sessions_come_up_and_settle_at_the_configured_rate():
    link = Link(session(discr=1, rand=lambda: 0.9), session(discr=2, rand=lambda: 0.1))
    link.run_until(lambda: link.a.state == UP and link.b.state == UP)
    assert link.now < 2.5
    link.run_until(lambda: not link.a.polling and not link.b.polling)
    start, n = link.now, len(link.sent)
    link.run_until(lambda: link.now > start + 10)
    rate = (len(link.sent) - n) / 10
    assert 20 <= rate <= 2 / 0.075 + 1          # two senders, 75..100 % of 100 ms
    assert link.a.up_count == 1 and link.b.down_count == 0


def test_a_silent_side_is_detected_within_the_detection_time():
    a, b = session(discr=1), session(discr=2)
    link = Link(a, b)
    link.run_until(lambda: a.state == UP and b.state == UP)
    link.run_until(lambda: not a.polling and not b.polling)
    stop = link.now
    b_deadline = b.deadline

    def frozen():                               # b stops sending (SIGSTOP): a sends on, b stays silent
        return float("inf")
    b.deadline = frozen
    while a.state == UP:
        link.now = a.deadline()
        a.expire(link.now)
        a.due_packet(link.now)
    assert a.local_diag == DIAG_TIME_EXPIRED
    assert link.now - stop <= a.detection_time() + 1e-9
    b.deadline = b_deadline
