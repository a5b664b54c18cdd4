"""vc5-decap's pinned objects: layout (ctypes mirrors of bpf/vc5_decap.c) and
raw access through libbpf, so that `status` and `detach` never need bcc.

Pins, under <base>/<IFACE> (base /sys/fs/bpf/vc5-decap):
    prog     the XDP program (xdp_decap)
    config   ARRAY[1] of Config
    stats    PERCPU_ARRAY[NSTATS] of u64 (COUNTERS)
    vips     LPM_TRIE VipKey -> u32 (IPv4 as ::ffff:a.b.c.d/96+len)
"""

from __future__ import annotations

import ctypes as ct
import ipaddress
import os

LAYOUT_VERSION = 1
PIN_BASE = "/sys/fs/bpf/vc5-decap"
PINS = ("prog", "config", "stats", "vips")

# Tunnel types: bit numbers in Config.types, VC5D_T_* in the C source.
TYPES = ("ipip", "gre", "fou", "gue")
F_CHECK_UDP_CSUM = 1

# PERCPU_ARRAY `stats`, index -> name (VC5D_S_* in the C source).
COUNTERS = (
    "rx",                    # every frame the program saw
    "passed",                # not tunnel traffic: passed untouched
    "decap_ipip", "decap_gre", "decap_fou", "decap_gue",
    "decap_outer_ipv4", "decap_outer_ipv6",
    "rejected_type",         # IPIP/GRE while that type is not accepted (passed to the kernel)
    "rejected_port",         # FOU/GUE-shaped UDP to a VIP on a port that is not configured
    "rejected_unknown_vip",  # inner destination not a VIP
    "rejected_malformed",    # truncated, inconsistent lengths/versions, unsupported GRE/GUE flags
    "rejected_fragment",     # outer IPv4 fragment of IPIP/GRE
    "rejected_checksum",     # outer UDP checksum wrong
    "rejected_adjust",       # bpf_xdp_adjust_head/tail failed
)
NSTATS = 16


class Config(ct.Structure):          # struct vc5d_config, 24 bytes
    _fields_ = [("types", ct.c_uint32), ("fou_port", ct.c_uint16), ("gue_port", ct.c_uint16),
                ("flags", ct.c_uint32), ("layout", ct.c_uint32), ("build", ct.c_uint64)]


class VipKey(ct.Structure):          # struct vc5d_vip_key, 20 bytes
    _fields_ = [("prefixlen", ct.c_uint32), ("addr", ct.c_uint8 * 16)]


assert ct.sizeof(Config) == 24 and ct.sizeof(VipKey) == 20


def vip_key(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> VipKey:
    """An LPM key for a VIP prefix; IPv4 is mapped into ::ffff:0:0/96."""
    if net.version == 4:
        raw, plen = b"\0" * 10 + b"\xff\xff" + net.network_address.packed, net.prefixlen + 96
    else:
        raw, plen = net.network_address.packed, net.prefixlen
    return VipKey(plen, (ct.c_uint8 * 16)(*raw))


def key_network(key: VipKey):
    raw = bytes(key.addr)
    if raw[:12] == b"\0" * 10 + b"\xff\xff" and key.prefixlen >= 96:
        return ipaddress.ip_network((raw[12:], key.prefixlen - 96))
    return ipaddress.ip_network((raw, key.prefixlen))


class MapError(OSError):
    pass


_lib = None


def libbpf():
    global _lib
    if _lib is None:
        lib = ct.CDLL("libbpf.so.1", use_errno=True)
        lib.bpf_obj_get.argtypes = [ct.c_char_p]
        lib.bpf_obj_pin.argtypes = [ct.c_int, ct.c_char_p]
        for name in ("bpf_map_lookup_elem", "bpf_map_update_elem"):
            getattr(lib, name).argtypes = [ct.c_int, ct.c_void_p, ct.c_void_p] + (
                [ct.c_uint64] if name.endswith("update_elem") else [])
        lib.bpf_map_delete_elem.argtypes = [ct.c_int, ct.c_void_p]
        lib.bpf_map_get_next_key.argtypes = [ct.c_int, ct.c_void_p, ct.c_void_p]
        # opts: struct bpf_xdp_attach_opts * or NULL (ops.py)
        lib.bpf_xdp_attach.argtypes = [ct.c_int, ct.c_int, ct.c_uint32, ct.c_void_p]
        lib.bpf_xdp_detach.argtypes = [ct.c_int, ct.c_uint32, ct.c_void_p]
        _lib = lib
    return _lib


def _check(rc: int, what: str) -> int:
    if rc < 0:
        err = -rc if rc < -1 else ct.get_errno()
        raise MapError(err, f"{what}: {os.strerror(err)}")
    return rc


def obj_get(path: str) -> int:
    return _check(libbpf().bpf_obj_get(path.encode()), f"bpf_obj_get {path}")


def obj_pin(fd: int, path: str) -> None:
    _check(libbpf().bpf_obj_pin(fd, path.encode()), f"bpf_obj_pin {path}")


def possible_cpus() -> int:
    with open("/sys/devices/system/cpu/possible") as f:
        text = f.read().strip()
    return max(int(part.split("-")[-1]) for part in text.split(",")) + 1


def read_config(fd: int) -> Config:
    key, cfg = ct.c_uint32(0), Config()
    _check(libbpf().bpf_map_lookup_elem(fd, ct.byref(key), ct.byref(cfg)), "config lookup")
    return cfg


def write_config(fd: int, cfg: Config) -> None:
    key = ct.c_uint32(0)
    _check(libbpf().bpf_map_update_elem(fd, ct.byref(key), ct.byref(cfg), 0), "config update")


def read_counters(fd: int) -> dict[str, int]:
    """Per-CPU values summed, by name."""
    ncpu = possible_cpus()
    out = {}
    for i, name in enumerate(COUNTERS):
        key, vals = ct.c_uint32(i), (ct.c_uint64 * ncpu)()
        _check(libbpf().bpf_map_lookup_elem(fd, ct.byref(key), vals), f"stats lookup {name}")
        out[name] = sum(vals)
    return out


def list_vips(fd: int) -> list:
    keys, prev, nxt = [], None, VipKey()
    while libbpf().bpf_map_get_next_key(fd, ct.byref(prev) if prev is not None else None, ct.byref(nxt)) == 0:
        keys.append(key_network(nxt))
        prev, nxt = nxt, VipKey()
    return sorted(keys, key=lambda n: (n.version, n))


def set_vips(fd: int, wanted) -> tuple[int, int]:
    """Make the trie hold exactly `wanted` (networks); returns (added, removed)."""
    have = set(list_vips(fd))
    want = set(wanted)
    one = ct.c_uint32(1)
    for net in want - have:
        key = vip_key(net)
        _check(libbpf().bpf_map_update_elem(fd, ct.byref(key), ct.byref(one), 0), f"vips add {net}")
    for net in have - want:
        key = vip_key(net)
        _check(libbpf().bpf_map_delete_elem(fd, ct.byref(key)), f"vips remove {net}")
    return len(want - have), len(have - want)
