"""Configuration problems: every problem found, each pinned to FILE:LINE:COLUMN.

Invariant: a ConfigError is raised only after the whole file has been read, so
it carries every problem at once (operators fix a file in one pass, not one
error per reload).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration.

    line and column are 1-based (as editors count); 0 means "no position"
    (e.g. the file could not be read at all).
    """

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        if self.path:
            return f"{where}: {self.path}: {self.message}"
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration was refused; .problems lists every reason, in file order."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def did_you_mean(word: str, choices) -> str:
    """' (did you mean 'x'?)' when a choice is close to word, else ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
