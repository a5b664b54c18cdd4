"""vc5-decap: the backend side of vc5's layer-3 DSR tunnels (docs/real-servers.md).

An XDP program (bpf/vc5_decap.c) on a backend's NIC strips IPIP, GRE, FOU
and GUE outer headers from packets whose inner destination is a local VIP
and passes the inner packet to the stack: for backends whose kernel has no
ipip/gre/fou modules, or that must terminate FOU/GUE over IPv6.

  __main__.py   the command: vc5-decap attach|detach|status IFACE (argparse; exit 0/1/2)
  options.py    what to accept (types, ports) and the VIPs, validated (pure)
  program.py    find and compile the C source with bcc (attach only)
  maps.py       the pinned objects' layout and libbpf access (no bcc)
  ops.py        attach / detach / status on one interface
"""
