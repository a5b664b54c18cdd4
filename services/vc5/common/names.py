"""Every well-known name in one place: D-Bus names, paths, file locations.

Bus names, object paths and interfaces carry a major version, as systemd's do
(org.freedesktop.resolve1). A breaking change to an interface bumps the number.
"""

import os

CONFIG_PATH = "/etc/vc5/vc5.yaml"
BPFFS_ROOT = "/sys/fs/bpf"
# Pinned maps live under a directory that names the map layout version, so a
# loader with a different layout never reuses (and misreads) an older one.
# HOST_PIN_DIR is where they are in the host's bpffs (bpftool, vc5ctl, docs).
HOST_PIN_DIR = BPFFS_ROOT + "/vc5"
# The same directory reached another way: vc5-xdp-loader.service binds
# HOST_PIN_DIR onto /run/vc5/xdp-loader/bpf (BindPaths=), because bpffs's root is
# mode 0700 root and the loader's user may not traverse it (no
# CAP_DAC_READ_SEARCH), and names that path here. Unset (a loader run by hand,
# --detach): HOST_PIN_DIR.
PIN_ROOT_ENV = "VC5_PIN_ROOT"
PIN_DIR = os.environ.get(PIN_ROOT_ENV) or HOST_PIN_DIR


def host_pin_path(path: str) -> str:
    """`path` under PIN_DIR as the host sees it (under HOST_PIN_DIR)."""
    if PIN_DIR != HOST_PIN_DIR and (path == PIN_DIR or path.startswith(PIN_DIR.rstrip("/") + "/")):
        return HOST_PIN_DIR + path[len(PIN_DIR.rstrip("/")):]
    return path


XDP_LOADER_BUS = "org.vc5.XdpLoader1"
XDP_LOADER_PATH = "/org/vc5/XdpLoader1"
XDP_LOADER_IFACE = "org.vc5.XdpLoader1"
XDP_LOADER_MANAGER_IFACE = "org.vc5.XdpLoader1.Manager"

HEALTH_BUS = "org.vc5.Health1"
HEALTH_PATH = "/org/vc5/Health1"
HEALTH_IFACE = "org.vc5.Health1"
HEALTH_MANAGER_IFACE = "org.vc5.Health1.Manager"

BGP_BUS = "org.vc5.Bgp1"
BGP_PATH = "/org/vc5/Bgp1"
BGP_IFACE = "org.vc5.Bgp1"
BGP_MANAGER_IFACE = "org.vc5.Bgp1.Manager"

UNITS = {
    XDP_LOADER_BUS: "vc5-xdp-loader.service",
    HEALTH_BUS: "vc5-healthd.service",
    BGP_BUS: "vc5-bgpd.service",
}

# D-Bus error names the daemons answer with (org.freedesktop.DBus.Error.* are the bus's own).
HEALTH_ERROR_INVALID_CONFIG = HEALTH_BUS + ".Error.InvalidConfig"
HEALTH_ERROR_NOT_FOUND = HEALTH_BUS + ".Error.NotFound"
HEALTH_ERROR_FAILED = HEALTH_BUS + ".Error.Failed"
BGP_ERROR_INVALID_CONFIG = BGP_BUS + ".Error.InvalidConfig"
BGP_ERROR_NOT_FOUND = BGP_BUS + ".Error.NotFound"
BGP_ERROR_MAINTENANCE = BGP_BUS + ".Error.Maintenance"
# The loader's errors are XDP_LOADER_ERROR_PREFIX + the Manager method that failed
# (e.g. org.vc5.XdpLoader1.Error.Reload), or + "Counters" for GetCounters.
XDP_LOADER_ERROR_PREFIX = XDP_LOADER_BUS + ".Error."

# Errors of the bus itself that mean "that daemon is not running".
BUS_ERRORS_ABSENT = frozenset({
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.systemd1.NoSuchUnit",
})
# ... and "the bus policy refused the call".
BUS_ERRORS_DENIED = frozenset({
    "org.freedesktop.DBus.Error.AccessDenied",
})
