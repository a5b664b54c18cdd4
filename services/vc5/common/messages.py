"""Stable journald MESSAGE_IDs for operationally meaningful vc5 events.

Each is a 128-bit id generated once (uuid4) and never changed or reused, so
that `journalctl MESSAGE_ID=<id>` and alerting rules keep working across
releases (systemd.journal-fields(7), "MESSAGE_ID="). Add new ids at the end;
never edit an existing one.
"""

BACKEND_UP = "33e664a8c1644fdcbe569acfa8d1be25"
BACKEND_DOWN = "6515c61680c5441091c668cf96942a84"
VIP_UP = "e7cf4e5f296e43baa9c191f13e917e8e"
VIP_DOWN = "130309a010c643aa8c86bb90ce8ab071"
CONFIG_LOADED = "e752fcbbe7914314bb7212e1c91aff9c"
CONFIG_REJECTED = "470b25b6e2db4be58c29c2bdb040ccb9"
BGP_SESSION_ESTABLISHED = "6b54e3fa46ae4d7cb033798f5ab1d603"
BGP_SESSION_DOWN = "54b55e0822c849d5b52a417125f1c1e0"
XDP_ATTACHED = "d3f3e7578cd04781961a27d7481cfdf7"
XDP_DETACHED = "32e641a5576548719fdf899aa789ec16"
SERVICE_STARTED = "734614e9f42f4dbf952348291b2396a1"
SERVICE_STOPPING = "484fbc9b90504d8db30538df0d05334e"

#: name -> id, for listings (e.g. a journal catalog) and uniqueness checks.
ALL = {name: value for name, value in globals().items() if name.isupper() and isinstance(value, str)}
