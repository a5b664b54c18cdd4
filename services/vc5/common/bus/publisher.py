"""Publisher: the one way a vc5 daemon emits PropertiesChanged and its signals."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from dbus_next import Message, Variant
from dbus_next.aio import MessageBus
from dbus_next.signature import SignatureTree

from vc5.common import wire

from .connection import PROPERTIES_IFACE

_SIGNATURE_TREES: dict[str, SignatureTree] = {}


class _EncodedVariant(Variant):
    """A Variant whose value vc5.common.wire encoded from typed structs.

    Variant() re-verifies the whole value against its signature, which for thousands of
    backends costs as much as marshalling it; the marshaller still rejects a value of the
    wrong shape. Only Variant's public attributes are set.
    """

    def __init__(self, signature: str, value: Any) -> None:
        tree = _SIGNATURE_TREES.get(signature)
        if tree is None:
            tree = _SIGNATURE_TREES[signature] = SignatureTree(signature)
        self.type = tree.types[0]
        self.signature = signature
        self.value = value


class Publisher:
    """Publishes the properties of one interface of one object: the one PropertiesChanged path.

    `getters` maps each property of `schema` to a function returning its current typed value
    (wire structs, tuples, scalars). Invariants:
    - `published(name)` is what the last PropertiesChanged carried (the getter's value until
      the first one), so a Get and the signal never disagree;
    - `mark(...)` while handling one event, and the changes go out in one signal from
      loop.call_soon: before the loop polls for I/O again, so subscribers hear of a change
      before the daemon handles anything else;
    - under a storm, a signal waits until `duty` x the cost of the previous one has passed
      since it ended, so publishing takes at most 1/(1+duty) of the CPU (all changes until
      then travel together);
    - `mark(..., urgent=False)` (e.g. diagnostic text alone) goes out with the next urgent
      change, at the latest after `lazy_delay` seconds.
    """

    def __init__(self, path: str, schema: wire.Interface, getters: dict[str, Callable[[], Any]], *,
                 duty: float = 4.0, lazy_delay: float = 1.0, before_flush: Callable[[], Any] | None = None):
        missing = set(schema.properties) - set(getters)
        if missing:
            raise ValueError(f"no getter for {schema.name} properties {sorted(missing)}")
        self.path, self.schema, self._getters = path, schema, getters
        self.duty, self.lazy_delay = duty, lazy_delay
        self.bus: MessageBus | None = None
        self._before_flush = before_flush   # may mark() more names just before a flush
        self._published: dict[str, Any] = {}
        self._pending: set[str] = set()
        self._handle: asyncio.Handle | None = None
        self._due = 0.0
        self._done = 0.0            # loop time the last flush ended
        self._spacing = 0.0         # duty x the last flush's cost
        self.last_cost = 0.0        # CPU seconds the last flush took (benchmarks read it)

    def attach(self, bus: MessageBus | None) -> None:
        """Emit on `bus` from now on (None: stop emitting)."""
        self.bus = bus

    def current(self, name: str) -> Any:
        """The property's value as of now, encoded for D-Bus (for values that change on read)."""
        return self.schema.encode(name, self._getters[name]())

    def published(self, name: str) -> Any:
        """The property's value as the last PropertiesChanged carried it, encoded for D-Bus."""
        if name not in self._published:
            self._published[name] = self.current(name)
        return self._published[name]

    def mark(self, *names_: str, urgent: bool = True) -> None:
        """These properties changed: publish them soon (see the class invariants)."""
        self._pending.update(names_)
        self._schedule(urgent)

    def _schedule(self, urgent: bool) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return      # not running yet: the first flush() publishes everything pending
        now = loop.time()
        due = max(now, self._done + self._spacing) if urgent else now + self.lazy_delay
        if self._handle is not None:
            if self._due <= due:
                return
            self._handle.cancel()
        self._due = due
        self._handle = loop.call_soon(self.flush) if due <= now else loop.call_at(due, self.flush)

    def flush(self) -> None:
        """Publish every pending change now, in one PropertiesChanged."""
        t0 = time.thread_time()
        if self._before_flush is not None:
            self._before_flush()
        # After before_flush: a flush its mark() scheduled is this one (an empty flush later
        # would reset the storm spacing to its own tiny cost).
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        pending, self._pending = self._pending, set()
        changed = {}
        for name in sorted(pending):
            value = self._published[name] = self.current(name)
            changed[name] = _EncodedVariant(self.schema.properties[name].signature, value)
        if changed and self.bus is not None and self.bus.connected:
            self.bus.send(Message.new_signal(self.path, PROPERTIES_IFACE, "PropertiesChanged", "sa{sv}as",
                                             [self.schema.name, changed, []]))
        # CPU time, not wall time: a flush that was merely preempted on a busy machine must not
        # stretch the spacing (the invariant is about the CPU publishing takes).
        self.last_cost = time.thread_time() - t0
        try:
            self._done = asyncio.get_running_loop().time()
        except RuntimeError:
            self._done = 0.0
        self._spacing = self.duty * self.last_cost

    def signal(self, event: wire.Struct) -> None:
        """Emit the schema's signal whose struct `event` is (e.g. wire.Transition), now."""
        for member, struct in self.schema.signals.items():
            if isinstance(event, struct):
                break
        else:
            raise ValueError(f"{self.schema.name} has no signal carrying {type(event).__name__}")
        if self.bus is not None and self.bus.connected:
            self.bus.send(Message.new_signal(self.path, self.schema.name, member, struct.SIGNATURE[1:-1],
                                             event.to_dbus()))
