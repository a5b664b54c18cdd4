"""BPF tier fixtures: ONE compiled data plane per session, on a private pin
directory, with this process pinned to one CPU (the flow table and the
counters are per CPU, and BPF_PROG_TEST_RUN runs on the caller's CPU).

Tests share the DataPlane: each uses its own VIPs (see `vips`), and the
`clean` fixture removes every service and flow after a test. Counter checks
compare before/after (`Delta`).
"""

import os
import shutil
import uuid

import pytest

from tests.lib.require import require

PIN_ROOT = "/sys/fs/bpf"


@pytest.fixture(scope="session")
def pin_base():
    # Only a non-root run skips; what `make deps` sets up (bcc, the bpffs mount) must be there.
    if os.geteuid() != 0:
        pytest.skip("needs root (BPF_PROG_TEST_RUN, pinned maps)")
    require("bcc", "python3-bpfcc")
    if not os.path.ismount(PIN_ROOT):
        pytest.fail(f"no bpffs mounted at {PIN_ROOT}: mount it (make bpffs)", pytrace=False)
    base = f"{PIN_ROOT}/vc5-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.makedirs(base)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def one_cpu():
    cpu = min(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    yield cpu
    os.sched_setaffinity(0, before)


@pytest.fixture(scope="session")
def dp(pin_base, one_cpu):
    from vc5.xdp_loader.dataplane import DataPlane

    plane = DataPlane(pin_dir=f"{pin_base}/v1", flows=4096, watchdog=False)
    plane.set_active(True)
    yield plane
    plane.close(unpin=True)


@pytest.fixture
def clean(dp):
    """The shared data plane, emptied of services and flows after the test."""
    dp.set_active(True)
    dp.set_watchdog(None)
    yield dp
    for key in dp.services():
        dp.remove_service(*key)
    from vc5.xdp_loader import layout
    for name in layout.FLOW_TABLES:
        flows = dp.maps[name]
        for k in flows.keys():
            flows.delete(k)
    dp.set_flow_rate(None)
    dp.set_active(True)
    dp.set_watchdog(None)
