"""vc5ctl doctor: find the usual misconfigurations of a backend or a balancer, and say how to fix them.

Each side is a gatherer (reads the machine: /proc/sys, netlink, bpffs, D-Bus; never changes
anything) and pure checks over what it gathered, so unit tests feed facts by hand:

  findings.py          Finding (status ok | warn | fail, what, the exact fix) and the report
  tunnels.py           tunnel arguments, overheads (from the data plane's layout) and MSS arithmetic
  backend_facts.py     gather a real server's facts (addresses, sysctls, routes, tunnels, vc5-decap)
  backend_checks.py    VIP on lo, ARP, rp_filter, tunnel terminated, MTU/MSS
  balancer_facts.py    gather a balancer's facts (config, bpffs, XDP, NIC features, memory, D-Bus)
  balancer_checks.py   the balancer's checks
  flowmem.py           the flow tables' kernel memory (vc5.common.limits' arithmetic)
"""
