"""Following a peer: its properties (across its restarts) and its signals, typed by vc5.common.wire."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from dbus_next import Message, MessageType, Variant
from dbus_next.aio import MessageBus

from vc5.common import wire

from .connection import (PROPERTIES_IFACE, DBusError, PropertiesCallback, _call, _call_bus,
                         _is_name_owner_changed, _match_rule, _name_owner_rule, get_name_owner, unwrap)

log = logging.getLogger("vc5.common.bus")

# A peer that owns its name but does not answer GetAll yet is asked again after
# RETRY_FIRST_S, doubling up to RETRY_MAX_S, until it answers or leaves.
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0


class PropertyWatch:
    """Mirror of one remote interface's properties; see watch_properties().

    `properties` is the last full dict delivered (empty while the peer is
    absent); `owner` is the unique name of the peer being mirrored, or None.
    """

    def __init__(self, bus: MessageBus, name: str, path: str, interface: str,
                 callback: PropertiesCallback, on_vanished: Callable[[], Any] | None, raw: bool,
                 schema: wire.Interface | None = None) -> None:
        self.bus, self.name, self.path, self.interface = bus, name, path, interface
        self.owner: str | None = None
        self.properties: dict[str, Any] = {}
        self._raw_properties: dict[str, Any] | None = None  # as received, Variants kept
        self._callback, self._on_vanished, self._raw, self._schema = callback, on_vanished, raw, schema
        self._events: asyncio.Queue = asyncio.Queue()
        self._rules = [
            _name_owner_rule(name),
            _match_rule(type="signal", sender=name, path=path, interface=PROPERTIES_IFACE,
                        member="PropertiesChanged", arg0=interface),
        ]
        self._worker: asyncio.Task | None = None
        self._retries = 0           # GetAll failures in a row for the current owner
        self._owner_signals = 0     # NameOwnerChanged signals queued so far

    async def _start(self) -> None:
        self.bus.add_message_handler(self._on_message)
        for rule in self._rules:
            await _call_bus(self.bus, "AddMatch", "s", [rule])
        # Subscribed first, so no owner change is missed. The reply to GetNameOwner is older
        # than any NameOwnerChanged queued meanwhile, though it may be resumed after them: a
        # signal is queued in dbus-next's reader while this coroutine resumes a loop turn later
        # (a reply "no owner" queued after the signal "owner :1.1" left bgpd blind to a running
        # loader for good). A signal seen since the call tells the newer truth: use the reply
        # only if none came.
        seen = self._owner_signals
        owner = await get_name_owner(self.bus, self.name)
        if self._owner_signals == seen:
            self._events.put_nowait(("owner", owner))
        self._worker = asyncio.create_task(self._run(), name=f"watch {self.name}{self.path}")

    def _on_message(self, msg: Message) -> None:
        # Runs in dbus-next's reader: only queue, so events keep bus order.
        if _is_name_owner_changed(msg, self.name):
            self._owner_signals += 1
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
                elif event[0] == "retry":
                    if event[1] == self.owner and self.owner is not None and self._raw_properties is None:
                        await self._refresh()
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
            self._retries = 0
            await self._refresh()

    async def refresh(self) -> None:
        """Fetch every property again (GetAll) and deliver them if anything differs."""
        if self.owner is not None:
            await self._refresh()

    async def _refresh(self) -> None:
        owner = self.owner
        try:
            [values] = await _call(self.bus, owner, self.path, PROPERTIES_IFACE, "GetAll", "s",
                                   [self.interface])
        except DBusError as error:
            # E.g. the peer left meanwhile (NameOwnerChanged is queued), or it owns its name
            # before it exports the object (xdp-loader claims the name before it compiles):
            # report nothing rather than a guess, and ask again until it answers or leaves,
            # since a peer that has not exported yet may never send a PropertiesChanged
            # that would make us ask.
            level = logging.WARNING if self._retries == 0 else logging.DEBUG
            log.log(level, "GetAll %s on %s %s failed: %s (asking again until it answers)",
                    self.interface, self.name, self.path, error.text)
            self._retry_later(owner)
            return
        if owner != self.owner:
            return
        self._retries = 0
        await self._deliver(dict(values))

    def _retry_later(self, owner: str | None) -> None:
        delay = min(RETRY_MAX_S, RETRY_FIRST_S * (2 ** self._retries))
        self._retries += 1
        asyncio.get_running_loop().call_later(delay, self._events.put_nowait, ("retry", owner))

    async def _changed(self, changed: dict[str, Variant], invalidated: list[str]) -> None:
        if invalidated or self._raw_properties is None:
            await self._refresh()  # values not sent (or never got): fetch them all
            return
        await self._deliver({**self._raw_properties, **changed})

    async def _deliver(self, values: dict[str, Any]) -> None:
        if values == self._raw_properties:
            return  # nothing new (e.g. a change already included in a GetAll reply)
        plain = values if self._raw else unwrap(values)
        if self._schema is not None:
            try:
                plain = self._schema.decode(plain)
            except ValueError as error:
                # A peer of another version: say what did not decode, keep the last good state,
                # and ask again (a value caught half-built must not leave us empty for good).
                log.warning("%s on %s published a value this vc5 cannot read: %s", self.interface,
                            self.name, error)
                if self._raw_properties is None:
                    self._retry_later(self.owner)
                return
        self._raw_properties = values
        self.properties = plain
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
                           raw: bool = False, schema: wire.Interface | None = None) -> PropertyWatch:
    """Mirror the properties of `interface` at `path` of the peer owning `name`.

    `callback(properties)` (plain function or coroutine function) is called
    with the full dict of current properties: once from GetAll whenever the
    name gets an owner (now, later, and again after every restart of the
    peer), then after each PropertiesChanged with the updated full dict. While
    the name has no owner nothing is called (except `on_vanished()` when an
    owner goes away): absent state is never guessed. Values are plain Python
    (Variants unwrapped) unless `raw`; with `schema` (vc5.common.wire.HEALTH,
    BGP, XDP_LOADER) they are the typed wire structs instead. Calls are made
    one at a time, in bus order. Returns at once; `await watch.close()` stops it.
    """
    watch = PropertyWatch(bus, name, path, interface, callback, on_vanished, raw, schema)
    await watch._start()
    return watch


class SignalWatch:
    """One signal of one peer, decoded to its wire struct; see watch_signal()."""

    def __init__(self, bus: MessageBus, sender: str, path: str, interface: str, member: str,
                 struct: type, callback: Callable[[Any], Any]) -> None:
        self.bus, self._struct, self._callback = bus, struct, callback
        self._match = (path, interface, member, struct.SIGNATURE[1:-1])
        self._rule = _match_rule(type="signal", sender=sender, path=path, interface=interface, member=member)

    def _on_message(self, msg: Message) -> None:
        if (msg.message_type == MessageType.SIGNAL
                and (msg.path, msg.interface, msg.member, msg.signature) == self._match):
            try:
                self._callback(self._struct.from_dbus(msg.body))
            except Exception:
                log.exception("handling signal %s.%s failed", msg.interface, msg.member)

    async def close(self) -> None:
        self.bus.remove_message_handler(self._on_message)
        if self.bus.connected:
            await _call_bus(self.bus, "RemoveMatch", "s", [self._rule])


async def watch_signal(bus: MessageBus, sender: str, path: str, schema: wire.Interface, member: str,
                       callback: Callable[[Any], Any]) -> SignalWatch:
    """Call `callback(struct)` (plain function, in dbus-next's reader) for each `member` signal of
    `schema`'s interface sent by the owner of `sender`, decoded to its wire struct."""
    watch = SignalWatch(bus, sender, path, schema.name, member, schema.signals[member], callback)
    bus.add_message_handler(watch._on_message)
    await _call_bus(bus, "AddMatch", "s", [watch._rule])
    return watch
