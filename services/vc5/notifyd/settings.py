"""`logging:` in vc5.yaml -> the sinks vc5-notifyd feeds (pure).

    slack: URL            Slack webhook, events with PRIORITY <= alert
    teams: URL            Teams webhook, events with PRIORITY <= alert
    alert: 0..7           vc5's syslog level (lower = more severe; default 0 EMERG)
    elasticsearch:        every event, when `index` is set (as vc5)
      index, addresses (default http://localhost:9200, as vc5's client), username, password
    syslog: true          nothing here: journald forwards to syslog itself
                          (ForwardToSyslog=, docs/notifications.md)

Secrets may be `{credential: NAME}` (vc5.config.secrets): the unit then needs
LoadCredential=NAME:/etc/vc5/credentials/NAME.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from vc5.config.model import Config

DEFAULT_ES = ("http://localhost:9200",)
WEBHOOKS = ("slack", "teams")


@dataclass(frozen=True)
class Sink:
    """One destination. Equal settings = the same sink (a reload leaves it running)."""

    name: str                                   # slack | teams | elasticsearch
    urls: tuple                                 # the webhook URL, or ES addresses (tried in turn)
    host: str                                   # vc5's host.id
    alert: int = 7                              # deliver events with priority <= alert
    index: str = ""
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    def wants(self, priority: int) -> bool:
        return priority <= self.alert


def host_id(cfg: Config) -> str:
    """vc5's host id: `host_id:` in the configuration, else this machine's name."""
    return cfg.host_id or socket.gethostname()


def sinks(cfg: Config) -> dict[str, Sink]:
    """The configured sinks by name (empty: nothing to ship)."""
    log = cfg.logging
    host = host_id(cfg)
    out = {}
    for name in WEBHOOKS:
        url = getattr(log, name)
        if url:
            out[name] = Sink(name, (url,), host, alert=log.alert)
    es = log.elasticsearch
    if es.get("index"):
        out["elasticsearch"] = Sink("elasticsearch", tuple(es.get("addresses") or DEFAULT_ES), host,
                                    index=es["index"], username=es.get("username"),
                                    password=es.get("password"))
    return out


def describe(configured: dict[str, Sink]) -> str:
    """For STATUS= and the journal: names only (URLs may hold tokens)."""
    return ", ".join(sorted(configured)) or "no sinks configured (logging: has no slack, teams or " \
                                            "elasticsearch.index)"
