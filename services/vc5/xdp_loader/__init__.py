"""vc5-xdp-loader: owns everything in the kernel.

Data plane layer (this package, used by the service):
  program.py    find/compile bpf/vc5_xdp.c with bcc, load "xdp_main" / "xdp_pass"
  layout.py     ctypes mirrors of bpf/vc5_layout.h, map specs, pinned-layout check
  dataplane.py  DataPlane: the map-programming API (services, settings, counters)
  counters.py   vc5/xvs counter names, per-CPU sums
"""
