"""The state healthd publishes on org.vc5.Health1, as typed values.

One definition of each D-Bus struct, used by the publisher (healthd) and every
subscriber (xdp-loader, bgpd, webd, vc5ctl), so they cannot drift. The shipped
introspection XML uses these signatures.

Timestamps are microseconds since the UNIX epoch (CLOCK_REALTIME), as
systemd's own `t` timestamps; 0 means "never".
"""

from dataclasses import dataclass, field

# (address, port, weight, disabled, drained, up, since, diagnostic, took_ms)
BACKEND_SIGNATURE = "(sqqbbbtsu)"
# (vip, port, protocol, name, description, priority, sticky, need,
#  tunnel_type, tunnel_port, tunnel_no_checksum, up, since, available, backends)
SERVICE_SIGNATURE = "(sqssssbqsqbbtqa" + BACKEND_SIGNATURE + ")"
SERVICES_SIGNATURE = "a" + SERVICE_SIGNATURE
# (vip, up, since)
VIP_SIGNATURE = "(sbt)"
VIPS_SIGNATURE = "a" + VIP_SIGNATURE


@dataclass(frozen=True)
class BackendState:
    address: str
    port: int
    weight: int = 1
    disabled: bool = False   # trailing '*' in the config: checked, never used
    drained: bool = False    # operator drain at run time: pinned flows stay, no new ones
    up: bool = False         # health-check verdict
    since: int = 0
    diagnostic: str = ""
    took_ms: int = 0

    @property
    def usable(self) -> bool:
        """Invariant: only usable backends enter the Maglev table."""
        return self.up and not self.disabled and not self.drained and self.weight > 0

    def to_dbus(self):
        return [self.address, self.port, self.weight, self.disabled, self.drained,
                self.up, self.since, self.diagnostic, self.took_ms]

    @classmethod
    def from_dbus(cls, v):
        return cls(*v)


@dataclass(frozen=True)
class ServiceState:
    vip: str
    port: int
    protocol: str
    name: str = ""
    description: str = ""
    priority: str = "critical"
    sticky: bool = False
    need: int = 1
    tunnel_type: str = "none"
    tunnel_port: int = 0
    tunnel_no_checksum: bool = False
    up: bool = False
    since: int = 0
    available: int = 0
    backends: tuple = field(default_factory=tuple)

    @property
    def key(self) -> str:
        """vc5's service key "vip:port:proto"."""
        return f"{self.vip}:{self.port}:{self.protocol}"

    def to_dbus(self):
        return [self.vip, self.port, self.protocol, self.name, self.description, self.priority,
                self.sticky, self.need, self.tunnel_type, self.tunnel_port, self.tunnel_no_checksum,
                self.up, self.since, self.available, [b.to_dbus() for b in self.backends]]

    @classmethod
    def from_dbus(cls, v):
        *head, backends = v
        return cls(*head, backends=tuple(BackendState.from_dbus(b) for b in backends))


@dataclass(frozen=True)
class VipState:
    vip: str
    up: bool = False
    since: int = 0

    def to_dbus(self):
        return [self.vip, self.up, self.since]

    @classmethod
    def from_dbus(cls, v):
        return cls(*v)


def services_to_dbus(services):
    return [s.to_dbus() for s in services]


def services_from_dbus(value):
    return tuple(ServiceState.from_dbus(v) for v in value)


def vips_to_dbus(vips):
    return [v.to_dbus() for v in vips]


def vips_from_dbus(value):
    return tuple(VipState.from_dbus(v) for v in value)
