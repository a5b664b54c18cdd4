"""RFC 7606 against the real daemon: a scripted router sends every malformed UPDATE that RFC 7606
handles without a reset (tests/unit/test_bgp_rfc7606.py CASES) over TCP; the session stays up,
KEEPALIVEs continue, the VIP is still advertised and withdrawn, the counters show it."""

import json
import os
import subprocess

from tests.lib.wait import until
from tests.unit.test_bgp_rfc7606 import CASES, body
from vc5.bgpd.messages import header

from .conftest import NET4, REPO, peer_status

VIP = "10.255.0.1"


def test_malformed_updates_keep_the_session_and_keepalives(lab, bgpd_factory, health):
    lb = lab.add_speaker()
    sent = [header.encode(header.UPDATE, body(attrs, nlri)).hex()
            for _name, attrs, nlri, families, _approach, _what in CASES if families is None]
    spec = os.path.join(lab.tmp, "scripted.json")
    with open(spec, "w") as f:
        json.dump({"address": f"{NET4}.1", "router_id": f"{NET4}.1", "hold": 3, "stay": 8, "send": sent}, f)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "services"), REPO]))
    router = lab.router.popen(["/usr/bin/python3", "-m", "tests.integration.bgp.scripted_peer", spec],
                              env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    health.set({VIP: True})
    bgpd_factory(lb, f"""
        address: {lb.address4}
        bgp:
          as_number: 65001
          hold_time: 6
          peers: [{NET4}.1]
        """)

    def received_all_and_advertised():
        st = peer_status(health, f"{NET4}.1") or {}
        received = st.get("counters", {}).get("updates_in", 0)
        return received >= 2 * len(sent) and st["advertised"] == [f"{VIP}/32"]
    until(received_all_and_advertised, 15, message="malformed UPDATEs received, the VIP advertised")
    health.set({VIP: False})
    out, err = router.communicate(timeout=30)
    report = json.loads(out.strip().splitlines()[-1])
    assert report["notifications"] == [] and not report["closed"], (report, err)
    assert report["keepalives"] >= 6                   # hold 3 s: one a second for the 8 s after the UPDATEs
    assert f"{VIP}/32" in report["announced"] and f"{VIP}/32" in report["withdrawn"]
    st = peer_status(health, f"{NET4}.1")
    assert st["counters"]["established"] == 1 and st["counters"]["notifications_out"] == 0
    assert st["counters"]["updates_malformed"] + st["counters"]["updates_ignored_family"] == 2 * len(sent)
