"""vc5-bgpd (real process) against GoBGP (gobgpd) in network namespaces."""

from tests.lib.wait import until

from .conftest import NET4, NET6

VIP4, VIP6 = "10.255.0.1", "fd00:255::1"
ASN = 4200000001


def test_gobgp_passive_ebgp_four_octet_multiprotocol(lab, gobgp_factory, bgpd_factory, health):
    lb = lab.add_speaker()
    gob = gobgp_factory(asn=65000, neighbors=[dict(address=lb.address4, asn=ASN,
                                                   families=["ipv4-unicast", "ipv6-unicast"])])
    bgpd_factory(lb, f"""
        address: {lb.address4}
        bgp:
          as_number: {ASN}
          hold_time: 6
          med: 42
          communities: [65001:100]
          large_communities: ['{ASN}:7:8']
          next_hop_6: {lb.address6}
          peers: [{NET4}.1]
        """)
    until(lambda: gob.established(lb.address4), 20, message="gobgpd session")
    health.set({VIP4: True, VIP6: True})
    a4 = until(lambda: gob.attrs(f"{VIP4}/32"), 10, message="IPv4 VIP in gobgp")
    assert a4[2]["as_paths"][0]["asns"] == [ASN]          # 4-octet AS_PATH
    assert a4[3]["nexthop"] == lb.address4
    assert a4[4]["metric"] == 42
    assert a4[8]["communities"] == [(65001 << 16) | 100]
    assert a4[32]["value"] == [{"ASN": ASN, "LocalData1": 7, "LocalData2": 8}]
    assert 5 not in a4                                     # no LOCAL_PREF on eBGP
    a6 = until(lambda: gob.attrs(f"{VIP6}/128", "ipv6"), 10, message="IPv6 VIP in gobgp")
    assert a6[14]["nexthop"] == lb.address6
    health.set({VIP4: False, VIP6: True})
    until(lambda: gob.attrs(f"{VIP4}/32") is None, 5, interval=0.02, message="withdrawn")
    assert gob.attrs(f"{VIP6}/128", "ipv6") is not None


def test_gobgp_active_ibgp_to_passive_speaker(lab, gobgp_factory, bgpd_factory, health):
    lb = lab.add_speaker()
    gob = gobgp_factory(asn=65001, neighbors=[dict(address=lb.address4, asn=65001, passive=False)])
    bgpd_factory(lb, f"""
        address: {lb.address4}
        bgp:
          as_number: 65001
          hold_time: 6
          local_pref: 300
          groups:
            - name: rr
              passive: true
              peers: [{NET4}.1]
        """, args=["--listen", f"{lb.address4}:179"])
    health.set({VIP4: True})
    until(lambda: gob.established(lb.address4), 20, message="gobgpd connected to the passive speaker")
    a = until(lambda: gob.attrs(f"{VIP4}/32"), 10, message="VIP in gobgp")
    assert a[5]["value"] == 300
    assert not a.get(2, {}).get("as_paths")               # iBGP: empty AS_PATH
    health.set({VIP4: False})
    until(lambda: gob.attrs(f"{VIP4}/32") is None, 5, interval=0.02, message="withdrawn")


__all__ = ["NET6"]
