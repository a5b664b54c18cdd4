"""Small dbus-next helpers shared by the vc5 services.

* connect_system_bus(): the system bus (DBUS_SYSTEM_BUS_ADDRESS honoured, so
  tests point everything at a private dbus-daemon);
* wait_for_name(): wait until a peer owns a bus name, driven by the bus's
  NameOwnerChanged signal (no polling);
* watch_properties(): mirror all properties of one interface of a remote
  object, across the peer's restarts;
* load_introspection() / assert_matches_introspection(): the shipped
  introspection XML (services/vc5/dbus/<name>.xml) is the API contract; tests
  compare a live object against it.

Race-freedom rule used throughout: subscribe (AddMatch) first, then ask the
bus for the current state (GetNameOwner / GetAll), so no transition can fall
between the two.
"""

from __future__ import annotations

import asyncio
import difflib
import importlib.resources
import inspect
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from typing import Any

from dbus_next import BusType, DBusError, Message, MessageType, Variant
from dbus_next.aio import MessageBus

from vc5.common import busfix

log = logging.getLogger(__name__)

DBUS_NAME = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"
PROPERTIES_IFACE = "org.freedesktop.DBus.Properties"
STANDARD_IFACE_PREFIX = "org.freedesktop.DBus."

PropertiesCallback = Callable[[dict[str, Any]], Awaitable[None] | None]


async def connect_system_bus() -> MessageBus:
    """Connect to the system bus (DBUS_SYSTEM_BUS_ADDRESS if set, else the standard socket).

    Installs the fix for dbus-next 0.2.3's writer first (vc5.common.busfix):
    without it a full socket buffer silently drops the whole connection.
    """
    busfix.patch()
    return await MessageBus(bus_type=BusType.SYSTEM).connect()


def _match_rule(**keys: str) -> str:
    # D-Bus spec, "Match Rules": values are single-quoted; a quote is written '\''.
    return ",".join("{}='{}'".format(k, v.replace("'", "'\\''")) for k, v in keys.items())


async def _call_bus(bus: MessageBus, member: str, signature: str = "", body: list | None = None) -> list:
    """Call a method of the bus daemon itself; raise DBusError on an error reply."""
    return await _call(bus, DBUS_NAME, DBUS_PATH, DBUS_NAME, member, signature, body)


async def _call(bus: MessageBus, destination: str, path: str, interface: str, member: str,
                signature: str = "", body: list | None = None) -> list:
    reply = await bus.call(Message(destination=destination, path=path, interface=interface,
                                   member=member, signature=signature, body=body or []))
    if reply.message_type == MessageType.ERROR:
        raise DBusError._from_message(reply)
    return reply.body


def _name_owner_rule(name: str) -> str:
    return _match_rule(type="signal", sender=DBUS_NAME, path=DBUS_PATH, interface=DBUS_NAME,
                       member="NameOwnerChanged", arg0=name)


def _is_name_owner_changed(msg: Message, name: str) -> bool:
    return (msg.message_type == MessageType.SIGNAL and msg.sender == DBUS_NAME
            and msg.interface == DBUS_NAME and msg.member == "NameOwnerChanged"
            and msg.signature == "sss" and msg.body[0] == name)


async def get_name_owner(bus: MessageBus, name: str) -> str | None:
    """Unique name of the current owner of `name`, or None if nobody owns it."""
    try:
        [owner] = await _call_bus(bus, "GetNameOwner", "s", [name])
    except DBusError as error:
        if error.type == "org.freedesktop.DBus.Error.NameHasNoOwner":
            return None
        raise
    return owner


async def wait_for_name(bus: MessageBus, name: str, timeout: float | None = None) -> str:
    """Wait until `name` has an owner; return the owner's unique name.

    Raises asyncio.TimeoutError after `timeout` seconds (None: wait forever).
    """
    appeared: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_message(msg: Message) -> None:
        if _is_name_owner_changed(msg, name) and msg.body[2] and not appeared.done():
            appeared.set_result(msg.body[2])

    rule = _name_owner_rule(name)
    bus.add_message_handler(on_message)
    try:
        await _call_bus(bus, "AddMatch", "s", [rule])
        try:
            owner = await get_name_owner(bus, name)
            if owner is not None:
                return owner
            return await asyncio.wait_for(appeared, timeout)
        finally:
            if bus.connected:
                await _call_bus(bus, "RemoveMatch", "s", [rule])
    finally:
        bus.remove_message_handler(on_message)


