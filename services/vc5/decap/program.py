"""Find and compile bpf/vc5_decap.c with bcc; hand back the program and map fds.

The source is looked up in $VC5_DECAP_BPF_DIR, <repo>/bpf (a checkout),
/usr/share/vc5-decap/bpf (the vc5-decap package), /usr/share/vc5/bpf.
`build_id()` hashes the source and the compiler flags: `attach` re-uses the
pinned program and maps (counters kept, no compile) when it matches.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from . import maps

SOURCE_NAME = "vc5_decap.c"
PROGRAM = "xdp_decap"
MAX_VIPS = 4096
MAP_NAMES = ("config", "stats", "vips")

_HERE = Path(__file__).resolve().parent
_CANDIDATES = (
    _HERE.parent.parent.parent / "bpf",      # checkout: services/vc5/decap -> repo/bpf
    Path("/usr/share/vc5-decap/bpf"),        # debian/vc5-decap.install
    Path("/usr/share/vc5/bpf"),
)


class ProgramError(RuntimeError):
    """The program could not be found, compiled or loaded."""


def source_path() -> Path:
    env = os.environ.get("VC5_DECAP_BPF_DIR")
    candidates = (Path(env),) if env else _CANDIDATES
    for d in candidates:
        if (d / SOURCE_NAME).is_file():
            return d / SOURCE_NAME
    raise ProgramError(f"{SOURCE_NAME} not found in " + ", ".join(str(d) for d in candidates))


def cflags() -> list[str]:
    return [f"-DVC5D_MAX_VIPS={MAX_VIPS}"]


def build_id(src: Path | None = None) -> int:
    """64-bit hash of the source, the flags and the layout version."""
    src = src or source_path()
    h = hashlib.sha256(src.read_bytes())
    h.update(repr((cflags(), maps.LAYOUT_VERSION)).encode())
    return int.from_bytes(h.digest()[:8], "little")


@dataclass
class Built:
    """A freshly loaded program: fds owned by `bpf` (keep it alive until pinned)."""
    bpf: object
    prog_fd: int
    map_fds: dict
    build: int


def build() -> Built:
    """Compile and load (verify) the program; its maps are new and empty."""
    import bcc  # late: status and detach never need it

    src = source_path()
    try:
        bpf = bcc.BPF(src_file=str(src).encode(), cflags=cflags())
    except Exception as e:  # bcc raises a bare Exception; the compiler's messages went to stderr
        raise ProgramError(f"bcc failed to compile {src}: {e}") from e
    try:
        fn = bpf.load_func(PROGRAM.encode(), bcc.BPF.XDP)
    except Exception as e:
        raise ProgramError(f"loading {PROGRAM} failed (verifier log on stderr): {e}") from e
    fds = {name: bpf.get_table(name.encode()).map_fd for name in MAP_NAMES}
    return Built(bpf, fn.fd, fds, build_id(src))
