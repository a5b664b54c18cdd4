"""vc5.common.log and vc5.common.messages: journald fields and stderr lines (no journald needed)."""

import io
import logging
import re

import pytest

from vc5.common import log, messages


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    log._installed.clear()


@pytest.fixture
def journal(restore_root):
    """setup() with the JournalHandler forced on and its send() captured."""
    sent = []
    handler = log.setup("vc5-test", logging.DEBUG, journal_handler=True)
    # Same signature as systemd.journal.send(MESSAGE, MESSAGE_ID=None, ..., **kwargs).
    handler.send = lambda MESSAGE, **fields: sent.append(dict(fields, MESSAGE=MESSAGE))  # noqa: N803
    return sent


@pytest.fixture
def stderr(restore_root):
    stream = io.StringIO()
    log.setup("vc5-test", logging.DEBUG, journal_handler=False, stream=stream)
    return stream


def test_event_sends_vc5_fields_and_message_id(journal):
    log.event("vc5.healthd", log.NOTICE, "backend 10.1.10.10 went up", message_id=messages.BACKEND_UP,
              vip="192.0.2.1", port=80, proto="tcp", backend="10.1.10.10", check="http", peer=None)
    assert len(journal) == 1
    fields = journal[0]
    assert fields["MESSAGE"] == "backend 10.1.10.10 went up"
    assert fields["MESSAGE_ID"] == messages.BACKEND_UP
    assert fields["PRIORITY"] == "5"
    assert fields["SYSLOG_IDENTIFIER"] == "vc5-test"
    assert fields["LOGGER"] == "vc5.healthd"
    vc5_fields = {k: v for k, v in fields.items() if k.startswith("VC5_")}
    assert vc5_fields == {"VC5_VIP": "192.0.2.1", "VC5_PORT": "80", "VC5_PROTO": "tcp",
                          "VC5_BACKEND": "10.1.10.10", "VC5_CHECK": "http"}
    # CODE_FILE/CODE_LINE point at the caller, not at vc5/common/log.py.
    assert fields["CODE_FILE"].endswith("test_common_log.py")


@pytest.mark.parametrize("level, priority", [
    (logging.DEBUG, "7"), (logging.INFO, "6"), (log.NOTICE, "5"), (logging.WARNING, "4"),
    (logging.ERROR, "3"), (logging.CRITICAL, "2"),
])
def test_journal_priority(journal, level, priority):
    logging.getLogger("vc5.t").log(level, "x")
    assert journal[-1]["PRIORITY"] == priority


@pytest.mark.parametrize("name, priority", [("critical", "3"), ("high", "4"), ("medium", "5"), ("low", "6")])
def test_vc5_priorities_reach_journald_as_vc5_severities(journal, name, priority):
    log.event("vc5.healthd", log.priority_level(name), "VIP 192.0.2.1 went down",
              message_id=messages.VIP_DOWN, vip="192.0.2.1")
    assert journal[-1]["PRIORITY"] == priority


def test_priority_level_rejects_unknown():
    with pytest.raises(ValueError, match="unknown priority 'urgent'"):
        log.priority_level("urgent")


def test_stderr_line(stderr):
    log.event("vc5.bgpd", logging.WARNING, "BGP session down", message_id=messages.BGP_SESSION_DOWN,
              peer="10.0.0.1", diagnostic="Hold timer expired")
    assert stderr.getvalue() == \
        'WARNING vc5.bgpd: BGP session down peer=10.0.0.1 diagnostic="Hold timer expired"\n'


def test_stderr_plain_records_and_notice(stderr):
    logging.getLogger("vc5.x").log(log.NOTICE, "100% done")
    assert stderr.getvalue() == "NOTICE vc5.x: 100% done\n"


def test_stderr_exceptions_keep_traceback(stderr):
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("vc5.x").exception("failed")
    text = stderr.getvalue()
    assert text.startswith("ERROR vc5.x: failed\nTraceback")
    assert "RuntimeError: boom" in text


def test_level_filters_events(restore_root):
    stream = io.StringIO()
    log.setup("vc5-test", logging.WARNING, journal_handler=False, stream=stream)
    log.event("vc5.x", logging.INFO, "hidden", vip="192.0.2.1")
    log.event("vc5.x", logging.ERROR, "shown")
    assert stream.getvalue() == "ERROR vc5.x: shown\n"


def test_setup_replaces_its_previous_handler(restore_root):
    first = log.setup("vc5-test", journal_handler=False, stream=io.StringIO())
    second = log.setup("vc5-test", journal_handler=False, stream=io.StringIO())
    root = logging.getLogger().handlers
    assert second in root and first not in root


def test_setup_chooses_journal_only_under_systemd_with_journald(restore_root, monkeypatch, tmp_path):
    for var in ("JOURNAL_STREAM", "INVOCATION_ID"):
        monkeypatch.delenv(var, raising=False)
    socket_path = tmp_path / "journal.socket"
    monkeypatch.setattr(log, "JOURNAL_SOCKET", str(socket_path))
    assert isinstance(log.setup("vc5-test"), logging.StreamHandler)
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    assert isinstance(log.setup("vc5-test"), logging.StreamHandler), "no journald socket: stderr"
    socket_path.touch()
    handler = log.setup("vc5-test")
    assert isinstance(handler, log.VC5JournalHandler)
    assert handler._extra["SYSLOG_IDENTIFIER"] == "vc5-test"


def test_bad_field_name_is_rejected(journal):
    with pytest.raises(ValueError, match="cannot be a journald field name"):
        log.event("vc5.x", logging.INFO, "m", **{"bad-key": 1})


def test_message_ids_are_distinct_128_bit_hex():
    assert len(messages.ALL) == 12
    assert len(set(messages.ALL.values())) == 12
    for value in messages.ALL.values():
        assert re.fullmatch(r"[0-9a-f]{32}", value)
