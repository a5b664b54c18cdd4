"""The real vc5-healthd and the real loader on one vc5.yaml: healthd follows the loader's
ProbeAddresses (its default `auto` probe path) and so checks the VIP on each backend. The
backend without the VIPs on lo is marked down with a diagnostic that names the DSR mistake,
the others are up, on both VIPs (the IPv6 VIP is served by the same IPv4 backends, probed
from our IPv6 address on their link).
"""

import os
import shutil

import pytest

from tests.integration.health.healthd_proc import Healthd
from tests.integration.xdp import lab as L
from tests.integration.xdp.bus import BusThread
from tests.lib.privatebus import private_bus
from tests.lib.wait import until
from vc5.common import wire

HERE = os.path.dirname(os.path.abspath(__file__))
NO_VIP = "b3"
SERVICES = f"""services:
  - name: web
    virtual: [{L.VIP}, {L.VIP6}]
    servers: [{", ".join(L.BACKENDS.values())}]
    path: /
    interval: 0.5
    policy:
      http:
"""


@pytest.fixture(scope="module")
def stack(root):
    tmp = L.tmpdir()
    with private_bus() as address:
        b = BusThread()
        lab = L.Lab(tmp, with_traffic=False)
        healthd = None
        try:
            lab.backends[NO_VIP].run(f"ip addr del {L.VIP}/32 dev lo && ip addr del {L.VIP6}/128 dev lo")
            for name, ns in lab.backends.items():
                p = ns.popen([L.PY, os.path.join(HERE, "backend.py"), name, str(L.HTTP_PORT)], text=True)
                lab.procs.append(p)
                assert p.stdout.readline().strip() == "ready", f"backend {name} did not start"
            with open(lab.config, "a") as f:
                f.write(SERVICES)
            healthd = Healthd(lab.config, address, argv_prefix=lab.lb.argv([])).start()
            lab.start_loader()
            L.wait_loader_ready(b, lab)
            yield lab, b, healthd
        finally:
            if healthd is not None:
                healthd.stop()
            lab.close()
            b.close()
            shutil.rmtree(tmp, ignore_errors=True)


def health(b):
    raw = b.call("Get", "ss", ["org.vc5.Health1", "Services"], interface="org.freedesktop.DBus.Properties",
                 destination="org.vc5.Health1", path="/org/vc5/Health1")[0]
    return {(s.vip, s.port): {be.address: be for be in s.backends} for s in wire.services_from_dbus(raw)}


def test_backend_without_the_vip_is_down_with_the_reason_others_up(stack):
    lab, b, healthd = stack
    good = [a for n, a in L.BACKENDS.items() if n != NO_VIP]
    bad = L.BACKENDS[NO_VIP]

    def settled():
        s = health(b)
        return all(s[(vip, L.HTTP_PORT)][a].up for vip in (L.VIP, L.VIP6) for a in good) and all(
            not s[(vip, L.HTTP_PORT)][bad].up and "own address" in s[(vip, L.HTTP_PORT)][bad].diagnostic
            for vip in (L.VIP, L.VIP6)) and s
    s = until(settled, timeout=40, interval=0.2,
              message=f"healthd did not settle:\n{healthd.log()[-3000:]}")
    for vip in (L.VIP, L.VIP6):
        d = s[(vip, L.HTTP_PORT)][bad].diagnostic
        assert d.startswith("http: GET http://") and bad in d and vip in d, d
    assert "probe path is now loader" in healthd.log() or "probe path: loader" in healthd.log()
