"""Find, compile (bcc) and load the XDP program in bpf/vc5_xdp.c.

    source_dir() -> the directory holding vc5_xdp.c and its headers
    compile(pin_dir, flows=...) -> bcc.BPF (maps created or re-used, pinned)
    load_xdp(bpf, name=XDP_MAIN) -> bcc function object; .fd is the program fd
                                    to attach (bcc: BPF.attach_xdp(dev, fn, flags),
                                    or libbpf bpf_xdp_attach with that fd)

Program names: XDP_MAIN ("xdp_main", the balancer for the NICs),
XDP_PASS ("xdp_pass", returns XDP_PASS: for a veth peer that needs a native
program, and the benchmark floor) and XDP_NAT ("xdp_nat", the health-check
probe path on the loader's veth pair: nat.py).

build_in_child(pin_dir, flows) does compile + check + load in a short-lived
child process (`python3 -m vc5.xdp_loader.program`) that pins the two
programs next to the maps; the caller opens everything by path and never
maps libbcc/LLVM (~120 MB of RSS saved in the long-running loader).

The source is looked up in this order: $VC5_BPF_DIR, <repo>/bpf (running
from a checkout), /usr/share/vc5/bpf (Debian package), <package>/bpf.
Compiling takes ~0.6 s (own minimal headers; no <linux/*.h>).
"""

from __future__ import annotations

import argparse
import ctypes as ct
import os
import re
import subprocess
import sys
from pathlib import Path

from . import layout

XDP_MAIN = "xdp_main"
XDP_PASS = "xdp_pass"
XDP_NAT = "xdp_nat"                # health-check probe path, for the loader's veth pair (nat.py)
PROGRAMS = (XDP_MAIN, XDP_PASS, XDP_NAT)
SOURCE_NAME = "vc5_xdp.c"
PROG_PIN_PREFIX = "prog_"          # <pin_dir>/prog_xdp_main while handed over from the child
EXIT_LAYOUT = 3                    # child exit status for a LayoutError

_HERE = Path(__file__).resolve().parent
_CANDIDATES = (
    _HERE.parent.parent.parent / "bpf",     # checkout: services/vc5/xdp_loader -> repo/bpf
    Path("/usr/share/vc5/bpf"),             # installed
    _HERE.parent / "bpf",                   # package data (vc5/bpf)
)


class ProgramError(RuntimeError):
    """The program could not be found, compiled or loaded."""


def source_dir() -> Path:
    env = os.environ.get("VC5_BPF_DIR")
    candidates = (Path(env),) if env else _CANDIDATES
    for d in candidates:
        if (d / SOURCE_NAME).is_file():
            return d
    raise ProgramError(f"{SOURCE_NAME} not found in " + ", ".join(str(d) for d in candidates))


def cflags(pin_dir: str, flows: int = layout.DEFAULT_FLOWS) -> list[str]:
    """Compiler flags: include path, pin directory and every map size, all
    taken from layout.py so that C and Python cannot disagree."""
    if '"' in pin_dir or "\\" in pin_dir:
        raise ProgramError(f"pin directory may not contain quotes or backslashes: {pin_dir!r}")
    return [
        f"-I{source_dir()}",
        f'-DVC5_PIN_DIR="{pin_dir.rstrip("/")}"',
        f"-DVC5_FLOWS={int(flows)}",
        *(f"-DVC5_{name.upper()}={n}"                 # flows6, flows_udp, flows_udp6
          for name, n in layout.flow_table_sizes(flows).items() if name != "flows"),
        f"-DVC5_MAX_SERVICES={layout.MAX_SERVICES}",
        f"-DVC5_MAX_VIPS={layout.MAX_VIPS}",
        f"-DVC5_MAX_PAIRS={layout.MAX_PAIRS}",
        f"-DVC5_REDIRECT_SLOTS={layout.REDIRECT_SLOTS}",
        f"-DVC5_MAX_NAT={layout.MAX_NAT}",
        f"-DVC5_NAT_REPLIES={layout.NAT_REPLIES}",
        f"-DVC5_PREFIX6_BUCKETS={layout.PREFIX6_BUCKETS}",
        f"-DVC5_MAX_BLOCKED={layout.MAX_BLOCKED}",
    ]


_LOCAL_INCLUDE = re.compile(r'^#include "([A-Za-z0-9_]+\.h)"\s*$', re.M)


