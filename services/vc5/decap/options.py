"""What `vc5-decap attach` is asked to accept, validated (pure: unit-tested),
and the VIPs: given with --vip, or every address configured on lo (netlink).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from . import maps


class UsageError(ValueError):
    """Bad options: exit status 2."""


@dataclass(frozen=True)
class Accept:
    types: tuple            # subset of maps.TYPES, in that order
    fou_port: int = 0
    gue_port: int = 0
    check_udp_csum: bool = True

    def config(self, build: int) -> maps.Config:
        bits = sum(1 << maps.TYPES.index(t) for t in self.types)
        flags = maps.F_CHECK_UDP_CSUM if self.check_udp_csum else 0
        return maps.Config(bits, self.fou_port if "fou" in self.types else 0,
                           self.gue_port if "gue" in self.types else 0, flags, maps.LAYOUT_VERSION, build)

    @classmethod
    def from_config(cls, cfg: maps.Config) -> "Accept":
        types = tuple(t for i, t in enumerate(maps.TYPES) if cfg.types & (1 << i))
        return cls(types, cfg.fou_port, cfg.gue_port, bool(cfg.flags & maps.F_CHECK_UDP_CSUM))


def _port(value, what: str) -> int:
    if value is None:
        return 0
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{what} must be a number, not {value!r}") from None
    if not 1 <= port <= 65535:
        raise UsageError(f"{what} must be 1..65535, not {port}")
    return port


def accept(types: str | None, fou_port=None, gue_port=None, check_udp_csum: bool = True) -> Accept:
    """--types (comma list; default ipip,gre plus fou/gue when their port is given)."""
    fou, gue = _port(fou_port, "--fou-port"), _port(gue_port, "--gue-port")
    if types is None:
        chosen = ["ipip", "gre"] + (["fou"] if fou else []) + (["gue"] if gue else [])
    else:
        chosen = [t.strip().lower() for t in types.split(",") if t.strip()]
        unknown = [t for t in chosen if t not in maps.TYPES]
        if unknown or not chosen:
            raise UsageError(f"--types: unknown tunnel type {', '.join(unknown) or '(none)'}; "
                             f"choose from {','.join(maps.TYPES)}")
    if "fou" in chosen and not fou:
        raise UsageError("--types includes fou: give its UDP port with --fou-port")
    if "gue" in chosen and not gue:
        raise UsageError("--types includes gue: give its UDP port with --gue-port")
    if "fou" in chosen and "gue" in chosen and fou == gue:
        raise UsageError(f"FOU and GUE cannot share UDP port {fou}")
    return Accept(tuple(t for t in maps.TYPES if t in chosen), fou if "fou" in chosen else 0,
                  gue if "gue" in chosen else 0, check_udp_csum)


def parse_vips(values) -> list:
    """--vip ADDR[/LEN] ... -> networks (host bits refused)."""
    out = []
    for v in values:
        try:
            out.append(ipaddress.ip_network(v, strict=True))
        except ValueError as e:
            raise UsageError(f"--vip {v}: {e}") from None
    return sorted(set(out), key=lambda n: (n.version, n))


def lo_networks(addresses) -> list:
    """VIPs from the addresses on lo, given as (family, address, prefixlen).

    An IPv4 address on lo makes its whole prefix local (Linux adds `local
    PREFIX dev lo` to the local table), so the prefix is the VIP range; an
    IPv6 address only makes itself local (/128). Loopback itself is skipped.
    """
    out = set()
    for family, address, prefixlen in addresses:
        ip = ipaddress.ip_address(address)
        if ip.is_loopback:
            continue
        if ip.version == 4:
            out.add(ipaddress.ip_network(f"{ip}/{prefixlen}", strict=False))
        else:
            out.add(ipaddress.ip_network(f"{ip}/128"))
    return sorted(out, key=lambda n: (n.version, n))


def read_lo_addresses(ipr) -> list:
    """(family, address, prefixlen) of every address on lo in this netns."""
    idx = ipr.link_lookup(ifname="lo")
    if not idx:
        return []
    return [(a["family"], a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx[0])]
