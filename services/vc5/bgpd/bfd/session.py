"""One BFD session's state machine (RFC 5880 asynchronous mode, no Echo, no Demand), pure.

Nothing here reads a clock, a socket or a random source: the caller passes `now`
(seconds, monotonic) and a `rand()` in [0, 1); transport.py drives it. The
state variables are those of §6.8.1 (bfd.SessionState, bfd.RemoteDiscr, ...).

Invariants:
  * While the session is not Up the interval we advertise as Desired Min TX is
    at least 1 s (§6.8.3); once Up it is the configured interval, announced
    with a Poll Sequence (§6.5) that ends when a packet with Final arrives.
  * The interval we transmit at is max(our Desired Min TX, the remote's
    Required Min RX), less 0..25 % jitter (10..25 % with Detect Mult 1, §6.8.7);
    nothing is sent periodically while the remote's Required Min RX is 0.
    An increase of our Desired Min TX while Up takes effect only when the Poll
    Sequence ends (§6.8.3); a decrease at once.
  * The Detection Time (§6.8.4) is the remote's Detect Mult times
    max(our Required Min RX, the remote's last Desired Min TX); it runs from the
    last valid packet. Expiry in Init or Up: Down, diagnostic 1; in any state
    bfd.RemoteDiscr is forgotten (§6.8.1).
  * A packet with Poll is answered with Final at once, outside the schedule (§6.5).
"""

from dataclasses import dataclass
from typing import Optional

from .packet import (ADMIN_DOWN, DIAG_ADMIN_DOWN, DIAG_NEIGHBOR_DOWN, DIAG_NONE, DIAG_TIME_EXPIRED, DOWN,
                     INIT, STATE_NAMES, UP, Control)

SLOW_TX_US = 1_000_000                 # §6.8.3: Desired Min TX while not Up


@dataclass(frozen=True)
class Transition:
    old: int
    new: int
    diag: int

    def __str__(self):
        return f"{STATE_NAMES[self.old]} -> {STATE_NAMES[self.new]}"


