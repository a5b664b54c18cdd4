"""Attach, replace and detach XDP programs on interfaces, without a gap.

Invariants (docs/data-plane.md, "Attachment"):
  * A program that is already attached is REPLACED IN PLACE: the kernel swaps
    the program pointer atomically (libbpf `bpf_xdp_attach` with
    `old_prog_fd`, i.e. XDP_FLAGS_REPLACE, a compare-and-swap). We never
    detach and then attach, which loses a third of the packets in between,
    except when the operator changes the mode (native <-> generic): the
    kernel refuses to hold both, so that one case has a window and says so.
  * The same mode flag as the existing attachment is always used: a mismatch
    fails with EEXIST ("flags 0 means native on veth").
  * Nothing here detaches implicitly: XDP outlives this process by design
    (restart keeps forwarding); `detach()` is called only on an intended stop.

The current program is found through netlink (pyroute2, IFLA_XDP ->
IFLA_XDP_ATTACHED / IFLA_XDP_PROG_ID); attach/detach go through libbpf via
ctypes, because pyroute2 0.7.2 encodes IFLA_XDP_FLAGS wrongly ('>H').
"""

from __future__ import annotations

import ctypes as ct
import errno
import os
from dataclasses import dataclass

XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_HW_MODE = 1 << 3
XDP_FLAGS_REPLACE = 1 << 4

# IFLA_XDP_ATTACHED values (<linux/if_link.h>)
XDP_ATTACHED_NONE = 0
XDP_ATTACHED_DRV = 1
XDP_ATTACHED_SKB = 2
XDP_ATTACHED_HW = 3
XDP_ATTACHED_MULTI = 4

MODES = ("native", "generic", "auto")
MODE_FLAGS = {"native": XDP_FLAGS_DRV_MODE, "generic": XDP_FLAGS_SKB_MODE}
ATTACHED_MODE = {XDP_ATTACHED_DRV: "native", XDP_ATTACHED_SKB: "generic", XDP_ATTACHED_HW: "offload"}
# pyroute2 decodes IFLA_XDP_ATTACHED through a value map (as `ip link` prints it)
_PYROUTE2_ATTACHED = {None: XDP_ATTACHED_NONE, "xdp": XDP_ATTACHED_DRV, "xdpgeneric": XDP_ATTACHED_SKB,
                      "xdpoffload": XDP_ATTACHED_HW, "xdpmulti": XDP_ATTACHED_MULTI}


class AttachError(Exception):
    """Attaching, replacing or detaching failed; the message names the interface."""


class _XdpAttachOpts(ct.Structure):        # struct bpf_xdp_attach_opts (libbpf 1.1): sizeof 16
    _fields_ = [("sz", ct.c_size_t), ("old_prog_fd", ct.c_int)]


class ProgInfo(ct.Structure):              # head of struct bpf_prog_info (<linux/bpf.h>), 80 B
    _fields_ = [("type", ct.c_uint32), ("id", ct.c_uint32), ("tag", ct.c_uint8 * 8),
                ("jited_prog_len", ct.c_uint32), ("xlated_prog_len", ct.c_uint32),
                ("jited_prog_insns", ct.c_uint64), ("xlated_prog_insns", ct.c_uint64),
                ("load_time", ct.c_uint64), ("created_by_uid", ct.c_uint32),
                ("nr_map_ids", ct.c_uint32), ("map_ids", ct.c_uint64), ("name", ct.c_char * 16)]


_libbpf = None


def libbpf():
    global _libbpf
    if _libbpf is None:
        lib = ct.CDLL("libbpf.so.1", use_errno=True)
        lib.bpf_xdp_attach.argtypes = [ct.c_int, ct.c_int, ct.c_uint32, ct.POINTER(_XdpAttachOpts)]
        lib.bpf_xdp_detach.argtypes = [ct.c_int, ct.c_uint32, ct.POINTER(_XdpAttachOpts)]
        lib.bpf_prog_get_fd_by_id.argtypes = [ct.c_uint32]
        lib.bpf_obj_get_info_by_fd.argtypes = [ct.c_int, ct.c_void_p, ct.POINTER(ct.c_uint32)]
        _libbpf = lib
    return _libbpf


