"""vc5-xdp-loader: owns everything in the kernel (docs/data-plane.md).

The service (the skeleton is vc5.common.lifecycle):
  __main__.py     the command line (argparse); main() = lifecycle.main(daemon.run or stop_post.run)
  daemon.py       the life cycle: lock, bus name (before the kernel is touched), start-up, tasks, stop
  startup.py      the lock file (one loader per host) and the configuration check
  loader.py       Loader: the state, what is published (a Publisher on wire.XDP_LOADER), each input
  interfaces.py   attach / replace in place / detach on the configured interfaces
  reconcile.py    healthd's Services + the network view -> plan -> specs -> maps, inputs as arguments
  planner.py      pure: the plan, and its translation to data-plane specs (to_specs)
  probe_path.py   the health-check probe path's orchestration (nat.py builds it; docs/probe-path.md)
  stop_post.py    --stop-post (ExecStopPost=) and --detach
  api.py          the D-Bus declarations (the only module here that imports dbus_next)

Data plane layer:
  program.py      find/compile bpf/vc5_xdp.c with bcc, load "xdp_main" / "xdp_pass" / "xdp_nat"
  layout.py       ctypes mirrors of bpf/vc5_layout.h, map specs, pinned-layout check
  specs.py        ServiceSpec / BackendSpec: what set_service is asked to hold (pure)
  dataplane.py    DataPlane: the map-programming API (services, settings, counters)
  counters.py     vc5/xvs counter names, per-CPU sums
  netinfo.py      interfaces, VLANs, neighbours (netlink)
  nat.py          probe addresses, the vc5nat veth pair, xdp_nat's maps
"""
