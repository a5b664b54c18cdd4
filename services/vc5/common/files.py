"""Replacing a small state file so that a reader sees the whole old or the whole new content.

    replace_file(path, data)                 # temporary file beside it, rename over it
    replace_file(path, data, durable=True)   # ... and fsync the file and its directory first/after
    fsync_directory(directory)               # make a rename or an unlink in it durable

The temporary file has a name of its own (mkstemp, mode 0600 unless `mode`), so
two writers of one path (two loaders in tests) never write into each other's
temporary file, and a failed write leaves the old file and no temporary behind.
"""

from __future__ import annotations

import os
import tempfile


def fsync_directory(directory: str) -> None:
    fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: str, data: bytes | str, *, durable: bool = False, mode: int | None = None,
                 make_directory: int | None = None) -> None:
    """Atomically replace `path` with `data`. `durable`: survives a power cut once this returns.
    `mode`: the file's permission bits (default 0600). `make_directory`: create the directory
    with these bits if it is missing."""
    directory = os.path.dirname(path) or "."
    if make_directory is not None:
        os.makedirs(directory, mode=make_directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        fsync_directory(directory)
