"""Make a lab host go silent at its switch port: every frame to and from it dropped outside it.

A balancer that loses power or hangs sends no BGP NOTIFICATION and its link
stays up: its peers learn only from silence. XDP runs before nftables on the
balancer itself, so the drop happens on the router's side of its veth (the
"switch port"): a two-instruction cls_bpf program returning TC_ACT_SHOT on
both ingress and egress (this kernel has no netem, and nftables is not
installed). The carrier stays up; nothing is sent to say the host went away.
"""

import os
import struct

from tests.lab.skbhash import load_pinned

TC_ACT_SHOT = 2
DROP_ALL = b"".join(struct.pack("<BBhi", code, 0, 0, imm) for code, imm in (
    (0xb7, TC_ACT_SHOT),                    # r0 = TC_ACT_SHOT
    (0x95, 0),                              # exit
))


def silence(ns, dev, pin):
    """Drop every frame entering or leaving `dev` (in namespace `ns`, a tests.lib.netns.Netns)."""
    load_pinned(pin, DROP_ALL)
    try:
        ns.run(f"tc qdisc replace dev {dev} clsact && "
               f"tc filter add dev {dev} ingress pref 1 bpf direct-action object-pinned {pin} && "
               f"tc filter add dev {dev} egress pref 1 bpf direct-action object-pinned {pin}")
    finally:
        os.unlink(pin)


def unsilence(ns, dev):
    """Remove what silence() added (the port's other filters, if any, were in the same clsact)."""
    ns.run(f"tc filter del dev {dev} ingress pref 1; tc filter del dev {dev} egress pref 1", check=False)
