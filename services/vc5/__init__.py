"""vc5: a Direct Server Return layer-4 load balancer with an XDP data plane.

The package is shared by the four services (xdp-loader, healthd, bgpd, webd)
and the operator tool vc5ctl.
"""

__version__ = "0.1.0"
