"""prefixes.py without the kernel: prefix validation, the state file (format, atomic replace,
errors naming file and line) and restore's rule "the file is the truth", on dict-backed maps."""

import ctypes as ct
import os

import pytest

from vc5.xdp_loader import layout
from vc5.xdp_loader import prefixes as px


class FakeTrie:
    """keys/lookup/update/delete of layout.MapHandle, keyed by the key's bytes."""

    def __init__(self, key_type):
        self.key_type = key_type
        self.d = {}

    def keys(self):
        out = []
        for raw in self.d:
            k = self.key_type()
            ct.memmove(ct.addressof(k), raw, len(raw))
            out.append(k)
        return out

    def lookup(self, k):
        return self.d.get(bytes(k))

    def update(self, k, v):
        self.d[bytes(k)] = v

    def delete(self, k):
        return self.d.pop(bytes(k), None) is not None


@pytest.fixture
def maps():
    return {"block4": FakeTrie(layout.Lpm4), "block6": FakeTrie(layout.Lpm6)}


def test_parse_prefix():
    assert str(px.parse_prefix(" 192.0.2.0/24 ")) == "192.0.2.0/24"
    assert str(px.parse_prefix("2001:db8::1")) == "2001:db8::1/128"
    with pytest.raises(px.PrefixError, match=r"'192.0.2.1/24': host bits set \(the prefix is 192.0.2.0/24\)"):
        px.parse_prefix("192.0.2.1/24")
    for bad in ("", "10.0.0.0/33", "example.com", None):
        with pytest.raises(px.PrefixError, match="not a prefix"):
            px.parse_prefix(bad)


def test_slots_and_buckets():
    assert px.slot4("10.0.16.1") == 0x00A001 and px.slot4_prefix(0x00A001) == "10.0.16.0/20"
    assert px.bucket6("2001:db8:1::1") == px.bucket6("2001:db8:1:ffff::/64") != px.bucket6("2001:db8:2::/48")
    assert 0 <= px.bucket6("::/0") < layout.PREFIX6_BUCKETS
    with pytest.raises(px.PrefixError, match="not IPv6"):
        px.bucket6("10.0.0.0/8")


def test_state_file_round_trip_and_errors(tmp_path):
    path = str(tmp_path / "sub" / px.STATE_NAME)
    assert px.read_state(path) == []                                   # absent: empty list
    nets = [px.parse_prefix(t) for t in ("2001:db8::/32", "10.0.0.0/8", "10.1.0.0/16")]
    px.write_state(path, nets)
    assert os.listdir(tmp_path / "sub") == [px.STATE_NAME]             # no temporary file left
    text = open(path).read()
    assert text.splitlines()[1:] == ["10.0.0.0/8", "10.1.0.0/16", "2001:db8::/32"]
    assert [str(n) for n in px.read_state(path)] == ["10.0.0.0/8", "10.1.0.0/16", "2001:db8::/32"]
    with open(path, "a") as f:
        f.write("  # a comment\n\n10.2.0.0/16  # inline comment\n10.3.0.1/16\n")
    with pytest.raises(px.PrefixError, match=rf"{path} line 8: '10.3.0.1/16': host bits set"):
        px.read_state(path)


def test_restore_makes_the_maps_hold_exactly_the_file(tmp_path, maps):
    path = str(tmp_path / px.STATE_NAME)
    p = px.Prefixes(maps, path)
    maps["block4"].update(px.lpm_key(px.parse_prefix("10.0.0.0/8")), layout.Block(packets=7))
    maps["block4"].update(px.lpm_key(px.parse_prefix("192.0.2.0/24")), layout.Block(packets=1))
    px.write_state(path, [px.parse_prefix("10.0.0.0/8"), px.parse_prefix("2001:db8::/32")])
    assert p.restore() == 2
    assert p.blocked() == {"10.0.0.0/8": 7, "2001:db8::/32": 0}        # kept entries keep their counts
    assert p.listed() == ("10.0.0.0/8", "2001:db8::/32")


def test_restore_without_a_file_empties_and_a_bad_file_keeps_the_maps(tmp_path, maps):
    p = px.Prefixes(maps, str(tmp_path / px.STATE_NAME))
    maps["block4"].update(px.lpm_key(px.parse_prefix("10.0.0.0/8")), layout.Block())
    assert p.restore() == 0 and p.blocked() == {}
    maps["block4"].update(px.lpm_key(px.parse_prefix("10.0.0.0/8")), layout.Block())
    (tmp_path / px.STATE_NAME).write_text("10.0.0.0/8\nbogus\n")
    with pytest.raises(px.PrefixError, match="line 2: 'bogus': not a prefix"):
        p.restore()
    assert p.listed() == ("10.0.0.0/8",) and p.blocked() == {"10.0.0.0/8": 0}


def test_changes_are_written_before_the_maps_and_bounded(tmp_path, maps, monkeypatch):
    path = str(tmp_path / px.STATE_NAME)
    p = px.Prefixes(maps, path)
    p.restore()
    assert p.block(["192.0.2.7", "2001:db8::/48"]) == ["192.0.2.7/32", "2001:db8::/48"]
    assert [str(n) for n in px.read_state(path)] == ["192.0.2.7/32", "2001:db8::/48"]
    p.unblock(["192.0.2.7/32"])
    assert [str(n) for n in px.read_state(path)] == ["2001:db8::/48"] and p.listed() == ("2001:db8::/48",)
    monkeypatch.setattr(layout, "MAX_BLOCKED", 2)
    with pytest.raises(px.PrefixError, match="3 IPv4 prefixes: the block list holds 2"):
        p.block(["10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/16"])
    assert [str(n) for n in px.read_state(path)] == ["2001:db8::/48"]     # nothing written
