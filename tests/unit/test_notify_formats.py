"""vc5-notifyd payloads: Slack text, Teams card, Elasticsearch documents and _bulk responses."""

import json
from datetime import datetime, timezone

import pytest

from vc5.common import messages
from vc5.config import load_text
from vc5.notifyd import formats, settings
from vc5.notifyd.follower import Event, parse_match, to_event

CURSOR = "s=8ff5eb1dbea34f979f79ae8f59840e0e;i=3a;b=464d;m=2b1;t=661d;x=f0f2"
WHEN = datetime(2026, 12, 4, 12, 0, 0, tzinfo=timezone.utc)


def event(priority=3, **kw):
    base = dict(cursor=CURSOR, time=WHEN, priority=priority, message="backend went down",
                identifier="vc5-healthd", logger="vc5.healthd", message_id=messages.BACKEND_DOWN,
                host="lb1", fields={"vip": "192.0.2.1", "backend": "10.1.10.10", "reason": "timeout"})
    base.update(kw)
    return Event(**base)


def test_slack_is_vc5s_line():
    assert formats.slack(event(), "lb1") == {
        "text": "lb1 vc5.healthd[ERR]: backend went down backend=10.1.10.10 reason=timeout vip=192.0.2.1"}


def test_module_falls_back_to_the_identifier():
    assert formats.line(event(logger="", fields={}), "h") == "h vc5-healthd[ERR]: backend went down"


def test_teams_card_envelope():
    body = formats.teams(event(priority=4), "lb1")
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.2"
    assert card["body"][0]["text"] == "lb1 vc5.healthd WARNING" and card["body"][0]["color"] == "warning"
    assert {"title": "vip", "value": "192.0.2.1"} in card["body"][2]["facts"]


def test_document_has_vc5s_fields_and_ours():
    doc = formats.document(event(), "lb1")
    ms = int(WHEN.timestamp() * 1000)
    assert doc["host.id"] == "lb1" and doc["@timestamp"] == ms and doc["date"] == ms
    assert doc["level"] == "ERR" and doc["event.severity"] == 3
    assert doc["event.module"] == "vc5.healthd" and doc["event.action"] == "backend_down"
    assert doc["event.kind"] == "alert" and doc["event.reason"] == "timeout"
    assert doc["vc5.vip"] == "192.0.2.1" and doc["journal.cursor"] == CURSOR
    assert formats.document(event(priority=5), "h")["event.kind"] == "state"
    assert formats.document(event(message_id=""), "h")["event.kind"] == "event"


def test_bulk_is_ndjson_create_with_the_entry_id():
    body = formats.bulk([event(), event(cursor=CURSOR.replace("i=3a", "i=3b"))], "vc5", "lb1")
    assert body.endswith(b"\n")
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert len(lines) == 4
    assert lines[0] == {"create": {"_index": "vc5", "_id": "8ff5eb1dbea34f979f79ae8f59840e0e-3a"}}
    assert lines[2]["create"]["_id"].endswith("-3b")
    assert lines[1]["message"].startswith("backend went down")


def item(status, **error):
    out = {"create": {"status": status}}
    if error:
        out["create"]["error"] = error
    return out


def test_bulk_result_per_item():
    r = formats.BulkResult({"errors": True, "items": [
        item(201), item(409, type="version_conflict_engine_exception"),
        item(429, type="es_rejected_execution_exception", reason="queue"),
        item(400, type="mapper_parsing_exception", reason="failed to parse")]}, 4)
    assert r.outcomes == ["ok", "ok", "retry", "rejected"]
    assert r.retry and r.rejected() == [3]
    assert r.errors[3] == "status 400 mapper_parsing_exception: failed to parse"


@pytest.mark.parametrize("body,count,why", [
    ({"took": 1}, 1, "no \"items\""), ({"items": [item(201)]}, 2, "1 items for 2 documents"),
    ([], 0, "items")])
def test_bulk_result_refuses_a_malformed_response(body, count, why):
    with pytest.raises(ValueError, match=why):
        formats.BulkResult(body, count)


def test_to_event_from_a_reader_entry():
    import uuid
    e = to_event({"__CURSOR": CURSOR, "MESSAGE": "up", "PRIORITY": 5,
                  "MESSAGE_ID": uuid.UUID(messages.VIP_UP),
                  "VC5_VIP": "192.0.2.9", "SYSLOG_IDENTIFIER": "vc5-healthd",
                  "__REALTIME_TIMESTAMP": datetime(2026, 1, 1, tzinfo=timezone.utc)})
    assert (e.priority, e.message_id, e.fields) == (5, messages.VIP_UP, {"vip": "192.0.2.9"})
    assert e.entry_id == "8ff5eb1dbea34f979f79ae8f59840e0e-3a"
    assert to_event({"__CURSOR": CURSOR}).priority == 6, "no PRIORITY= is INFO"


def test_match_syntax():
    assert parse_match("SYSLOG_IDENTIFIER=x") == "SYSLOG_IDENTIFIER=x"
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_match("syslog_identifier=x")


def test_settings_from_the_configuration():
    cfg = load_text("host_id: lb9\nlogging:\n  alert: 4\n  teams: https://t.example/hook\n"
                    "  elasticsearch:\n    index: vc5\n    username: elastic\n    password: pw\n")
    sinks = settings.sinks(cfg)
    assert set(sinks) == {"teams", "elasticsearch"}
    assert sinks["teams"].alert == 4 and sinks["teams"].host == "lb9"
    assert sinks["teams"].wants(4) and not sinks["teams"].wants(5)
    es = sinks["elasticsearch"]
    assert es.urls == settings.DEFAULT_ES and (es.username, es.password) == ("elastic", "pw")
    assert "pw" not in repr(es)
    assert settings.sinks(load_text("logging:\n  elasticsearch:\n    addresses: [http://e:9200]\n")) == {}, \
        "no index, no Elasticsearch (as vc5)"
