"""BFD (RFC 5880 asynchronous mode, RFC 5881 single hop) toward the BGP peers.

An extension over vc5 (which has no BFD): docs/bgp.md, "BFD".
  packet.py     the Control packet codec and its context-free reception checks (§4.1, §6.8.6)
  session.py    one session's state machine, pure (the caller passes the time)
  transport.py  UDP sockets (port 3784, GTSM TTL 255) and the asyncio timers driving each session
"""