@dataclass(frozen=True)
class XdpState:
    """What netlink says is attached to one interface."""
    ifindex: int
    mode: str            # "native" | "generic" | "offload" | "multi" | "" (none)
    prog_id: int         # 0 when nothing is attached

    @property
    def attached(self) -> bool:
        return self.prog_id != 0


@dataclass(frozen=True)
class AttachResult:
    ifindex: int
    mode: str
    prog_id: int
    previous_prog_id: int
    replaced_in_place: bool
    note: str = ""


def query(ifindex: int, ipr=None) -> XdpState:
    """The XDP program attached to `ifindex` in the current netns, via IFLA_XDP_PROG_ID."""
    own = ipr is None
    if own:
        from pyroute2 import IPRoute
        ipr = IPRoute()
    try:
        links = ipr.get_links(ifindex)
    except Exception as e:   # pyroute2 raises NetlinkError for an unknown index
        raise AttachError(f"interface index {ifindex}: {e}") from e
    finally:
        if own:
            ipr.close()
    xdp = links[0].get_attr("IFLA_XDP") if links else None
    if xdp is None:
        return XdpState(ifindex, "", 0)
    attached = xdp.get_attr("IFLA_XDP_ATTACHED")
    if not isinstance(attached, int):
        attached = _PYROUTE2_ATTACHED.get(attached, XDP_ATTACHED_MULTI)
    if attached == XDP_ATTACHED_NONE:
        return XdpState(ifindex, "", 0)
    if attached == XDP_ATTACHED_MULTI:
        prog = xdp.get_attr("IFLA_XDP_DRV_PROG_ID") or xdp.get_attr("IFLA_XDP_SKB_PROG_ID") or 0
        return XdpState(ifindex, "multi", prog)
    return XdpState(ifindex, ATTACHED_MODE.get(attached, "?"), xdp.get_attr("IFLA_XDP_PROG_ID") or 0)


def prog_info(fd: int) -> ProgInfo:
    info = ProgInfo()
    length = ct.c_uint32(ct.sizeof(info))
    rc = libbpf().bpf_obj_get_info_by_fd(fd, ct.byref(info), ct.byref(length))
    if rc != 0:
        raise AttachError(f"bpf_obj_get_info_by_fd({fd}): {os.strerror(-rc)}")
    return info


def prog_fd_by_id(prog_id: int) -> int:
    fd = libbpf().bpf_prog_get_fd_by_id(prog_id)
    if fd < 0:
        raise AttachError(f"XDP program id {prog_id}: {os.strerror(-fd)}")
    return fd


def prog_name_by_id(prog_id: int) -> str:
    fd = prog_fd_by_id(prog_id)
    try:
        return prog_info(fd).name.decode(errors="replace")
    finally:
        os.close(fd)


def _xdp_attach(ifindex, fd, flags, old_fd=None):
    opts = _XdpAttachOpts(ct.sizeof(_XdpAttachOpts), old_fd if old_fd is not None else 0)
    return libbpf().bpf_xdp_attach(ifindex, fd, flags, ct.byref(opts) if old_fd is not None else None)


def _replace(ifindex, fd, mode, old_id):
    """Atomic compare-and-swap of `old_id` for `fd`; returns 0 or -errno."""
    try:
        old_fd = prog_fd_by_id(old_id)
    except AttachError:
        return -errno.ENOENT       # the old program vanished meanwhile: caller re-queries
    try:
        return _xdp_attach(ifindex, fd, MODE_FLAGS[mode], old_fd)
    finally:
        os.close(old_fd)


