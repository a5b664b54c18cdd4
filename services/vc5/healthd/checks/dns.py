"""dns checks over UDP or TCP with dnspython (cue:mon/dns.go, vc5-behaviour §4.12).

vc5 sends `localhost. IN A` (flags 0x0120: RD and AD) and passes on any reply
carrying the query's transaction id, whatever its RCODE. dnspython draws a
random id and rejects replies with another id or from another address (a
mismatched UDP reply is ignored and the wait goes on until the timeout, which
is how vc5's "same transaction ID" reads on a shared network). The default
timeout is vc5's 1 s.
"""

import asyncio

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode

from . import Result, describe_error

QNAME = "localhost."


def make_query() -> dns.message.Message:
    q = dns.message.make_query(QNAME, "A")
    q.flags |= dns.flags.AD          # vc5's 0x0120 = RD | AD
    return q


def answer_text(r: dns.message.Message) -> str:
    return dns.rcode.to_text(r.rcode())


class DnsChecker:
    async def probe(self, address: str, port: int, method: str, timeout: float) -> Result:
        q = make_query()
        try:
            if (method or "udp").lower() == "tcp":
                r = await dns.asyncquery.tcp(q, address, timeout=timeout, port=port)
            else:
                r = await dns.asyncquery.udp(q, address, timeout=timeout, port=port,
                                             ignore_unexpected=True)
        except asyncio.CancelledError:
            raise
        except dns.exception.Timeout:
            return Result(False, "Timeout")
        except Exception as e:
            return Result(False, describe_error(e))
        if r.id != q.id:      # dnspython already checks; kept as the stated invariant
            return Result(False, f"transaction id {r.id} != {q.id}")
        return Result(True, answer_text(r))
