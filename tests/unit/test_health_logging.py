"""healthd's log events carry vc5's texts, journald VC5_* fields, MESSAGE_IDs and priority severities."""

import logging

import pytest

from vc5.common import log as vlog
from vc5.common import messages
from vc5.healthd.daemon import Daemon
from vc5.healthd.state import Event


class Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def captured():
    h = Capture()
    logger = logging.getLogger("vc5.healthd")
    logger.addHandler(h)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    yield h.records
    logger.removeHandler(h)
    logger.setLevel(old)


def test_backend_and_vip_events(captured):
    d = Daemon("/nonexistent.yaml")
    d._events([
        Event("backend", False, "192.0.2.1", 80, "tcp", "10.0.0.1:80", diagnostic="syn: Timeout"),
        Event("backend", True, "2001:db8::1", 443, "tcp", "[2001:db8::10]:443", diagnostic="OK"),
        Event("vip", False, "192.0.2.1", severity=4),
        Event("vip", True, "192.0.2.1", severity=3),
    ])
    down, up, vdown, vup = captured
    assert down.getMessage() == "Backend 10.0.0.1:80 for service 192.0.2.1:80:tcp went down"
    assert down.MESSAGE_ID == messages.BACKEND_DOWN and down.levelno == vlog.NOTICE
    assert (down.VC5_VIP, down.VC5_PORT, down.VC5_PROTO, down.VC5_BACKEND, down.VC5_DIAGNOSTIC) == \
        ("192.0.2.1", "80", "tcp", "10.0.0.1", "syn: Timeout")
    assert up.MESSAGE_ID == messages.BACKEND_UP and up.VC5_BACKEND == "2001:db8::10"
    assert vdown.MESSAGE_ID == messages.VIP_DOWN and vdown.levelno == logging.WARNING   # high
    assert vup.MESSAGE_ID == messages.VIP_UP and vup.levelno == logging.ERROR           # critical
    assert vup.getMessage() == "VIP 192.0.2.1 went up"


def test_probe_results_only_at_debug():
    d = Daemon("/nonexistent.yaml")
    d.set_debug(False)
    assert not logging.getLogger("vc5.healthd.probe").isEnabledFor(logging.DEBUG)
    d.set_debug(True)
    assert logging.getLogger("vc5.healthd.probe").isEnabledFor(logging.DEBUG)
    d.set_debug(False)
