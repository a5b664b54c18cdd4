"""Payloads for Slack, Teams and Elasticsearch from journal events (pure functions).

The text is vc5's (vc5:logging.go `payload`): "<host-id> <module>[<LEVEL>]:
<text>", where the module is the logger (vc5.healthd) or else the syslog
identifier, and the text is the message followed by the event's VC5_* fields
as key=value (sorted). Elasticsearch documents carry vc5's fields (host.id,
date and @timestamp in ms since the epoch, level, event.module,
event.action, event.severity, event.kind) plus ours under "journal." and
"vc5." (docs/notifications.md, "Documents").
"""

from __future__ import annotations

import json

from vc5.common import messages

from .follower import Event

LEVELS = ("EMERG", "ALERT", "CRIT", "ERR", "WARNING", "NOTICE", "INFO", "DEBUG")
ACTIONS = {mid: name.lower() for name, mid in messages.ALL.items()}   # id -> backend_up, ...
# Teams Adaptive Card colours by severity (Adaptive Cards 1.2 TextBlock "color").
COLOURS = {0: "attention", 1: "attention", 2: "attention", 3: "attention", 4: "warning"}


def level(priority: int) -> str:
    return LEVELS[min(max(priority, 0), 7)]


def module(event: Event) -> str:
    return event.logger or event.identifier or "vc5"


def text(event: Event) -> str:
    """The message, then its VC5_* fields as key=value (sorted), on one line."""
    pairs = " ".join(f"{k}={v}" for k, v in sorted(event.fields.items()))
    return f"{event.message} {pairs}" if pairs else event.message


def line(event: Event, host: str) -> str:
    """vc5's alert line: '<host> <module>[<LEVEL>]: <text>'."""
    return f"{host} {module(event)}[{level(event.priority)}]: {text(event)}"


def slack(event: Event, host: str) -> dict:
    """Slack incoming webhook body (https://api.slack.com/messaging/webhooks)."""
    return {"text": line(event, host)}


def teams(event: Event, host: str) -> dict:
    """Teams incoming webhook: an Adaptive Card in the "message" envelope (as vc5 sends)."""
    title = f"{host} {module(event)} {level(event.priority)}"
    colour = COLOURS.get(event.priority, "default")
    body = [{"type": "TextBlock", "text": title, "weight": "bolder", "wrap": True, "color": colour},
            {"type": "TextBlock", "text": text(event), "wrap": True}]
    facts = [{"title": k, "value": v} for k, v in sorted(event.fields.items())]
    if facts:
        body.append({"type": "FactSet", "facts": facts})
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
            "version": "1.2", "body": body}
    return {"type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
                             "content": card}]}


def kind(event: Event) -> str:
    """vc5's event.kind: 'alert' for events with a MESSAGE_ID at WARNING or worse, 'state' for the
    other MESSAGE_ID events (up/down, loaded...), 'event' for plain log lines."""
    if not event.message_id:
        return "event"
    return "alert" if event.priority <= 4 else "state"


def document(event: Event, host: str) -> dict:
    """One Elasticsearch document: vc5's keys plus journal.* and vc5.* (the VC5_* fields)."""
    ms = int(event.time.timestamp() * 1000)
    doc = {"host.id": host, "date": ms, "@timestamp": ms, "level": level(event.priority),
           "event.module": module(event), "event.action": ACTIONS.get(event.message_id, ""),
           "event.severity": event.priority, "event.kind": kind(event), "message": text(event),
           "journal.cursor": event.cursor, "journal.message_id": event.message_id,
           "journal.identifier": event.identifier, "journal.hostname": event.host}
    if "reason" in event.fields:
        doc["event.reason"] = event.fields["reason"]
    for k, v in event.fields.items():
        doc[f"vc5.{k}"] = v
    return doc


def bulk(events: list[Event], index: str, host: str) -> bytes:
    """The _bulk NDJSON body: a `create` per event with _id = the entry's id, so a batch sent again
    after a crash creates nothing twice (409 version_conflict for the ones already there)."""
    out = []
    for event in events:
        out.append(json.dumps({"create": {"_index": index, "_id": event.entry_id}}, separators=(",", ":")))
        out.append(json.dumps(document(event, host), separators=(",", ":")))
    return ("\n".join(out) + "\n").encode()


class BulkResult:
    """A parsed _bulk response: per item 'ok' (2xx, or 409 = already there), 'retry' (429, 5xx) or
    'rejected' (any other status: the document itself is refused, e.g. a mapping error)."""

    def __init__(self, body: object, count: int) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise ValueError("the _bulk response has no \"items\" list")
        items = body["items"]
        if len(items) != count:
            raise ValueError(f"the _bulk response has {len(items)} items for {count} documents")
        self.outcomes: list[str] = []
        self.errors: list[str] = []
        for item in items:
            result = next(iter(item.values()), {}) if isinstance(item, dict) and item else {}
            status = result.get("status", 0) if isinstance(result, dict) else 0
            if 200 <= status < 300 or status == 409:
                self.outcomes.append("ok")
                self.errors.append("")
                continue
            self.outcomes.append("retry" if status == 429 or status >= 500 or not status else "rejected")
            error = result.get("error") if isinstance(result, dict) else None
            if isinstance(error, dict):
                error = f"{error.get('type', '?')}: {error.get('reason', '')}"
            self.errors.append(f"status {status} {error or ''}".strip())

    @property
    def retry(self) -> bool:
        return "retry" in self.outcomes

    def rejected(self) -> list[int]:
        return [i for i, o in enumerate(self.outcomes) if o == "rejected"]
