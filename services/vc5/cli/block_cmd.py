"""vc5ctl block add|del|list: the data plane's block list of source prefixes.

`add` / `del` call org.vc5.XdpLoader1.Manager.BlockPrefixes / UnblockPrefixes
(root and the group vc5, by bus policy): packets from a blocked source prefix
are dropped by the XDP program before any other work; the list is kept in
the loader's state directory across restarts and reboots
(docs/data-plane.md, "Source prefixes and the block list"). The loader
validates every prefix; one bad prefix is refused by name and nothing
changes. `list` (everyone) prints each entry with the packets it dropped
(the most specific matching entry counts a packet).

Exit status as the other subcommands (ops_cmd.py): 0 ok; 1 failed (e.g. a bad
prefix); 3 vc5-xdp-loader is not running; 4 permission denied; 5 no system bus.
"""

from __future__ import annotations

from vc5.common import names, wire

from .ops_cmd import EXIT_ABSENT, OpError, _call, _connect, _get_all, _run, manager_call


def format_blocked(listed, counts) -> str:
    """The block list as a table: PREFIX and the packets each entry dropped."""
    if not listed:
        return "block list: empty"
    width = max(len("PREFIX"), *(len(p) for p in listed))
    lines = [f"{'PREFIX':<{width}}  DROPPED"]
    for p in listed:
        n = counts.get(p)
        lines.append(f"{p:<{width}}  {n if n is not None else '-'}")
    return "\n".join(lines)


async def _read():
    bus = await _connect()
    try:
        props = await _get_all(bus, names.XDP_LOADER_BUS, names.XDP_LOADER_PATH, wire.XDP_LOADER)
        if props is None:
            raise OpError(f"vc5-xdp-loader is not running ({names.XDP_LOADER_BUS} is not on the bus); "
                          "start it with: systemctl start vc5-xdp-loader", EXIT_ABSENT)
        counts = await _call(bus, names.XDP_LOADER_BUS, names.XDP_LOADER_PATH, names.XDP_LOADER_IFACE,
                             "GetPrefixes", "u", [1], reply=wire.PrefixCounters)
        return tuple(props.get("Blocked", ())), dict(counts.blocked)
    finally:
        bus.disconnect()


async def cmd_list(args) -> int:
    listed, counts = await _read()
    print(format_blocked(listed, counts))
    return 0


def _change(member: str, word: str):
    async def run(args) -> int:
        await manager_call(names.XDP_LOADER_BUS, names.XDP_LOADER_PATH, names.XDP_LOADER_MANAGER_IFACE,
                           member, "as", [list(args.prefixes)], what=f"block {word}")
        listed, counts = await _read()
        print(format_blocked(listed, counts))
        return 0
    return run


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "block", help="drop every packet from source prefixes in XDP (add/del need root)",
        description="The data plane's block list: packets whose source is in a listed prefix are dropped "
                    "before any other work and counted. Kept across restarts and reboots. Calls "
                    "org.vc5.XdpLoader1.Manager.BlockPrefixes / UnblockPrefixes.")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    for name, member, help_text in (
            ("add", "BlockPrefixes", "block source prefixes (CIDR, or an address for /32 or /128)"),
            ("del", "UnblockPrefixes", "remove exact entries from the block list")):
        s = sub.add_parser(name, help=help_text + " (needs root)", description=help_text)
        s.add_argument("prefixes", nargs="+", metavar="PREFIX")
        s.set_defaults(func=_run(_change(member, name)))
    ls = sub.add_parser("list", help="the block list and the packets each entry dropped",
                        description="Print org.vc5.XdpLoader1's Blocked property with each entry's drops.")
    ls.set_defaults(func=_run(cmd_list))
    p.set_defaults(func=_run(cmd_list))


__all__ = ["register", "format_blocked"]
