"""backends[0] is never given to a backend: 0 is "no record" for pair_of and the probe path."""

from vc5.common.capacity import NO_PAIR
from vc5.xdp_loader.dataplane import ServiceSpec
from vc5.xdp_loader.specs import service_key

from .frames import backends


def test_no_backend_gets_the_no_record_pair(clean):
    dp = clean
    dp.set_service(ServiceSpec("192.0.2.61", 80, "tcp", backends=backends("10.61.0.", 3)))
    key = service_key("192.0.2.61", 80, "tcp")
    pairs = [dp.pair_of(key, f"10.61.0.{i}") for i in range(1, 4)]
    assert NO_PAIR not in pairs and len(set(pairs)) == 3, pairs
    assert dp.pair_of(key, "10.61.0.99") == NO_PAIR                  # not a backend of it
    assert dp.pair_of(service_key("192.0.2.62", 80, "tcp"), "10.61.0.1") == NO_PAIR   # no such service
