"""Connecting, calling, owning names: the request/reply half of vc5's D-Bus plumbing.

Race-freedom rule used throughout: subscribe (AddMatch) first, then ask the
bus for the current state (GetNameOwner / GetAll), so no transition can fall
between the two.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from dbus_next import BusType, DBusError, Message, MessageType, Variant
from dbus_next.aio import MessageBus
from dbus_next.constants import NameFlag, RequestNameReply

from vc5.common import wire

from . import busfix

log = logging.getLogger("vc5.common.bus")

# What callers catch: an error reply (name in .type, text in .text). Re-exported so that no
# module outside vc5.common.bus and the api.py declarations imports dbus_next.
BusError = DBusError

DBUS_NAME = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"
PROPERTIES_IFACE = "org.freedesktop.DBus.Properties"

PropertiesCallback = Callable[[dict[str, Any]], Awaitable[None] | None]


async def connect_system_bus() -> MessageBus:
    """Connect to the system bus (DBUS_SYSTEM_BUS_ADDRESS if set, else the standard socket).

    Installs the fix for dbus-next 0.2.3's writer first (vc5.common.bus.busfix):
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


class NameTaken(Exception):
    """Another process owns the well-known name: a second instance of a daemon must not run."""


async def call(bus: MessageBus, name: str, path: str, interface: str, member: str, signature: str = "",
               body: Iterable[Any] = (), *, reply: str | None = None, timeout: float | None = None) -> Any:
    """Call a method; return its reply body (a list), or with `reply` (a wire.Struct class, or an
    Interface schema's reply of that member) the single value decoded to it. BusError on an
    error reply; asyncio.TimeoutError after `timeout` seconds (None: the bus's own timeout)."""
    coro = _call(bus, name, path, interface, member, signature, list(body or ()))
    values = await (asyncio.wait_for(coro, timeout) if timeout is not None else coro)
    if reply is None:
        return values
    return reply.from_dbus(unwrap(values[0]))


async def get_all(bus: MessageBus, name: str, path: str, schema: wire.Interface,
                  timeout: float | None = None) -> dict | None:
    """Every property of `schema`'s interface, typed; None if nobody owns `name` (absent is never guessed)."""
    if await get_name_owner(bus, name) is None:
        return None
    try:
        [values] = await call(bus, name, path, PROPERTIES_IFACE, "GetAll", "s", [schema.name],
                              timeout=timeout)
    except DBusError as error:
        if error.type in ("org.freedesktop.DBus.Error.ServiceUnknown",
                          "org.freedesktop.DBus.Error.NameHasNoOwner"):
            return None     # it left between the two calls
        raise
    return schema.decode(unwrap(values))


async def own_name(bus: MessageBus, name: str, *, queue: bool = True) -> None:
    """Own `name`, or raise NameTaken. `queue=False`: fail at once rather than wait in the
    bus's queue behind the current owner (the loader: a second one must never take over)."""
    reply = await bus.request_name(name, NameFlag.NONE if queue else NameFlag.DO_NOT_QUEUE)
    if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
        raise NameTaken(f"{name} is already owned on the bus ({reply.name.lower().replace('_', ' ')}): "
                        "is another instance running?")


async def release_name(bus: MessageBus, name: str) -> None:
    """Give `name` up (a successor may take it); errors are ignored, the bus may be gone."""
    try:
        if bus.connected:
            await bus.release_name(name)
    except Exception as error:
        log.debug("releasing %s: %s", name, error)


def export(bus: MessageBus, path: str, *interfaces: Any) -> None:
    """Export the api.py ServiceInterfaces of one object."""
    for interface in interfaces:
        bus.export(path, interface)


def log_refused_calls(loop: asyncio.AbstractEventLoop) -> None:
    """dbus-next 0.2.3 answers a DBusError raised by an async method with an error reply, then lets
    the exception escape to the event loop, which logs it as a crash. Those are answered errors:
    log them as one line."""
    default = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        exc = context.get("exception")
        if isinstance(exc, DBusError):
            log.info("D-Bus call refused: %s", exc.text)
        elif default is not None:
            default(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