class Session:
    def __init__(self, local_discr: int, interval_us: int, multiplier: int, now: float, rand):
        if not 0 < local_discr < 2 ** 32:
            raise ValueError("a local discriminator is 1..2^32-1 (RFC 5880 §6.8.1)")
        self.local_discr = local_discr
        self.interval_us = interval_us            # configured Desired Min TX (when Up) and Required Min RX
        self.detect_mult = multiplier
        self.rand = rand
        self.state = DOWN
        self.remote_state = DOWN
        self.local_diag = DIAG_NONE
        self.remote_discr = 0
        self.remote_min_rx = 1                    # §6.8.1: initialised to 1 (µs)
        self.remote_desired_tx = 0
        self.remote_detect_mult = 0
        self.desired_tx = SLOW_TX_US              # advertised
        self.tx_in_use = SLOW_TX_US               # what the transmit schedule uses (may lag an increase)
        self.polling = False
        self.final_due = False                    # a Final owed to the remote's Poll
        self.last_rx: Optional[float] = None
        self.next_tx = now                        # the first packet goes at once
        self.since = now
        self.up_count = 0
        self.down_count = 0                       # Up -> anything else

    # ------------------------------------------------------------ derived values

    def tx_interval(self) -> float:
        """Seconds between periodic packets, before jitter (§6.8.7)."""
        return max(self.tx_in_use, self.remote_min_rx) / 1e6

    def detection_time(self) -> float:
        """Seconds (§6.8.4, asynchronous mode); 0 until a packet has been received."""
        if not self.remote_detect_mult:
            return 0.0
        return self.remote_detect_mult * max(self.interval_us, self.remote_desired_tx) / 1e6

    def detect_deadline(self) -> Optional[float]:
        if self.last_rx is None or self.remote_discr == 0:
            return None
        return self.last_rx + self.detection_time()

    def deadline(self) -> float:
        """When the caller must next call due_packet()/expire()."""
        when = self.next_tx if self.remote_min_rx else float("inf")
        if self.final_due:
            return 0.0
        d = self.detect_deadline()
        return when if d is None else min(when, d)

    # ------------------------------------------------------------ changes of state

    def _set_state(self, new: int, diag: int, now: float) -> Optional[Transition]:
        if new == self.state:
            return None
        t = Transition(self.state, new, diag)
        if self.state == UP:
            self.down_count += 1
        self.state, self.local_diag, self.since = new, diag, now
        if new == UP:
            self.up_count += 1
            self._set_desired_tx(self.interval_us, now)
        else:
            self._set_desired_tx(max(SLOW_TX_US, self.interval_us), now)
        return t

    def _set_desired_tx(self, value: int, now: float):
        if value == self.desired_tx:
            return
        self.desired_tx = value
        self.polling = True                      # §6.8.3: announced by a Poll Sequence
        if value < self.tx_in_use or self.state != UP:
            self.tx_in_use = value               # a decrease (or not Up) applies at once
            self.next_tx = min(self.next_tx, now)

    def admin_down(self, now: float) -> Optional[Transition]:
        """Stop the session on purpose (§6.8.16): the remote sees AdminDown, diagnostic 7."""
        return self._set_state(ADMIN_DOWN, DIAG_ADMIN_DOWN, now)

    def expire(self, now: float) -> Optional[Transition]:
        """The Detection Time check; a Transition if it expired in Init or Up."""
        d = self.detect_deadline()
        if d is None or now < d:
            return None
        self.remote_discr = 0                    # §6.8.1
        self.remote_state = DOWN
        self.last_rx = None
        if self.state in (INIT, UP):
            return self._set_state(DOWN, DIAG_TIME_EXPIRED, now)
        return None

    def receive(self, p: Control, now: float) -> Optional[Transition]:
        """A packet that passed packet.decode() and is addressed to this session (§6.8.6)."""
        if p.your_discriminator and p.your_discriminator != self.local_discr:
            raise ValueError("packet for another session")     # transport.py selects by discriminator
        if self.state == ADMIN_DOWN:
            return None                          # §6.8.6: discard
        self.remote_discr = p.my_discriminator
        self.remote_state = p.state
        self.remote_desired_tx = p.desired_min_tx
        self.remote_detect_mult = p.detect_mult
        if p.required_min_rx != self.remote_min_rx:
            if p.required_min_rx and (not self.remote_min_rx or p.required_min_rx < self.remote_min_rx):
                self.next_tx = min(self.next_tx, now)   # the remote may want packets sooner
            self.remote_min_rx = p.required_min_rx
        if p.final and self.polling:
            self.polling = False                 # §6.5: Poll Sequence over; the new interval applies
            self.tx_in_use = self.desired_tx
        self.last_rx = now
        if p.poll:
            self.final_due = True
        return self._next_state(p.state, now)

    def _next_state(self, remote: int, now: float) -> Optional[Transition]:
        """The state table of §6.8.6."""
        if remote == ADMIN_DOWN:
            return self._set_state(DOWN, DIAG_NEIGHBOR_DOWN, now) if self.state != DOWN else None
        if self.state == DOWN:
            if remote == DOWN:
                return self._set_state(INIT, DIAG_NONE, now)
            if remote == INIT:
                return self._set_state(UP, DIAG_NONE, now)
        elif self.state == INIT:
            if remote in (INIT, UP):
                return self._set_state(UP, DIAG_NONE, now)
        elif remote == DOWN:                     # Up
            return self._set_state(DOWN, DIAG_NEIGHBOR_DOWN, now)
        return None

    # ------------------------------------------------------------ transmission

    def packet(self, final: bool = False) -> Control:
        return Control(state=self.state, diag=self.local_diag, detect_mult=self.detect_mult,
                       my_discriminator=self.local_discr, your_discriminator=self.remote_discr,
                       desired_min_tx=self.desired_tx, required_min_rx=self.interval_us,
                       required_min_echo_rx=0, poll=self.polling and not final, final=final)

    def due_packet(self, now: float) -> Optional[Control]:
        """The packet to send now, if any; schedules the next periodic one."""
        if self.final_due:
            self.final_due = False
            return self.packet(final=True)
        if not self.remote_min_rx or now < self.next_tx:
            return None
        # §6.8.7: 0..25 % less than the interval; 10..25 % less with Detect Mult 1
        low, high = (0.75, 0.9) if self.detect_mult == 1 else (0.75, 1.0)
        self.next_tx = now + self.tx_interval() * (low + (high - low) * self.rand())
        return self.packet()
