"""Every well-known name in one place: D-Bus names, paths, file locations.

Bus names, object paths and interfaces carry a major version, as systemd's do
(org.freedesktop.resolve1). A breaking change to an interface bumps the number.
"""

CONFIG_PATH = "/etc/vc5/vc5.yaml"
BPFFS_ROOT = "/sys/fs/bpf"
# Pinned maps live under a directory that names the map layout version, so a
# loader with a different layout never reuses (and misreads) an older one.
PIN_DIR = BPFFS_ROOT + "/vc5"

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
