"""The table of service and policy-entry keys (vc5.config.service_keys): help, defaults, use."""

import dataclasses
import os
import re

import pytest
import yaml

from vc5.config import ConfigError, Service, load_text
from vc5.config import service_keys
from vc5.config.model import CHECK_TYPES
from vc5.config.reader import Reader
from vc5.config.service_keys import CHECK_SETTINGS, SETTINGS, Key

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "configuration.md")


def service(extra="", entry=""):
    """One service with extra service-level lines (line 5 on) and the value of its policy entry http."""
    return ("vlans: {10: 10.1.10.0/24}\n"
            "services:\n"
            "  - virtual: 192.0.2.1\n"
            "    servers: [10.1.10.10]\n"
            f"{extra}"
            "    policy:\n"
            f"      http: {entry}\n")


SERVICE_FIELDS = {f.name: f for f in dataclasses.fields(Service)}


def node_of(value):
    """The YAML node an operator would write for value."""
    return yaml.compose(yaml.safe_dump(list(value) if isinstance(value, tuple) else value))


@pytest.mark.parametrize("key", sorted(SETTINGS))
def test_every_key_has_a_one_line_help(key):
    text = SETTINGS[key].help
    assert text.strip() and "\n" not in text and len(text) <= 100


@pytest.mark.parametrize("key", sorted(SETTINGS))
def test_every_default_is_unset_or_accepted_by_its_reader(key):
    row = SETTINGS[key]
    if row.default is None:
        return
    r = Reader("t.yaml")
    assert row.reader(r, node_of(row.default), key) == row.default
    assert r.problems == []


@pytest.mark.parametrize("key", sorted(k for k in SETTINGS if SETTINGS[k].field))
def test_a_key_sets_a_service_field_whose_default_is_the_tables(key):
    row = SETTINGS[key]
    assert row.field in SERVICE_FIELDS
    if row.default is not None:
        assert SERVICE_FIELDS[row.field].default == row.default


def test_an_unwritten_key_takes_its_default():
    s = load_text(service(), source="t.yaml").services[0]
    for row in SETTINGS.values():
        if row.field and row.default is not None:
            assert getattr(s, row.field) == row.default
    assert s.explicit == frozenset()


def test_every_key_is_documented():
    with open(DOCS) as f:
        docs = f.read()
    for key in list(SETTINGS) + list(CHECK_SETTINGS):
        assert f"`{key}`" in docs, key


def test_check_keys_apply_to_check_types_and_have_help():
    for key, row in CHECK_SETTINGS.items():
        assert row.help.strip() and "\n" not in row.help, key
        assert row.applies and set(row.applies) <= set(CHECK_TYPES), key


def test_an_unknown_key_is_reported_where_it_is_written():
    text = service("    colour: blue\n", "{shade: dark}")
    with pytest.raises(ConfigError) as e:
        load_text(text, source="t.yaml")
    got = [str(p) for p in e.value.problems]
    assert len(got) == 2
    assert got[0].startswith("t.yaml:5:5: services[0].colour: unknown key 'colour'; allowed here: ")
    assert got[1].startswith("t.yaml:7:14: services[0].policy.http.shade: unknown key 'shade'; "
                             "allowed here: ")
    allowed = set(re.search(r"allowed here: (.*)", got[0]).group(1).split(", "))
    assert allowed == set(SETTINGS) | {"virtual", "servers", "policy"}
    allowed = set(re.search(r"allowed here: (.*)", got[1]).group(1).split(", "))
    assert allowed == set(SETTINGS) | {"bind", "checks", "port"}


def test_a_close_unknown_key_gets_a_suggestion():
    with pytest.raises(ConfigError) as e:
        load_text(service("    prority: high\n", ""), source="t.yaml")
    assert str(e.value).startswith("t.yaml:5:5: services[0].prority: unknown key 'prority' "
                                   "(did you mean 'priority'?); allowed here: ")


def colour(r, node, path):
    s = r.text(node, path)
    if s is not None and s not in ("red", "blue"):
        r.error(node, path, f"colour '{s}' is not red or blue")
        return None
    return s


def test_a_row_added_to_the_table_is_a_key_accepted(monkeypatch):
    text = service("    colour: blue\n", "{colour: red}")
    with pytest.raises(ConfigError):
        load_text(text, source="t.yaml")
    table = dict(SETTINGS, colour=Key(colour, None, "a colour"))
    monkeypatch.setattr(service_keys, "SETTINGS", table)
    cfg = load_text(text, source="t.yaml")
    assert [s.key for s in cfg.services] == ["192.0.2.1:80:tcp"]


def test_an_added_row_s_reader_reports_at_the_value(monkeypatch):
    monkeypatch.setattr(service_keys, "SETTINGS", dict(SETTINGS, colour=Key(colour, None, "a colour")))
    with pytest.raises(ConfigError) as e:
        load_text(service("", "{colour: green}"), source="t.yaml")
    assert [str(p) for p in e.value.problems] == [
        "t.yaml:6:22: services[0].policy.http.colour: colour 'green' is not red or blue"]


def test_a_row_removed_from_the_table_is_a_key_refused(monkeypatch):
    text = service("    sticky: true\n", "")
    assert load_text(text, source="t.yaml").services[0].sticky is True
    monkeypatch.setattr(service_keys, "SETTINGS", {k: v for k, v in SETTINGS.items() if k != "sticky"})
    with pytest.raises(ConfigError) as e:
        load_text(text, source="t.yaml")
    assert str(e.value).startswith("t.yaml:5:5: services[0].sticky: unknown key 'sticky'")


def test_a_row_s_default_is_what_compilation_uses(monkeypatch):
    need = dataclasses.replace(SETTINGS["need"], default=0)
    monkeypatch.setattr(service_keys, "SETTINGS", dict(SETTINGS, need=need))
    s = load_text(service(), source="t.yaml").services[0]
    assert s.need == 0
