"""The journal cursor of one sink, kept in a file: what the endpoint has acknowledged.

Invariant (at-least-once, ordered): the file names the last journal entry
the endpoint accepted, or is empty meaning "from the first matching entry".
It is written only after the endpoint's acknowledgement, atomically (a
temporary file, fsync, rename, fsync of the directory), so after a crash
it names either the old or the new position, never half of one. A sink
that has no file yet starts at the journal's tail (a newly configured
webhook is not flooded with history); see follower.Follower.start_cursor.
"""

from __future__ import annotations

import os

from vc5.common import files

MAX_CURSOR = 4096   # a journald cursor is ~140 bytes; anything larger is not one


class CursorError(ValueError):
    pass


class CursorStore:
    """`<directory>/cursor-<sink>`: load() -> str | None (no file), save(cursor)."""

    def __init__(self, directory: str, sink: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, f"cursor-{sink}")

    def load(self) -> str | None:
        """The saved cursor ("" = from the start), or None when this sink never saved one."""
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_CURSOR + 1)
        except FileNotFoundError:
            return None
        if len(data) > MAX_CURSOR:
            raise CursorError(f"{self.path}: longer than {MAX_CURSOR} bytes, not a journal cursor")
        try:
            text = data.decode("ascii").strip()
        except UnicodeDecodeError:
            raise CursorError(f"{self.path}: not ASCII, not a journal cursor") from None
        if text and not text.startswith("s="):
            raise CursorError(f"{self.path}: {text[:40]!r} is not a journal cursor (expected s=...)")
        return text

    def save(self, cursor: str) -> None:
        """Replace the file atomically and durably with `cursor`."""
        if "\n" in cursor or len(cursor) > MAX_CURSOR:
            raise CursorError(f"refusing to save {cursor[:40]!r}: not a journal cursor")
        files.replace_file(self.path, cursor.encode("ascii") + b"\n", durable=True)     # mode 0600
