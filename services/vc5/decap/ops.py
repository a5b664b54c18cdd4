"""attach / detach / status of vc5-decap on one interface.

Everything lives in the pin directory <base>/<IFACE> (maps.PINS), so a later
process (status, detach, a re-attach) finds it without bcc. Invariants:
  * `attach` is idempotent. A matching build (program.build_id) is re-used:
    only the config and the VIPs are rewritten, counters are kept. A new
    build replaces the attached program in place (XDP_FLAGS_REPLACE with the
    pinned program as the expected one: no gap), then the pins are swapped.
  * Another XDP program on the interface is never replaced without --force,
    and `detach` removes only ours (compare-and-swap on the pinned program).
  * No by-id lookups on our own objects (they need CAP_SYS_ADMIN); only
    --force, replacing a foreign program, needs that.
"""

from __future__ import annotations

import ctypes as ct
import errno
import os
from dataclasses import dataclass, field

from vc5.xdp_loader import attach as xdp

from . import maps, program
from .options import Accept

MODES = ("auto", "native", "generic")


class DecapError(RuntimeError):
    """An operation failed; the message names the interface. Exit status 1."""


class _Opts(ct.Structure):          # struct bpf_xdp_attach_opts (libbpf 1.1)
    _fields_ = [("sz", ct.c_size_t), ("old_prog_fd", ct.c_int)]


def pin_dir(base: str, ifname: str) -> str:
    if not ifname or "/" in ifname or ifname in (".", ".."):
        raise DecapError(f"{ifname!r} is not an interface name")
    return os.path.join(base, ifname)


def ifindex_of(ifname: str, ipr=None) -> int:
    from pyroute2 import IPRoute

    own = ipr is None
    ipr = ipr or IPRoute()
    try:
        idx = ipr.link_lookup(ifname=ifname)
    finally:
        if own:
            ipr.close()
    if not idx:
        raise DecapError(f"{ifname}: no such interface in this network namespace")
    return idx[0]


def open_pins(pdir: str) -> dict:
    """{pin name: fd} of what exists in pdir (caller closes)."""
    fds = {}
    for name in maps.PINS:
        path = os.path.join(pdir, name)
        if os.path.exists(path):
            fds[name] = maps.obj_get(path)
    return fds


def close_all(fds: dict) -> None:
    for fd in fds.values():
        os.close(fd)


def _xdp_attach(ifindex: int, fd: int, flags: int, old_fd: int | None) -> int:
    lib = maps.libbpf()
    if old_fd is None:
        return lib.bpf_xdp_attach(ifindex, fd, flags, None)
    opts = _Opts(ct.sizeof(_Opts), old_fd)
    return lib.bpf_xdp_attach(ifindex, fd, flags, ct.cast(ct.byref(opts), ct.c_void_p))


def _fresh(ifindex: int, ifname: str, fd: int, mode: str) -> str:
    """Attach where nothing is attached; "auto" tries native, then generic."""
    noexist = xdp.XDP_FLAGS_UPDATE_IF_NOEXIST
    if mode == "auto":
        if _xdp_attach(ifindex, fd, xdp.MODE_FLAGS["native"] | noexist, None) == 0:
            return "native"
        mode = "generic"
    rc = _xdp_attach(ifindex, fd, xdp.MODE_FLAGS[mode] | noexist, None)
    if rc != 0:
        raise DecapError(f"{ifname}: attaching XDP in {mode} mode: {os.strerror(-rc)}")
    return mode


def _foreign_name(prog_id: int) -> str:
    try:
        return xdp.prog_name_by_id(prog_id)
    except Exception:      # needs CAP_SYS_ADMIN; the id is enough to name it
        return "?"


def attach_xdp(ifindex: int, ifname: str, fd: int, old_fd: int | None, mode: str, force: bool) -> str:
    """Put program `fd` on the interface; returns a one-line account."""
    cur = xdp.query(ifindex)
    new_id = xdp.prog_info(fd).id
    if cur.prog_id == new_id and mode in ("auto", cur.mode):
        return f"already attached ({cur.mode})"
    ours = old_fd is not None and cur.attached and xdp.prog_info(old_fd).id == cur.prog_id
    if cur.attached and not ours and cur.prog_id != new_id and not force:
        raise DecapError(f"{ifname}: another XDP program is attached (id {cur.prog_id}, "
                         f"{_foreign_name(cur.prog_id)}); refusing to replace it (--force replaces it)")
    if cur.attached and cur.mode in xdp.MODE_FLAGS and mode in ("auto", cur.mode) and cur.prog_id != new_id:
        expected = old_fd if ours else xdp.prog_fd_by_id(cur.prog_id)
        try:
            rc = _xdp_attach(ifindex, fd, xdp.MODE_FLAGS[cur.mode], expected)
        finally:
            if not ours:
                os.close(expected)
        if rc != 0:
            raise DecapError(f"{ifname}: replacing XDP program {cur.prog_id}: {os.strerror(-rc)}")
        return f"replaced program {cur.prog_id} in place ({cur.mode})"
    note = ""
    if cur.attached:      # a mode change: the kernel cannot hold both, so detach first
        detach_xdp(ifindex, ifname, old_fd if ours else None, force=True, prog_id=cur.prog_id)
        note = f", after detaching program {cur.prog_id} ({cur.mode}) for the mode change"
    return f"attached ({_fresh(ifindex, ifname, fd, mode)}){note}"