def unwrap(value: Any) -> Any:
    """Plain Python values from dbus-next ones: Variants unwrapped, recursively."""
    if isinstance(value, Variant):
        return unwrap(value.value)
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


class PropertyWatch:
    """Mirror of one remote interface's properties; see watch_properties().

    `properties` is the last full dict delivered (empty while the peer is
    absent); `owner` is the unique name of the peer being mirrored, or None.
    """

    def __init__(self, bus: MessageBus, name: str, path: str, interface: str,
                 callback: PropertiesCallback, on_vanished: Callable[[], Any] | None, raw: bool) -> None:
        self.bus, self.name, self.path, self.interface = bus, name, path, interface
        self.owner: str | None = None
        self.properties: dict[str, Any] = {}
        self._raw_properties: dict[str, Any] | None = None  # as received, Variants kept
        self._callback, self._on_vanished, self._raw = callback, on_vanished, raw
        self._events: asyncio.Queue = asyncio.Queue()
        self._rules = [
            _name_owner_rule(name),
            _match_rule(type="signal", sender=name, path=path, interface=PROPERTIES_IFACE,
                        member="PropertiesChanged", arg0=interface),
        ]
        self._worker: asyncio.Task | None = None

    async def _start(self) -> None:
        self.bus.add_message_handler(self._on_message)
        for rule in self._rules:
            await _call_bus(self.bus, "AddMatch", "s", [rule])
        # Subscribed first: an owner change from here on is queued after this one.
        self._events.put_nowait(("owner", await get_name_owner(self.bus, self.name)))
        self._worker = asyncio.create_task(self._run(), name=f"watch {self.name}{self.path}")

    def _on_message(self, msg: Message) -> None:
        # Runs in dbus-next's reader: only queue, so events keep bus order.
        if _is_name_owner_changed(msg, self.name):
            self._events.put_nowait(("owner", msg.body[2] or None))
        elif (msg.message_type == MessageType.SIGNAL and msg.interface == PROPERTIES_IFACE
              and msg.member == "PropertiesChanged" and msg.path == self.path
              and msg.signature == "sa{sv}as" and msg.body[0] == self.interface):
            self._events.put_nowait(("changed", msg.sender, msg.body[1], msg.body[2]))

    async def _run(self) -> None:
        while True:
            event = await self._events.get()
            try:
                if event[0] == "owner":
                    await self._owner_changed(event[1])
                elif event[1] == self.owner and self.owner is not None:
                    await self._changed(event[2], event[3])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("watching %s %s %s: handling %s failed", self.name, self.path,
                              self.interface, event[0])

    async def _owner_changed(self, owner: str | None) -> None:
        if owner == self.owner:
            return
        if self.owner is not None:
            self.owner, self.properties, self._raw_properties = None, {}, None
            if self._on_vanished is not None:
                await _maybe_await(self._on_vanished())
        if owner is not None:
            self.owner = owner
            await self._refresh()

    async def _refresh(self) -> None:
        owner = self.owner
        try:
            [values] = await _call(self.bus, owner, self.path, PROPERTIES_IFACE, "GetAll", "s",
                                   [self.interface])
        except DBusError as error:
            # E.g. the peer left meanwhile (NameOwnerChanged is queued) or does not
            # export the object: report nothing rather than a guess.
            log.warning("GetAll %s on %s %s failed: %s", self.interface, self.name, self.path, error.text)
            return
        if owner != self.owner:
            return
        await self._deliver(dict(values))

    async def _changed(self, changed: dict[str, Variant], invalidated: list[str]) -> None:
        if invalidated or self._raw_properties is None:
            await self._refresh()  # values not sent (or never got): fetch them all
            return
        await self._deliver({**self._raw_properties, **changed})

    async def _deliver(self, values: dict[str, Any]) -> None:
        if values == self._raw_properties:
            return  # nothing new (e.g. a change already included in a GetAll reply)
        self._raw_properties = values
        self.properties = values if self._raw else unwrap(values)
        await _maybe_await(self._callback(dict(self.properties)))

    async def close(self) -> None:
        """Stop watching: remove the handler and the match rules."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self.bus.remove_message_handler(self._on_message)
        if self.bus.connected:
            for rule in self._rules:
                await _call_bus(self.bus, "RemoveMatch", "s", [rule])


async def _maybe_await(result: Any) -> None:
    if inspect.isawaitable(result):
        await result


async def watch_properties(bus: MessageBus, name: str, path: str, interface: str,
                           callback: PropertiesCallback, *, on_vanished: Callable[[], Any] | None = None,
                           raw: bool = False) -> PropertyWatch:
    """Mirror the properties of `interface` at `path` of the peer owning `name`.

    `callback(properties)` (plain function or coroutine function) is called
    with the full dict of current properties: once from GetAll whenever the
    name gets an owner (now, later, and again after every restart of the
    peer), then after each PropertiesChanged with the updated full dict. While
    the name has no owner nothing is called (except `on_vanished()` when an
    owner goes away): absent state is never guessed. Values are plain Python
    (Variants unwrapped) unless `raw`. Calls are made one at a time, in bus
    order. Returns at once; `await watch.close()` stops it.
    """
    watch = PropertyWatch(bus, name, path, interface, callback, on_vanished, raw)
    await watch._start()
    return watch


# --- introspection contract ----------------------------------------------------

_NAME_RE = re.compile(r"^[A-Za-z0-9_.]+$")


def load_introspection(name: str) -> str:
    """The shipped introspection XML services/vc5/dbus/<name>.xml (package data)."""
    if not _NAME_RE.match(name):
        raise ValueError(f"bad introspection file name {name!r}")
    resource = importlib.resources.files("vc5").joinpath("dbus", f"{name}.xml")
    try:
        return resource.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"no shipped introspection XML vc5/dbus/{name}.xml") from None


def _annotations(element: ET.Element, where: str) -> list[str]:
    return sorted(f"{where} annotation {a.get('name')}={a.get('value')}"
                  for a in element.findall("annotation"))


def _args(element: ET.Element, direction: str | None = None) -> str:
    types = [a.get("type", "") for a in element.findall("arg")
             if direction is None or (a.get("direction") or "in") == direction]
    return "(" + ", ".join(types) + ")"


def introspection_summary(xml: str) -> list[str]:
    """One sorted line per interface, method, property, signal and annotation (argument names ignored).

    Standard org.freedesktop.DBus.* interfaces and child nodes are left out.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as error:
        raise ValueError(f"introspection XML does not parse: {error}") from None
    lines = []
    for iface in root.findall("interface"):
        iname = iface.get("name", "")
        if iname.startswith(STANDARD_IFACE_PREFIX):
            continue
        lines.append(f"interface {iname}")
        lines += _annotations(iface, iname)
        for method in iface.findall("method"):
            where = f"{iname}.{method.get('name')}"
            # Signal args have no direction; method args default to "in" (D-Bus spec).
            lines.append(f"{where} method in={_args(method, 'in')} out={_args(method, 'out')}")
            lines += _annotations(method, where)
        for prop in iface.findall("property"):
            where = f"{iname}.{prop.get('name')}"
            lines.append(f"{where} property type={prop.get('type')} access={prop.get('access')}")
            lines += _annotations(prop, where)
        for signal in iface.findall("signal"):
            where = f"{iname}.{signal.get('name')}"
            lines.append(f"{where} signal {_args(signal)}")
            lines += _annotations(signal, where)
    return sorted(lines)


def assert_matches_introspection(live_xml: str, shipped_xml: str) -> None:
    """Raise AssertionError, with a diff, unless the live object matches the shipped XML."""
    shipped = introspection_summary(shipped_xml)
    live = introspection_summary(live_xml)
    if shipped != live:
        diff = difflib.unified_diff(shipped, live, "shipped", "live", lineterm="", n=0)
        raise AssertionError("live D-Bus API differs from the shipped introspection XML:\n"
                             + "\n".join(line for line in diff if not line.startswith("@@")))
