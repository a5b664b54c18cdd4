"""Find, compile (bcc) and load the XDP program in bpf/vc5_xdp.c.

    source_dir() -> the directory holding vc5_xdp.c and its headers
    compile(pin_dir, flows=...) -> bcc.BPF (maps created or re-used, pinned)
    load_xdp(bpf, name=XDP_MAIN) -> bcc function object; .fd is the program fd
                                    to attach (bcc: BPF.attach_xdp(dev, fn, flags),
                                    or libbpf bpf_xdp_attach with that fd)

Program names: XDP_MAIN ("xdp_main", the balancer for the NICs) and
XDP_PASS ("xdp_pass", returns XDP_PASS: for a veth peer that needs a native
program, and the benchmark floor).

The source is looked up in this order: $VC5_BPF_DIR, <repo>/bpf (running
from a checkout), /usr/share/vc5/bpf (Debian package), <package>/bpf.
Compiling takes ~0.6 s (own minimal headers; no <linux/*.h>).
"""

from __future__ import annotations

import os
from pathlib import Path

from . import layout

XDP_MAIN = "xdp_main"
XDP_PASS = "xdp_pass"
SOURCE_NAME = "vc5_xdp.c"

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
        f"-DVC5_MAX_SERVICES={layout.MAX_SERVICES}",
        f"-DVC5_MAX_VIPS={layout.MAX_VIPS}",
        f"-DVC5_MAX_PAIRS={layout.MAX_PAIRS}",
        f"-DVC5_REDIRECT_SLOTS={layout.REDIRECT_SLOTS}",
    ]


def compile(pin_dir: str, flows: int = layout.DEFAULT_FLOWS, debug: int = 0):
    """bcc.BPF for the program with its maps pinned under pin_dir (which must
    exist on a bpffs). Existing pinned maps are re-used as they are: check
    them with layout.check_pinned_layout before loading a program."""
    import bcc  # imported late: only the data plane process needs it

    src = source_dir() / SOURCE_NAME
    try:
        return bcc.BPF(src_file=str(src).encode(), cflags=cflags(pin_dir, flows), debug=debug)
    except Exception as e:  # bcc raises a bare Exception, the details go to stderr
        raise ProgramError(f"bcc failed to compile {src} with pins in {pin_dir}: {e}") from e


def load_xdp(bpf, name: str = XDP_MAIN):
    """Load (and verify) one XDP function; returns bcc's function object."""
    import bcc

    try:
        return bpf.load_func(name.encode(), bcc.BPF.XDP)
    except Exception as e:
        raise ProgramError(f"loading XDP program {name} failed (verifier log on stderr): {e}") from e