def attach(ifindex: int, ifname: str, fd: int, mode: str, ipr=None) -> AttachResult:
    """Attach program `fd` to `ifindex`, replacing whatever is there in place.

    mode "auto": keep the mode of the program already attached; with nothing
    attached, try native and fall back to generic.
    """
    if mode not in MODES:
        raise AttachError(f"{ifname}: XDP mode must be one of {', '.join(MODES)}, not {mode!r}")
    new_id = prog_info(fd).id
    for _ in range(3):          # a concurrent change makes the CAS fail: re-query and retry
        current = query(ifindex, ipr)
        if current.prog_id == new_id:
            return AttachResult(ifindex, current.mode, new_id, new_id, True, "already attached")
        if current.attached and current.mode in MODE_FLAGS and mode in (current.mode, "auto"):
            rc = _replace(ifindex, fd, current.mode, current.prog_id)
            if rc == 0:
                return AttachResult(ifindex, current.mode, new_id, current.prog_id, True)
            if rc in (-errno.EEXIST, -errno.ENOENT):
                continue
            raise AttachError(f"{ifname}: replacing XDP program {current.prog_id} in {current.mode} mode: "
                              f"{os.strerror(-rc)}")
        note = ""
        if current.attached:
            # Mode change (or an offloaded/multi attachment): the kernel cannot hold native and
            # generic at once, so this one case detaches first and has a short window.
            note = (f"mode change {current.mode} -> {mode}: detached program {current.prog_id} first; "
                    "packets arriving in between were not balanced")
            detach(ifindex, ifname, expected_prog_id=current.prog_id, ipr=ipr)
        if mode == "auto":
            rc = _xdp_attach(ifindex, fd, MODE_FLAGS["native"] | XDP_FLAGS_UPDATE_IF_NOEXIST)
            if rc == 0:
                return AttachResult(ifindex, "native", new_id, current.prog_id, False, note)
            chosen = "generic"
            note = (note + "; " if note else "") + f"native mode refused ({os.strerror(-rc)}), using generic"
        else:
            chosen = mode
        rc = _xdp_attach(ifindex, fd, MODE_FLAGS[chosen] | XDP_FLAGS_UPDATE_IF_NOEXIST)
        if rc == -errno.EBUSY or rc == -errno.EEXIST:
            continue            # someone attached meanwhile: go round and replace it
        if rc != 0:
            raise AttachError(f"{ifname}: attaching XDP in {chosen} mode: {os.strerror(-rc)}")
        return AttachResult(ifindex, chosen, new_id, current.prog_id, False, note)
    raise AttachError(f"{ifname}: the attached XDP program kept changing; gave up after 3 attempts")


def detach(ifindex: int, ifname: str, expected_prog_id: int | None = None, ipr=None) -> int:
    """Detach the program on `ifindex` (only if it is `expected_prog_id`, when given).

    Returns the id of the program detached, 0 if there was nothing to detach.
    """
    current = query(ifindex, ipr)
    if not current.attached:
        return 0
    if expected_prog_id is not None and current.prog_id != expected_prog_id:
        return 0
    flags = MODE_FLAGS.get(current.mode, 0)
    if current.mode == "multi":
        flags = XDP_FLAGS_DRV_MODE
    try:
        old_fd = prog_fd_by_id(current.prog_id)
    except AttachError:
        return 0
    try:
        opts = _XdpAttachOpts(ct.sizeof(_XdpAttachOpts), old_fd)
        rc = libbpf().bpf_xdp_detach(ifindex, flags, ct.byref(opts))
    finally:
        os.close(old_fd)
    if rc == -errno.EEXIST:
        return 0                # replaced by someone else meanwhile: not ours to remove
    if rc != 0:
        raise AttachError(f"{ifname}: detaching XDP program {current.prog_id}: {os.strerror(-rc)}")
    from . import offload
    offload.restore(ifname)     # the VLAN offload our attach switched off (offload.py)
    return current.prog_id