def source_text(path: Path, _seen: set | None = None) -> str:
    """The program as one text: every `#include "x.h"` of a file beside it is
    inlined (once; `#line` keeps compiler messages pointing at the header).

    bcc rewrites map calls (`flows.lookup(&k)`) in the main file only; a map
    used in an included header would compile to an unknown-opcode call that
    the verifier refuses. Inlining lets the program keep one file per job."""
    seen = set() if _seen is None else _seen
    text = path.read_text()

    def inline(m: re.Match) -> str:
        header = path.parent / m.group(1)
        if not header.is_file():
            return m.group(0)
        if header in seen:
            return ""
        seen.add(header)
        line = text.count("\n", 0, m.end()) + 2
        return (f'#line 1 "{header}"\n' + source_text(header, seen)
                + f'\n#line {line} "{path}"')

    return _LOCAL_INCLUDE.sub(inline, text)


def compile(pin_dir: str, flows: int = layout.DEFAULT_FLOWS, debug: int = 0):
    """bcc.BPF for the program with its maps pinned under pin_dir (which must
    exist on a bpffs). Existing pinned maps are re-used as they are: check
    them with layout.check_pinned_layout before loading a program."""
    import bcc  # imported late: only the data plane process needs it

    src = source_dir() / SOURCE_NAME
    try:
        return bcc.BPF(text=source_text(src).encode(), cflags=cflags(pin_dir, flows), debug=debug)
    except Exception as e:  # bcc raises a bare Exception, the details go to stderr
        raise ProgramError(f"bcc failed to compile {src} with pins in {pin_dir}: {e}") from e


def load_xdp(bpf, name: str = XDP_MAIN):
    """Load (and verify) one XDP function; returns bcc's function object."""
    import bcc

    try:
        return bpf.load_func(name.encode(), bcc.BPF.XDP)
    except Exception as e:
        raise ProgramError(f"loading XDP program {name} failed (verifier log on stderr): {e}") from e


_libbpf = ct.CDLL("libbpf.so.1", use_errno=True)
_libbpf.bpf_obj_pin.argtypes = [ct.c_int, ct.c_char_p]
_libbpf.bpf_obj_get.argtypes = [ct.c_char_p]


def obj_get(path: str) -> int:
    """fd of a pinned map or program (libbpf bpf_obj_get)."""
    fd = _libbpf.bpf_obj_get(path.encode())
    if fd < 0:
        err = -fd if fd < -1 else ct.get_errno()
        raise OSError(err, f"bpf_obj_get {path}: {os.strerror(err)}")
    return fd


def obj_pin(fd: int, path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    rc = _libbpf.bpf_obj_pin(fd, path.encode())
    if rc < 0:
        err = -rc if rc < -1 else ct.get_errno()
        raise OSError(err, f"bpf_obj_pin {path}: {os.strerror(err)}")


def build_and_pin(pin_dir: str, flows: int) -> None:
    """Child side: compile, refuse mismatching pinned maps, load both
    programs and pin them as <pin_dir>/prog_<name>."""
    bpf = compile(pin_dir, flows)
    for name, spec in layout.map_specs(flows).items():
        layout.check_pinned_layout(spec, bpf.get_table(name.encode()).map_fd, f"{pin_dir}/{name}")
    for name in PROGRAMS:
        obj_pin(load_xdp(bpf, name).fd, f"{pin_dir}/{PROG_PIN_PREFIX}{name}")


def build_in_child(pin_dir: str, flows: int = layout.DEFAULT_FLOWS, timeout: float = 120.0) -> dict[str, int]:
    """Run build_and_pin in a child process; return {program name: fd}, the
    program pins removed again (our fds keep the programs alive)."""
    package_root = str(_HERE.parent.parent)          # the directory holding vc5/
    env = dict(os.environ)
    env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "vc5.xdp_loader.program", "--pin-dir", pin_dir, "--flows", str(int(flows))]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ProgramError(f"compiling the XDP program took more than {timeout:.0f} s") from None
    if proc.returncode == EXIT_LAYOUT:
        raise layout.LayoutError(proc.stderr.strip().splitlines()[-1])
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-30:])
        raise ProgramError(f"building the XDP program failed (exit {proc.returncode}):\n{tail}")
    fds = {}
    try:
        for name in PROGRAMS:
            path = f"{pin_dir}/{PROG_PIN_PREFIX}{name}"
            fds[name] = obj_get(path)
            os.unlink(path)
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="compile, check and load the vc5 XDP program; pin it")
    ap.add_argument("--pin-dir", required=True)
    ap.add_argument("--flows", type=int, default=layout.DEFAULT_FLOWS)
    args = ap.parse_args(argv)
    try:
        build_and_pin(args.pin_dir, args.flows)
    except layout.LayoutError as e:
        print(e, file=sys.stderr)
        return EXIT_LAYOUT
    except ProgramError as e:
        print(e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
