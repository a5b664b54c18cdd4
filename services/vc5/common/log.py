"""Logging for vc5 services: journald with structured fields, or plain stderr.

Under systemd, records go to journald through python3-systemd's
JournalHandler, so each event keeps its fields (VC5_VIP=, VC5_BACKEND=,
MESSAGE_ID=...) and `journalctl VC5_VIP=192.0.2.1` finds it. Elsewhere (a
shell, a test) the same records are one line each on stderr:

    NOTICE vc5.healthd: backend went up vip=192.0.2.1 port=80 backend=10.1.10.10

vc5's per-VIP priorities map to syslog severities as in the Go vc5
(status.go priorityToSeverity): critical->ERR(3), high->WARNING(4),
medium->NOTICE(5), low->INFO(6). Python has no NOTICE level, so one is added
between INFO and WARNING, and journald PRIORITY= is derived accordingly.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, TextIO

from systemd import journal

NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

#: vc5 service priority -> logging level of that VIP's up/down events.
PRIORITY_LEVELS = {
    "critical": logging.ERROR,
    "high": logging.WARNING,
    "medium": NOTICE,
    "low": logging.INFO,
}

FIELD_PREFIX = "VC5_"
JOURNAL_SOCKET = "/run/systemd/journal/socket"


def priority_level(priority: str) -> int:
    """Logging level for a vc5 priority name (critical|high|medium|low)."""
    try:
        return PRIORITY_LEVELS[priority]
    except KeyError:
        raise ValueError(f"unknown priority {priority!r}: expected one of {', '.join(PRIORITY_LEVELS)}")


def syslog_priority(levelno: int) -> int:
    """journald PRIORITY (syslog severity 0..7) for a logging level, NOTICE included."""
    if levelno <= logging.DEBUG:
        return journal.LOG_DEBUG
    if levelno <= logging.INFO:
        return journal.LOG_INFO
    if levelno < logging.WARNING:
        return journal.LOG_NOTICE
    if levelno == logging.WARNING:
        return journal.LOG_WARNING
    if levelno <= logging.ERROR:
        return journal.LOG_ERR
    if levelno <= logging.CRITICAL:
        return journal.LOG_CRIT
    return journal.LOG_ALERT


class VC5JournalHandler(journal.JournalHandler):
    """JournalHandler whose PRIORITY knows NOTICE (upstream maps 25 to WARNING)."""

    map_priority = staticmethod(syslog_priority)
    mapPriority = map_priority


class StderrFormatter(logging.Formatter):
    """`LEVEL logger: message key=value ...`; VC5_* fields rendered as lowercase keys."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging API)
        line = super().formatMessage(record)
        pairs = [f"{key[len(FIELD_PREFIX):].lower()}={_quote(value)}"
                 for key, value in record.__dict__.items() if key.startswith(FIELD_PREFIX)]
        return " ".join([line] + pairs)


def _quote(value: Any) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in "\"'=\\" for c in text):
        return json.dumps(text)
    return text


def under_systemd() -> bool:
    return bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))


_installed: list[logging.Handler] = []


def setup(service: str, level: int = logging.INFO, *, journal_handler: bool | None = None,
          stream: TextIO | None = None) -> logging.Handler:
    """Route the root logger to journald (under systemd) or stderr; returns the handler.

    `journal_handler` forces the choice (None: journald iff JOURNAL_STREAM or
    INVOCATION_ID is set and journald's socket exists, so a unit in a
    container without journald still logs to stderr). Calling setup again
    replaces the handler installed before.
    """
    if journal_handler is None:
        journal_handler = under_systemd() and os.path.exists(JOURNAL_SOCKET)
    handler: logging.Handler
    if journal_handler:
        handler = VC5JournalHandler(SYSLOG_IDENTIFIER=service)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(StderrFormatter())
    root = logging.getLogger()
    for old in _installed:
        root.removeHandler(old)
    _installed[:] = [handler]
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def field_name(key: str) -> str:
    """journald field for an event keyword: vip -> VC5_VIP."""
    name = FIELD_PREFIX + key.upper()
    if not all(c.isascii() and (c.isalnum() or c == "_") for c in name) or len(name) > 64:
        raise ValueError(f"{key!r} cannot be a journald field name")
    return name


def event(logger: logging.Logger | str, level: int, message: str, *, message_id: str | None = None,
          **fields: Any) -> None:
    """Log `message` with structured fields: vip=... becomes VC5_VIP=... (None values are left out).

    `message_id` (see vc5.common.messages) becomes journald's MESSAGE_ID.
    """
    if isinstance(logger, str):
        logger = logging.getLogger(logger)
    if not logger.isEnabledFor(level):
        return
    extra: dict[str, Any] = {}
    if message_id is not None:
        extra["MESSAGE_ID"] = message_id
    for key, value in fields.items():
        if value is not None:
            extra[field_name(key)] = str(value)
    # stacklevel=2: CODE_FILE/CODE_LINE name the caller of event(), not this module.
    logger.log(level, message, extra=extra, stacklevel=2)
