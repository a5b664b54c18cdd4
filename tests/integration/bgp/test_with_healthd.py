"""The real pair: vc5-healthd publishes VIP states, vc5-bgpd advertises them to BIRD (one vc5.yaml)."""

from tests.integration.health.healthd_proc import Healthd
from tests.lib.wait import until

from .conftest import NET4

SVC = "192.0.2.1:80:tcp"


def test_healthd_vip_state_drives_bird_routes(lab, bird_factory, bgpd_factory, private_bus):
    lb = lab.add_speaker()
    bird = bird_factory(asn=65000, neighbors=[dict(name="lb", address=lb.address4, asn=65001)])
    config = f"""
        address: {lb.address4}
        bgp:
          as_number: 65001
          hold_time: 6
          peers: [{NET4}.1]
        services:
          - name: web
            virtual: 192.0.2.1
            servers: [10.0.0.1, 10.0.0.2]
            need: 2
            interval: 0.1
            rise: 3
            fall: 1
            policy:
              http*:
        """
    bgpd = bgpd_factory(lb, config)
    with Healthd(bgpd.config, private_bus) as healthd:
        until(lambda: bird.route("192.0.2.1/32"), 20, message="VIP up in healthd -> route in BIRD")
        healthd.manager("Drain", "ss", SVC, "10.0.0.1")            # need 2: the VIP goes down
        until(lambda: not bird.route("192.0.2.1/32"), 5, message="VIP down in healthd -> withdrawn")
        healthd.manager("Undrain", "ss", SVC, "10.0.0.1")
        until(lambda: bird.route("192.0.2.1/32"), 10, message="advertised again")
