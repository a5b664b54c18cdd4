"""Small dbus-next helpers shared by the vc5 services.

* connect_system_bus(): the system bus (DBUS_SYSTEM_BUS_ADDRESS honoured, so
  tests point everything at a private dbus-daemon);
* wait_for_name(): wait until a peer owns a bus name, driven by the bus's
  NameOwnerChanged signal (no polling);
* watch_properties(): mirror all properties of one interface of a remote
  object, across the peer's restarts;
* watch_signal(): follow one signal of a peer, decoded to its wire struct;
* call() / get_all(): typed method calls (BusError on an error reply);
* own_name() / export(): publish objects and own a well-known name, the reply
  checked (a second instance must not run beside the first);
* Publisher: the one way a daemon emits PropertiesChanged: coalesced per
  event-loop turn, spaced under storms, values encoded from vc5.common.wire;
* load_introspection() / assert_matches_introspection(): the shipped
  introspection XML (services/vc5/dbus/<name>.xml) is the API contract; tests
  compare a live object against it.

This package (with the `api.py` declarations of each daemon) is the only one
that imports dbus_next; everything else speaks vc5.common.wire structs.

Race-freedom rule used throughout: subscribe (AddMatch) first, then ask the
bus for the current state (GetNameOwner / GetAll), so no transition can fall
between the two.
"""

from .connection import (DBUS_NAME, DBUS_PATH, PROPERTIES_IFACE, BusError, NameTaken, call,  # noqa: F401
                         connect_system_bus, export, get_all, get_name_owner, log_refused_calls, own_name,
                         release_name, unwrap, wait_for_name)
from .publisher import Publisher  # noqa: F401
from .watch import PropertyWatch, SignalWatch, watch_properties, watch_signal  # noqa: F401
from ..introspection import (assert_matches_introspection, introspection_summary,  # noqa: F401
                             load_introspection)
