"""VLAN offload off on attach, exactly that restored on detach (docs/data-plane.md, "VLAN
offload"), on a real veth in a namespace of our own (root; skipped otherwise)."""

import json
import os
import subprocess

import pytest

from vc5.xdp_loader import offload

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a network namespace)")

NS = "vc5t-offload"


def ns_py(code, state):
    """Run `code` in the namespace with the loader's modules; returns its stdout."""
    env = dict(os.environ, VC5_VLAN_OFFLOAD_STATE=state, PYTHONPATH="services")
    return subprocess.run(["nsenter", f"--net=/run/netns/{NS}", "/usr/bin/python3", "-c",
                           "from vc5.xdp_loader import offload\n" + code],
                          env=env, check=True, capture_output=True, text=True).stdout.strip()


def features(dev):
    out = subprocess.run(["nsenter", f"--net=/run/netns/{NS}", "ethtool", "-k", dev], check=True,
                         capture_output=True, text=True).stdout
    return {line.split(":")[0].strip(): line.split(":")[1].split()[0] for line in out.splitlines()
            if ":" in line and line.split(":")[1].strip()}


@pytest.fixture
def veth(tmp_path):
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        subprocess.run(["nsenter", f"--net=/run/netns/{NS}", "ip", "link", "add", "o0", "type", "veth",
                        "peer", "name", "o1"], check=True)
        yield str(tmp_path / "state.json")
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=False)


def test_disable_records_and_restore_puts_back_exactly_that(veth):
    state = veth
    subprocess.run(["nsenter", f"--net=/run/netns/{NS}", "ethtool", "-K", "o0", "txvlan", "off"], check=True)
    assert ns_py("print(offload.disable('o0'))", state) == "['rx-vlan-hw-parse']"
    f = features("o0")
    assert (f["rx-vlan-offload"], f["tx-vlan-offload"]) == ("off", "off")
    # a successor finds them off: records nothing more, keeps the first record
    assert ns_py("print(offload.disable('o0'))", state) == "[]"
    assert list(json.load(open(state)).values()) == [["rx-vlan-hw-parse"]]
    assert list(json.load(open(state)))[0].endswith(":o0")
    assert ns_py("print(offload.restore('o0'))", state) == "['rx-vlan-hw-parse']"
    f = features("o0")
    assert (f["rx-vlan-offload"], f["tx-vlan-offload"]) == ("on", "off")     # the operator's txvlan off stays
    assert not os.path.exists(state)
    assert ns_py("print(offload.restore('o0'))", state) == "[]"


def test_missing_interface_is_logged_not_raised(veth):
    assert ns_py("print(offload.disable('nope'))", veth) == "[]"


def test_detach_restores(monkeypatch):
    from vc5.xdp_loader import attach
    seen = []
    monkeypatch.setattr(attach, "query", lambda i, ipr=None: attach.XdpState(5, "generic", 7)
                        if not seen else attach.XdpState(5, "", 0))
    monkeypatch.setattr(attach, "prog_fd_by_id", lambda pid: os.open("/dev/null", os.O_RDONLY))

    class Lib:
        def bpf_xdp_detach(self, *a):
            return 0
    monkeypatch.setattr(attach, "libbpf", lambda: Lib())
    monkeypatch.setattr(offload, "restore", lambda name, path=None: seen.append(name))
    assert attach.detach(5, "eth9") == 7 and seen == ["eth9"]
