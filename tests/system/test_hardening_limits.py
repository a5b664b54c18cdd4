"""Resource limits on the units and the loader without CAP_DAC_READ_SEARCH (issue 12).

Runs in the session's booted container (conftest `machine`), before
test_installed.py (which expects no pins and an untouched configuration), and
leaves the loader stopped, its pins removed and /etc/vc5/vc5.yaml as it was.

The container's cgroup2 has no memory or pids controller (the host binds them
to cgroup v1), so MemoryMax= and TasksMax= are checked as systemd holds them,
not enforced; LimitNOFILE= is an rlimit and is checked on the live processes.
"""

from __future__ import annotations

import json

from tests.lib.wait import until
from tests.system.conftest import needs_service
from vc5.xdp_loader.layout import LAYOUT_VERSION

# Where the loader pins, as the host sees it (docs/data-plane.md: one directory per layout version).
PINS = f"/sys/fs/bpf/vc5/v{LAYOUT_VERSION}"

LIMITS = {
    "vc5-webd.service": {"MemoryHigh": 384 << 20, "MemoryMax": 512 << 20, "TasksMax": 64,
                         "LimitNOFILE": 512},
    "vc5-bgpd.service": {"MemoryHigh": 128 << 20, "MemoryMax": 192 << 20, "TasksMax": 32,
                         "LimitNOFILE": 1024},
    "vc5-xdp-loader.service": {"MemoryHigh": 2304 << 20, "MemoryMax": 2560 << 20, "TasksMax": 32,
                               "LimitNOFILE": 512},
}
IFACE = "vc5l0"
CONFIG = "/etc/vc5/limits-test.yaml"
DROPIN_DIR = "/etc/systemd/system/vc5-xdp-loader.service.d"
DROPIN = DROPIN_DIR + "/limits-test.conf"


def show(machine, unit, prop):
    return machine.run(f"systemctl show -P {prop} {unit}").stdout.strip()


def bpffs_root(machine) -> str:
    """Permission bits (the sticky bit bpffs sets on its root left out) and owner of /sys/fs/bpf."""
    mode, owner = machine.run("stat -c '%a %U' /sys/fs/bpf", check=True).stdout.split()
    return f"{int(mode, 8) & 0o777:o} {owner}"


def test_units_carry_their_limits(machine):
    for unit, want in LIMITS.items():
        have = {p: int(show(machine, unit, p)) for p in want}
        assert have == want, (unit, have)
        assert have["MemoryHigh"] < have["MemoryMax"], unit


def test_live_processes_have_limitnofile(machine):
    machine.run("systemctl start vc5-bgpd.service vc5-webd.service", timeout=60)
    for unit in ("vc5-bgpd.service", "vc5-webd.service"):
        until(lambda: show(machine, unit, "MainPID") not in ("", "0"), timeout=60, interval=0.2)
        pid = show(machine, unit, "MainPID")
        line = machine.run(f"grep 'Max open files' /proc/{pid}/limits", check=True).stdout.split()
        assert int(line[3]) == LIMITS[unit]["LimitNOFILE"], (unit, line)


@needs_service("xdp_loader")
def test_loader_pins_without_cap_dac_read_search_and_bpffs_stays_0700(machine):
    m = machine
    for prop in ("CapabilityBoundingSet", "AmbientCapabilities"):
        assert "cap_dac_read_search" not in show(m, "vc5-xdp-loader.service", prop), prop
    assert bpffs_root(m) == "700 root"
    m.run(f"ip link add {IFACE} type veth peer name vc5l1 && ip link set {IFACE} up && ip link set vc5l1 up",
          check=True)
    m.write(CONFIG, f"address: 10.198.0.1\ninterfaces: [{IFACE}]\nxdp_mode: generic\nflows_per_cpu: 1000\n",
            mode=0o640)
    m.run(f"chgrp vc5 {CONFIG}", check=True)
    m.write(DROPIN, f"[Service]\nExecStart=\nExecStart=/usr/bin/vc5-xdp-loader --config {CONFIG}\n"
                    f"ExecStopPost=\nExecStopPost=/usr/bin/vc5-xdp-loader --stop-post --config {CONFIG}\n")
    try:
        m.run("systemctl daemon-reload", check=True)
        r = m.run("systemctl start vc5-xdp-loader.service", timeout=180)
        assert r.returncode == 0, r.stderr + m.run("journalctl --no-pager -n 40 -u vc5-xdp-loader").stdout
        pid = show(m, "vc5-xdp-loader.service", "MainPID")
        caps = m.run(f"grep CapEff /proc/{pid}/status", check=True).stdout.split()[1]
        assert not int(caps, 16) & (1 << 2), f"CAP_DAC_READ_SEARCH effective: {caps}"
        assert m.run(f"stat -c %U /proc/{pid}", check=True).stdout.strip() == "_vc5-loader"
        # pinned through the bind, visible at the host's path; bpffs's root still 0700 root
        assert "flows" in m.run(f"ls {PINS}/", check=True).stdout.split()
        assert bpffs_root(m) == "700 root"
        info = m.run("busctl get-property --json=short org.vc5.XdpLoader1 /org/vc5/XdpLoader1 "
                     "org.vc5.XdpLoader1 ProgramInfo", check=True).stdout
        assert PINS in json.dumps(json.loads(info)), info
        log = m.run("journalctl --no-pager -o cat -u vc5-xdp-loader").stdout
        assert f"pinned maps in {PINS}" in log, log[-2000:]
        r = m.run("systemctl stop vc5-xdp-loader.service", timeout=120)
        assert r.returncode == 0, r.stderr
        assert not m.run(f"ls {PINS} 2>/dev/null").stdout.strip(), "pins survive the stop"
    finally:
        m.run("systemctl stop vc5-xdp-loader.service", timeout=120)
        m.run(f"rm -rf {DROPIN_DIR} {CONFIG}; systemctl daemon-reload; "
              f"systemctl reset-failed vc5-xdp-loader.service; ip link del {IFACE}; rm -rf /sys/fs/bpf/vc5")
