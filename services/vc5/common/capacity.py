"""What this balancer can hold: the one place these numbers live.

The XDP loader sizes its maps from them (vc5.xdp_loader.layout re-exports
them and passes them to the C program as -DVC5_MAX_*), and `vc5ctl config
check` refuses a configuration beyond them (vc5.config.fits), so a file that
checks is one the data plane can load. No bcc, no ctypes: the configuration
path imports this module. docs/operations/limits.md lists every figure.

Invariants:
  * MAX_BACKENDS is BACKEND_SLOTS - 1: a service's slot 0 means "no backend";
  * TUNNEL_TYPES are the encapsulations bpf/vc5_encap.h builds ("none" is
    layer-2 DSR), in the order of layout.METHOD_* (L2, IPIP, GRE, FOU, GUE);
  * MAX_GRACEFUL_SHUTDOWN_S + WITHDRAW_MARGIN_S == BGPD_STOP_TIMEOUT_S, the
    TimeoutStopSec= of units/vc5-bgpd.service (a test reads the unit): a
    longer graceful shutdown would be SIGKILLed before bgpd withdraws.
"""

from __future__ import annotations

# --- the data plane's maps (bpf/vc5_layout.h) ---------------------------------------------
BACKEND_SLOTS = 256         # slots 1..255 per service (0 = no backend)
MAX_BACKENDS = BACKEND_SLOTS - 1
MAX_SERVICES = 1024         # VIP:port:protocol entries (services map)
MAX_VIPS = 1024             # distinct VIPs (vips map)
MAX_PAIRS = 65536           # (service, backend) pairs: backends[] records and be_stats[]
NO_PAIR = 0                 # backends[0] is never given to a backend: 0 means "no record"
USABLE_PAIRS = MAX_PAIRS - 1
MAX_NAT = 65536             # (VIP, backend) pairs with a probe address (nat map)

# --- encapsulations bpf/vc5_encap.h builds ------------------------------------------------
TUNNEL_TYPES = ("none", "ipip", "gre", "fou", "gue")

# --- vc5-bgpd's stop ----------------------------------------------------------------------
BGPD_STOP_TIMEOUT_S = 130   # units/vc5-bgpd.service TimeoutStopSec=
WITHDRAW_MARGIN_S = 10      # left after the graceful shutdown to withdraw and close sessions
MAX_GRACEFUL_SHUTDOWN_S = BGPD_STOP_TIMEOUT_S - WITHDRAW_MARGIN_S
GRACEFUL_SHUTDOWN_WHAT = (f"a number of seconds that fits in vc5-bgpd's stop (vc5-bgpd.service "
                          f"TimeoutStopSec={BGPD_STOP_TIMEOUT_S}s less {WITHDRAW_MARGIN_S} s to withdraw; "
                          "docs/operations/limits.md)")