def detach_xdp(ifindex: int, ifname: str, prog_fd: int | None, force: bool = False, prog_id: int = 0) -> str:
    """Remove our program (the one `prog_fd` holds) from the interface."""
    cur = xdp.query(ifindex)
    if not cur.attached:
        return "no XDP program attached"
    mine = prog_fd is not None and xdp.prog_info(prog_fd).id == cur.prog_id
    if not mine and not (force and cur.prog_id == prog_id):
        return f"XDP program {cur.prog_id} ({_foreign_name(cur.prog_id)}) is not vc5-decap's: left alone"
    flags = xdp.MODE_FLAGS.get(cur.mode, xdp.XDP_FLAGS_DRV_MODE)
    expected = prog_fd if mine else xdp.prog_fd_by_id(cur.prog_id)
    try:
        opts = _Opts(ct.sizeof(_Opts), expected)
        rc = maps.libbpf().bpf_xdp_detach(ifindex, flags, ct.cast(ct.byref(opts), ct.c_void_p))
    finally:
        if not mine:
            os.close(expected)
    if rc not in (0, -errno.EEXIST):
        raise DecapError(f"{ifname}: detaching XDP program {cur.prog_id}: {os.strerror(-rc)}")
    return f"detached program {cur.prog_id} ({cur.mode})"


def _repin(pdir: str, fds: dict) -> None:
    os.makedirs(pdir, mode=0o700, exist_ok=True)
    for name, fd in fds.items():
        path = os.path.join(pdir, name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        maps.obj_pin(fd, path)


def _check_bpffs(base: str) -> None:
    if base.startswith("/sys/fs/bpf/") and not os.path.ismount("/sys/fs/bpf"):
        raise DecapError("no bpffs mounted at /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)")


def attach(ifname: str, acc: Accept, vips: list, mode: str = "auto", base: str = maps.PIN_BASE,
           force: bool = False) -> list[str]:
    """Attach (or refresh) vc5-decap on `ifname`; returns what was done."""
    if mode not in MODES:
        raise DecapError(f"{ifname}: mode must be one of {', '.join(MODES)}")
    ifindex = ifindex_of(ifname)
    _check_bpffs(base)
    pdir = pin_dir(base, ifname)
    want = program.build_id()
    old = open_pins(pdir)
    try:
        reuse = set(old) == set(maps.PINS) and maps.read_config(old["config"]).build == want
        built = None if reuse else program.build()
        fds = old if reuse else {"prog": built.prog_fd, **built.map_fds}
        maps.write_config(fds["config"], acc.config(want))
        added, removed = maps.set_vips(fds["vips"], vips)
        how = attach_xdp(ifindex, ifname, fds["prog"], old.get("prog"), mode, force)
        if not reuse:
            _repin(pdir, fds)
    except maps.MapError as e:
        raise DecapError(f"{ifname}: {e}") from e
    except program.ProgramError as e:
        raise DecapError(f"{ifname}: {e}") from e
    finally:
        close_all(old)
    return [f"{ifname}: {how}; program {'re-used' if reuse else 'built'}, pinned in {pdir}",
            f"{ifname}: accepting {', '.join(acc.types)}"
            + (f", FOU port {acc.fou_port}" if acc.fou_port else "")
            + (f", GUE port {acc.gue_port}" if acc.gue_port else "")
            + ("" if acc.check_udp_csum else ", outer UDP checksums not verified"),
            f"{ifname}: {len(vips)} VIP prefix(es) (+{added} -{removed})"]


def detach(ifname: str, base: str = maps.PIN_BASE) -> list[str]:
    """Detach our program from `ifname` and remove the pins; idempotent."""
    pdir = pin_dir(base, ifname)
    fds = open_pins(pdir) if os.path.isdir(pdir) else {}
    out = []
    try:
        try:
            ifindex = ifindex_of(ifname)
        except DecapError:
            out.append(f"{ifname}: no such interface; removing the pins only")
        else:
            out.append(f"{ifname}: " + detach_xdp(ifindex, ifname, fds.get("prog")))
    finally:
        close_all(fds)
    if os.path.isdir(pdir):
        for name in os.listdir(pdir):
            os.unlink(os.path.join(pdir, name))
        os.rmdir(pdir)
        out.append(f"{ifname}: removed {pdir}")
    try:
        os.rmdir(base)          # only when no other interface uses it
    except OSError:
        pass
    return out


@dataclass
class Status:
    ifname: str
    pin_dir: str
    attached: bool = False          # our pinned program is the one on the interface
    mode: str = ""
    prog_id: int = 0
    other_prog_id: int = 0          # some other program is attached instead
    accept: Accept | None = None
    vips: list = field(default_factory=list)
    counters: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)


def status(ifname: str, base: str = maps.PIN_BASE) -> Status:
    pdir = pin_dir(base, ifname)
    st = Status(ifname, pdir)
    if not os.path.isdir(pdir):
        raise DecapError(f"{ifname}: vc5-decap is not attached (no {pdir})")
    fds = open_pins(pdir)
    try:
        missing = [n for n in maps.PINS if n not in fds]
        if missing:
            st.problems.append(f"pins missing: {', '.join(missing)} (detach and attach again)")
        if "config" in fds:
            st.accept = Accept.from_config(maps.read_config(fds["config"]))
        if "vips" in fds:
            st.vips = maps.list_vips(fds["vips"])
        if "stats" in fds:
            st.counters = maps.read_counters(fds["stats"])
        try:
            cur = xdp.query(ifindex_of(ifname))
        except DecapError as e:
            st.problems.append(str(e))
            return st
        ours = xdp.prog_info(fds["prog"]).id if "prog" in fds else -1
        st.mode, st.attached = cur.mode, cur.prog_id == ours
        st.prog_id = ours if st.attached else 0
        if cur.attached and not st.attached:
            st.other_prog_id = cur.prog_id
            st.problems.append(f"another XDP program (id {cur.prog_id}) is attached instead")
        elif not cur.attached:
            st.problems.append("the program is pinned but not attached to the interface")
    finally:
        close_all(fds)
    return st
