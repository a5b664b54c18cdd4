"""Pinned maps: a second DataPlane on the same pin directory (a restarted
loader) sees the same flows, counters and services; a pinned map with
another layout is refused with a clear error (bcc itself never checks)."""

import ctypes as ct
import os

import pytest

from tests.lib.testrun import XDP_TX, test_run
from vc5.xdp_loader import layout
from vc5.xdp_loader.dataplane import BackendKey, DataPlane, LayoutError, ServiceKey, ServiceSpec
from vc5.xdp_loader.program import ProgramError

from .frames import CLIENT4, backend_by_mac, backends, flow_entry, tcp

_libbpf = ct.CDLL("libbpf.so.1", use_errno=True)
_libbpf.bpf_map_create.argtypes = [ct.c_int, ct.c_char_p, ct.c_uint32, ct.c_uint32, ct.c_uint32, ct.c_void_p]
_libbpf.bpf_obj_pin.argtypes = [ct.c_int, ct.c_char_p]


def map_id(fd):
    return int(layout.read_fdinfo(fd)["map_id"])


def test_restarted_loader_reuses_flows_counters_and_services(clean, one_cpu):
    vip = "192.0.2.220"
    bes = backends("10.40.0.", 4)
    clean.set_service(ServiceSpec(vip, 80, "tcp", backends=bes))
    r = test_run(clean.xdp_fd, bytes(tcp(vip, 80, sport=43000, flags="A")))
    first = backend_by_mac(r.data, bes)
    key = ServiceKey(vip, 80, "tcp")
    before = clean.counters()

    # in-process build this time (the session's data plane was built in a child)
    second = DataPlane(pin_dir=clean.pin_dir, flows=clean.flows_size, watchdog=False, compile_in_child=False)
    try:
        assert second.xdp_function is not None and second.xdp_function.fd == second.xdp_fd
        for name in clean.specs:
            assert map_id(second.maps[name].fd) == map_id(clean.maps[name].fd), name
        assert second.services() == [key]
        assert second.active()
        c = second.counters()
        assert c["services"][key] == before["services"][key]
        assert c["backends"][BackendKey(key, first)]["flows"] == 1
        name, k = flow_entry(CLIENT4, vip, 43000, 80, 6)
        assert second.maps[name].lookup(k).time != 0
        # the new loader drains the flow's backend: its program keeps the flow there
        drained = [b if b.address != first else b.__class__(b.address, b.mac, b.src_mac, in_table=False)
                   for b in bes]
        second.set_service(ServiceSpec(vip, 80, "tcp", backends=drained))
        r = test_run(second.xdp_fd, bytes(tcp(vip, 80, sport=43000, flags="PA")))
        assert r.action == XDP_TX and backend_by_mac(r.data, bes) == first
        assert second.counters()["backends"][BackendKey(key, first)]["packets"] == 2
    finally:
        second.close()
    assert os.path.exists(f"{clean.pin_dir}/flows")          # close() without unpin keeps the maps


def test_restart_frees_backend_records_no_service_references(clean):
    """A loader that died between two writes may leave a record behind: the
    next one frees it, so no flow can keep using it."""
    orphan = layout.MAX_PAIRS - 1
    rec = layout.Backend(cookie=1234, flags=layout.BE_VALID)
    clean.maps["backends"].update(layout.U32(orphan), rec)
    second = DataPlane(pin_dir=clean.pin_dir, flows=clean.flows_size, watchdog=False)
    try:
        assert second.maps["backends"].lookup(layout.U32(orphan)).cookie == 0
    finally:
        second.close()


def test_program_pins_are_not_left_behind(dp):
    assert sorted(os.listdir(dp.pin_dir)) == sorted(dp.specs)


def test_different_flow_table_size_is_refused(dp):
    with pytest.raises(LayoutError, match=r"'flows'.*max_entries is 4096, expected 8192"):
        DataPlane(pin_dir=dp.pin_dir, flows=8192, watchdog=False)


def test_foreign_pinned_map_is_refused(pin_base):
    pin_dir = f"{pin_base}/foreign/v1"
    os.makedirs(pin_dir)
    fd = _libbpf.bpf_map_create(layout.BPF_MAP_TYPE_HASH, b"flows", 4, 8, 16, None)
    assert fd >= 0, os.strerror(ct.get_errno())
    try:
        assert _libbpf.bpf_obj_pin(fd, f"{pin_dir}/flows".encode()) == 0
        with pytest.raises(LayoutError) as e:
            DataPlane(pin_dir=pin_dir, flows=4096, watchdog=False)
        msg = str(e.value)
        assert f"{pin_dir}/flows" in msg
        assert "map_type is 1, expected 9" in msg and "key_size is 4, expected 12" in msg
    finally:
        os.close(fd)


def test_pin_dir_outside_bpffs_is_refused(tmp_path):
    with pytest.raises(ProgramError, match="not on a bpf filesystem"):
        DataPlane(pin_dir=str(tmp_path / "v1"))


def test_bad_service_specs_are_refused_and_nothing_is_applied(clean):
    vip = "192.0.2.221"
    good = backends("10.41.0.", 2)
    bad_mac = [good[0], good[1].__class__("10.41.0.9", "zz:00", good[1].src_mac)]
    with pytest.raises(ValueError, match=r"192.0.2.221:80:tcp: backend 10.41.0.9: mac 'zz:00'"):
        clean.set_service(ServiceSpec(vip, 80, "tcp", backends=bad_mac))
    with pytest.raises(ValueError, match="listed twice"):
        clean.set_service(ServiceSpec(vip, 80, "tcp", backends=[good[0], good[0]]))
    with pytest.raises(ValueError, match="protocol must be tcp or udp"):
        clean.set_service(ServiceSpec(vip, 80, "sctp", backends=good))
    with pytest.raises(ValueError, match="at most 255"):
        clean.set_service(ServiceSpec(vip, 80, "tcp", backends=backends("fd00:41::", 256)))
    assert clean.services() == []
    assert test_run(clean.xdp_fd, bytes(tcp(vip, 80))).verdict == "XDP_PASS"
