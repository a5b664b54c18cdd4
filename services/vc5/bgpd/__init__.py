"""vc5-bgpd: a BGP-4 speaker for route health injection (RFC 4271, 4760, 6793, 2918, 1997, 8092, 8326).

Layout: messages/ (one pure codec per message), attributes, capabilities, nlri,
fsm (pure state/event table), session (asyncio TCP and timers), policy
(per-peer export filters), rib (which VIPs to advertise, hold-down), speaker
(peers, route health injection), api (D-Bus org.vc5.Bgp1), daemon (process glue).
"""
