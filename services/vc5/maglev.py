"""Maglev consistent hashing, bit-for-bit compatible with vc5/xvs.

Maglev (Eisenbud et al., NSDI 2016, section 3.4) gives every node a
permutation of the M slots of a lookup table, defined by two numbers taken
from a hash of the node's name:

    h      = sha256(name)
    offset = be32(h[0:4]) % M
    skip   = be32(h[4:8]) % (M - 1) + 1
    permutation[j] = (offset + j * skip) % M

Nodes then take turns, in the order given, each claiming the next slot of its
own permutation that is still free, until all M slots are filled. M must be
prime so that every skip in 1..M-1 visits every slot.

vc5 (xvs maglev.Maglev8192) uses M = 8209, the smallest prime >= 8192, and
keeps the first 8192 entries; its nodes are the usable backends sorted by
address (Go netip.Addr.Less), each named by its textual address
(netip.Addr.String()). A Go vc5 balancer and this module therefore pick the
same backend for the same flow when given the same set of backends.

Invariants of `table()`:
  * every slot holds an index into `names`;
  * equal weights give each node floor or ceil of its share, within ~3 %;
  * adding or removing one node moves about size/N slots (minimal disruption);
  * all weights 1 give exactly the unweighted table (bit-for-bit vc5).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: vc5's kernel table: `__u8 hash[8192]` in xvs bpf/layer3.c `struct service`.
VC5_TABLE_SIZE = 8192


@functools.lru_cache(maxsize=16)
def prime_for(size: int) -> int:
    """The smallest prime >= size (8192 -> 8209 as in vc5, 65536 -> 65537)."""
    if size < 1:
        raise ValueError(f"Maglev table size must be >= 1, not {size}")
    candidate = max(size, 2)
    while not _is_prime(candidate):
        candidate += 1
    return candidate


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    d = 3
    while d * d <= n:
        if n % d == 0:
            return False
        d += 2
    return True


def permutation_parameters(name: bytes, prime: int) -> tuple[int, int]:
    """(offset, skip) of a node's permutation of `prime` slots."""
    digest = hashlib.sha256(name).digest()
    offset = int.from_bytes(digest[0:4], "big") % prime
    skip = int.from_bytes(digest[4:8], "big") % (prime - 1) + 1
    return offset, skip


def _as_bytes(name: bytes | str) -> bytes:
    if isinstance(name, str):
        return name.encode()
    return bytes(name)


def table(names: Sequence[bytes | str], size: int = VC5_TABLE_SIZE,
          weights: Sequence[int] | None = None) -> list[int]:
    """Maglev lookup table: for each of `size` slots, a 0-based index into `names`.

    The table is computed with M = the smallest prime >= size and truncated to
    `size` entries (8192 -> M = 8209, exactly vc5's Maglev8192; a prime size
    such as 65537 is used whole).

    `weights` (one non-negative int per name) selects weighted Maglev: a node
    of weight w takes w consecutive turns in each round of the population
    loop, so its share of slots is proportional to w. Weight 0 leaves the
    node out (its index never appears). All weights 1 is the plain table.
    """
    if not names:
        raise ValueError("Maglev table needs at least one node")
    if weights is None:
        turns_per_node = [1] * len(names)
    else:
        if len(weights) != len(names):
            raise ValueError(f"{len(weights)} weights given for {len(names)} nodes")
        for index, weight in enumerate(weights):
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
                raise ValueError(f"weight of node {index} ({names[index]!r}) must be an int >= 0,"
                                 f" not {weight!r}")
        if not any(weights):
            raise ValueError("Maglev table needs at least one node with weight > 0")
        turns_per_node = list(weights)

    prime = prime_for(size)
    # One mutable [next_candidate, skip, index] per node; a node of weight w
    # appears w times in a row in `turns`, sharing the same state list.
    turns: list[list[int]] = []
    for index, name in enumerate(names):
        if turns_per_node[index]:
            offset, skip = permutation_parameters(_as_bytes(name), prime)
            state = [offset, skip, index]
            turns.extend([state] * turns_per_node[index])
    return _populate(turns, prime)[:size]


def _populate(turns: list[list[int]], prime: int) -> list[int]:
    """Fill `prime` slots round-robin over `turns`; the hot loop of this module.

    Each turn claims the first free slot at or after the node's candidate in
    its permutation. The candidate is left on the slot just claimed (as in
    xvs), so the next turn of that node starts by stepping past it. Whole
    rounds need no "table full?" test: a round fills exactly len(turns) slots.
    """
    owner = [-1] * prime
    full_rounds, last_round = divmod(prime, len(turns))
    for _ in range(full_rounds):
        for state in turns:
            slot, skip, index = state
            if owner[slot] >= 0:
                while True:
                    slot += skip
                    if slot >= prime:
                        slot -= prime
                    if owner[slot] < 0:
                        break
            owner[slot] = index
            state[0] = slot
    for state in turns[:last_round]:
        slot, skip, index = state
        while owner[slot] >= 0:
            slot += skip
            if slot >= prime:
                slot -= prime
        owner[slot] = index
        state[0] = slot
    return owner


def _parse(address: Address | str) -> Address:
    if isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return address
    return ipaddress.ip_address(address)


def _sort_key(address: Address) -> tuple[int, int, str]:
    # netip.Addr.Less: by BitLen (IPv4 before IPv6), then by value, then zone.
    return (address.version, int(address), getattr(address, "scope_id", None) or "")


def order(addresses: Iterable[Address | str]) -> list[Address]:
    """vc5's node order: parsed, deduplicated, sorted as Go's netip.Addr.Less."""
    return sorted({_parse(a) for a in addresses}, key=_sort_key)


def node_name(address: Address | str) -> bytes:
    """A node's Maglev name: Go's netip.Addr.String() of the address, as bytes.

    Python and Go agree on IPv4 and RFC 5952 IPv6 text, except for
    IPv4-mapped IPv6 addresses, which Go writes as ::ffff:a.b.c.d.
    """
    address = _parse(address)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        text = "::ffff:" + str(address.ipv4_mapped)
        if address.scope_id:
            text += "%" + address.scope_id
        return text.encode()
    return str(address).encode()


def backend_table(addresses: Iterable[Address | str], size: int = VC5_TABLE_SIZE,
                  weights: Sequence[int] | Mapping[Address | str, int] | None = None,
                  ) -> tuple[tuple[Address, ...], list[int]]:
    """(backends in vc5 order, table of 0-based indices into that tuple).

    `weights` is either one weight per address (in the order given) or a
    mapping address -> weight. A duplicated address must carry one weight.
    vc5's kernel slot value is index + 1 (0 means "no backend").
    """
    given = [_parse(a) for a in addresses]
    by_address: dict[Address, int] | None = None
    if weights is not None:
        if isinstance(weights, Mapping):
            by_address = {_parse(a): w for a, w in weights.items()}
            missing = [str(a) for a in given if a not in by_address]
            if missing:
                raise ValueError(f"no weight for backend(s) {', '.join(missing)}")
        else:
            if len(weights) != len(given):
                raise ValueError(f"{len(weights)} weights given for {len(given)} backends")
            by_address = {}
            for address, weight in zip(given, weights):
                if by_address.setdefault(address, weight) != weight:
                    raise ValueError(f"backend {address} given twice with different weights")
    ordered = tuple(order(given))
    names = [node_name(a) for a in ordered]
    node_weights = None if by_address is None else [by_address[a] for a in ordered]
    return ordered, table(names, size, node_weights)
