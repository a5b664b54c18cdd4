"""The settings map: inactive -> everything passes; the user-space watchdog
(vc5: 60 s) -> everything passes when user space has gone silent."""

import time

from tests.lib.testrun import XDP_PASS, XDP_TX, test_run
from vc5.xdp_loader.dataplane import ServiceSpec

from .frames import Delta, backends, tcp

VIP = "192.0.2.210"


def test_inactive_passes_everything_untouched(clean):
    clean.set_service(ServiceSpec(VIP, 80, "tcp", backends=backends("10.30.0.", 2)))
    pkt = bytes(tcp(VIP, 80))
    assert test_run(clean.xdp_fd, pkt).action == XDP_TX
    clean.set_active(False)
    assert not clean.active()
    d = Delta(clean)
    r = test_run(clean.xdp_fd, pkt)
    assert r.action == XDP_PASS and r.data == pkt
    assert d.global_()["packets"] == 0
    clean.set_active(True)
    assert test_run(clean.xdp_fd, pkt).action == XDP_TX


def test_watchdog_passes_everything_when_user_space_is_silent(clean):
    clean.set_service(ServiceSpec(VIP, 80, "tcp", backends=backends("10.30.0.", 2)))
    pkt = bytes(tcp(VIP, 80))
    clean.set_watchdog(60)
    assert test_run(clean.xdp_fd, pkt).action == XDP_TX
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    clean.refresh_watchdog(at_ns=now - 59 * 10**9)
    assert test_run(clean.xdp_fd, pkt).action == XDP_TX
    clean.refresh_watchdog(at_ns=now - 61 * 10**9)
    r = test_run(clean.xdp_fd, pkt)
    assert r.action == XDP_PASS and r.data == pkt
    clean.refresh_watchdog()
    assert test_run(clean.xdp_fd, pkt).action == XDP_TX
    clean.set_watchdog(None)                                  # off: age no longer matters
    clean.refresh_watchdog(at_ns=now - 3600 * 10**9)
    assert test_run(clean.xdp_fd, pkt).action == XDP_TX
