"""vc5ctl block without a bus: parser wiring, the table, and what reaches the Manager (a stand-in
for manager_call / the read); tests/dbus/test_xdp_loader_prefixes.py runs it against the real loader."""

import pytest

from vc5.cli import __main__ as cli
from vc5.cli import block_cmd
from vc5.cli.ops_cmd import EXIT_ABSENT, OpError


def test_table_lists_every_entry_with_its_drops():
    out = block_cmd.format_blocked(("10.0.0.0/8", "2001:db8::/32"), {"10.0.0.0/8": 12})
    assert out.splitlines() == ["PREFIX         DROPPED", "10.0.0.0/8     12", "2001:db8::/32  -"]
    assert block_cmd.format_blocked((), {}) == "block list: empty"


@pytest.fixture
def fake(monkeypatch):
    calls, state = [], {"listed": ("192.0.2.0/24",), "error": None}

    async def manager_call(bus_name, path, interface, member, signature="", body=None, what=""):
        calls.append((interface, member, signature, body, what))
        if state["error"]:
            raise state["error"]

    async def read():
        if state["error"] and state["error"].code == EXIT_ABSENT:
            raise state["error"]
        return state["listed"], {"192.0.2.0/24": 3}

    monkeypatch.setattr(block_cmd, "manager_call", manager_call)
    monkeypatch.setattr(block_cmd, "_read", read)
    return calls, state


def test_add_and_del_call_the_manager_with_every_prefix(fake, capsys):
    calls, _ = fake
    assert cli.main(["block", "add", "192.0.2.0/24", "2001:db8::1"]) == 0
    assert cli.main(["block", "del", "192.0.2.0/24"]) == 0
    assert calls == [
        ("org.vc5.XdpLoader1.Manager", "BlockPrefixes", "as", [["192.0.2.0/24", "2001:db8::1"]], "block add"),
        ("org.vc5.XdpLoader1.Manager", "UnblockPrefixes", "as", [["192.0.2.0/24"]], "block del")]
    assert "192.0.2.0/24  3" in capsys.readouterr().out


def test_list_is_the_default(fake, capsys):
    assert cli.main(["block"]) == 0
    assert cli.main(["block", "list"]) == 0
    assert capsys.readouterr().out.count("192.0.2.0/24  3") == 2


def test_refusals_keep_their_exit_status(fake, capsys):
    calls, state = fake
    state["error"] = OpError("vc5-xdp-loader: ...BlockPrefixes failed: '10.1.2.3/8': host bits set")
    assert cli.main(["block", "add", "10.1.2.3/8"]) == 1
    assert "'10.1.2.3/8': host bits set" in capsys.readouterr().err
    state["error"] = OpError("vc5-xdp-loader is not running", EXIT_ABSENT)
    assert cli.main(["block", "list"]) == EXIT_ABSENT


def test_add_needs_a_prefix():
    with pytest.raises(SystemExit) as e:
        cli.main(["block", "add"])
    assert e.value.code == 2
