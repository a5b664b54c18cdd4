"""Flow sharing between balancers (vc5 -m GROUP:PORT; docs/data-plane.md, "Flow sharing").

    codec     vc5 v0.3's record and datagram format (pure)
    queue     the data plane's side: drain noted flows, fill the shared table
    sender    thread: every 10 ms, noted flows -> multicast datagrams
    receiver  thread: datagrams -> the shared table, with OUR pair and cookie

Part of the loader (not a unit of its own): the loader owns the maps and
knows which pair serves a VIP:port:proto and backend (DataPlane.pair_of);
a separate unit would need the pins and a copy of that knowledge.
"""
