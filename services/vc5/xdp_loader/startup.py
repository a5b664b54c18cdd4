"""What must hold before the loader touches anything (docs/data-plane.md, "One loader per
host"): the lock file (one loader per host: a second one exits at once, having attached
nothing) and a configuration that validates. The bus name is the second guard (daemon.py).
"""

from __future__ import annotations

import fcntl
import os

DEFAULT_LOCK = "/run/vc5/xdp-loader/lock"


class StartupError(Exception):
    """The loader cannot start; the message says why and what to do."""


def take_lock(path: str) -> int:
    """flock(LOCK_EX|LOCK_NB) on `path`; returns the fd (held for the process's life)."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        finally:
            os.close(fd)
        raise StartupError(f"another vc5-xdp-loader (pid {holder}) holds the lock {path}; "
                           "only one loader may own the data plane") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def load_config(path: str, need_interfaces: bool = False):
    """vc5.yaml, validated; StartupError with its problems otherwise."""
    from vc5.config import ConfigError, load

    try:
        cfg = load(path)
    except ConfigError as e:
        raise StartupError(f"configuration refused:\n{e}") from None
    except OSError as e:
        raise StartupError(f"cannot read the configuration {path}: {e.strerror or e}") from None
    if need_interfaces and not cfg.interfaces:
        raise StartupError(f"{path}: no interfaces: list the NICs to attach XDP to (interfaces: [eth0, ...])")
    return cfg
