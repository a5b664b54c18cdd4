"""healthd against real servers in a network namespace: http/https, syn v4/v6, dns udp/tcp, need, VIPs.

The daemon is the real one (subprocess, private bus, own namespace); what we
observe is what xdp-loader and bgpd would: the published Services and VIPs.
"""

import time

from tests.lib.wait import until

from .conftest import V4, V6
from .healthd_proc import LoaderStandIn


def web(servers, policy, extra="", vips="[192.0.2.1, 2001:db8::1]"):
    return f"""\
services:
  - name: web
    virtual: {vips}
    servers: [{", ".join(servers)}]
    interval: 0.2
    timeout: 0.2
{extra}    policy:
{policy}
"""


def test_http_500_goes_down_and_comes_back(farm):
    cfg = web(V4[:2], "      http:\n        path: /alive\n", vips="192.0.2.1")
    with farm.healthd(cfg) as h:
        svc = "192.0.2.1:80:tcp"
        h.wait_backend(svc, V4[0], True)
        h.wait_backend(svc, V4[1], True)
        assert farm.host_seen(V4[0]) == "192.0.2.1"
        assert h.backend(svc, V4[0])["diagnostic"] == "OK"
        farm.set_status(V4[0], 500)
        t0 = time.monotonic()
        # fall 2 at 0.2 s rounds: down on the 2nd failing round
        h.wait_backend(svc, V4[0], False, timeout=5)
        took = time.monotonic() - t0
        b = h.backend(svc, V4[0])
        assert not b["usable"]
        assert b["diagnostic"] == "http: GET http://192.0.2.1/alive - 500 Internal Server Error"
        assert h.services()[svc]["up"] and h.vips()["192.0.2.1"]      # V4[1] still serves (need 1)
        farm.set_status(V4[0], 200)
        h.wait_backend(svc, V4[0], True, timeout=5)
        assert took < 5
        log = h.log()
        assert "Backend 10.9.0.10:80 for service 192.0.2.1:80:tcp went down" in log
        assert "diagnostic=\"http: GET http://192.0.2.1/alive - 500 Internal Server Error\"" in log


def test_ipv6_vip_host_header_is_bracketed(farm):
    with farm.healthd(web([V6[0]], "      http:\n        path: /alive\n", vips="2001:db8::1")) as h:
        h.wait_backend("2001:db8::1:80:tcp", V6[0], True)
        until(lambda: farm.host_seen(V6[0]) == "[2001:db8::1]", timeout=5)


def test_https_certificate_not_verified_and_redirects_not_followed(farm):
    policy = ("      https:\n        path: /alive\n"
              "      8080:\n        checks:\n          - type: http\n            port: 80\n"
              "            path: /redirect\n"
              "      8081:\n        checks:\n          - type: http\n            port: 80\n"
              "            path: /redirect\n            expect: 302\n")
    with farm.healthd(web([V4[0]], policy)) as h:
        h.wait_backend("192.0.2.1:443:tcp", V4[0], True)
        h.wait_backend("192.0.2.1:8081:tcp", V4[0], True)
        assert h.backend("192.0.2.1:8080:tcp", V4[0])["diagnostic"] == \
            "http: GET http://192.0.2.1/redirect - 302 Found"
        assert not h.backend("192.0.2.1:8080:tcp", V4[0])["up"]


def test_syn_checks_ipv4_and_ipv6(farm):
    servers = [V4[0], V6[0], "10.9.0.99", "fd00:9::99"]
    with farm.healthd(web(servers, "      80:\n      81:\n")) as h:
        for a in (V4[0], V6[0]):
            h.wait_backend("192.0.2.1:80:tcp", a, True)
            h.wait_backend("2001:db8::1:80:tcp", a, True)
        s = h.services()
        for a in (V4[0], V6[0]):
            b = s["192.0.2.1:81:tcp"]["backends"][a]
            assert not b["up"] and b["diagnostic"] == "syn: Connection refused", b
        for a in ("10.9.0.99", "fd00:9::99"):
            until(lambda: h.backend("192.0.2.1:80:tcp", a)["diagnostic"] == "syn: Timeout", timeout=5)
            assert not h.backend("192.0.2.1:80:tcp", a)["up"]


def test_dns_over_udp_and_tcp(farm):
    with farm.healthd(web([V4[0], V6[0], "10.9.0.99"], "      domain:\n")) as h:
        for svc in ("192.0.2.1:53:udp", "192.0.2.1:53:tcp", "2001:db8::1:53:udp"):
            h.wait_backend(svc, V4[0], True)
            h.wait_backend(svc, V6[0], True)
        assert h.backend("192.0.2.1:53:tcp", "10.9.0.99")["diagnostic"] == "dns: Timeout"
        (t, passed, diagnostic, took, target) = h.call("org.vc5.Health1", "ProbeLog", "ss",
                                                       "192.0.2.1:53:udp", V4[0])[0][-1]
        assert passed and target == V4[0] and diagnostic == "OK"


def test_need_and_vip_state(farm):
    policy = "      http:\n        path: /alive\n      443:\n"
    with farm.healthd(web(V4[:2], policy, extra="    need: 2\n", vips="192.0.2.1")) as h:
        until(lambda: h.vips().get("192.0.2.1"), timeout=10)
        farm.set_status(V4[1], 500)
        until(lambda: not h.vips()["192.0.2.1"], timeout=5)
        s = h.services()
        # one service down withdraws the VIP even though 443 (syn) is healthy
        assert not s["192.0.2.1:80:tcp"]["up"] and s["192.0.2.1:80:tcp"]["available"] == 1
        assert s["192.0.2.1:443:tcp"]["up"]
        assert "VIP 192.0.2.1 went down" in h.log()
        farm.set_status(V4[1], 200)
        until(lambda: h.vips()["192.0.2.1"], timeout=5)


def test_reload_good_and_bad_files(farm):
    policy = "      http:\n        path: /alive\n"
    with farm.healthd(web([V4[0]], policy)) as h:
        svc = "192.0.2.1:80:tcp"
        h.wait_backend(svc, V4[0], True)
        since = h.backend(svc, V4[0])["since"]
        with open(h.config, "w") as f:
            f.write(web(V4[:2], policy))
        h.hup()
        until(lambda: h.get("Generation") == 2, timeout=5)
        assert h.backend(svc, V4[0])["since"] == since and h.backend(svc, V4[0])["up"]
        h.wait_backend(svc, V4[1], True)
        with open(h.config, "w") as f:
            f.write(web(V4[:2], policy).replace("interval: 0.2", "interval: fast"))
        h.hup()
        until(lambda: "rejected (SIGHUP)" in h.log(), timeout=5)
        assert "vc5.yaml:5:15: services[0].interval:" in h.log()
        assert h.get("Generation") == 2 and h.proc.poll() is None
        # the old configuration keeps checking
        farm.set_status(V4[1], 503)
        h.wait_backend(svc, V4[1], False, timeout=5)


def test_loader_probe_path_names_the_dsr_mistake(farm):
    """Through xdp-loader's probe addresses: a backend reachable on its own address but not
    through the (VIP, backend) path is reported with the DSR hint; a good path passes."""
    loader = LoaderStandIn([["192.0.2.1", V4[0], "10.9.0.99"],      # leads nowhere: "VIP not on lo"
                            ["192.0.2.1", V4[1], V4[1]]])
    try:
        cfg = web(V4[:2], "      http:\n        path: /alive\n", vips="192.0.2.1")
        with farm.healthd(cfg, args=["--probe-path", "loader"]) as h:
            svc = "192.0.2.1:80:tcp"
            assert h.get("ProbePath") == "loader"
            h.wait_backend(svc, V4[1], True)
            until(lambda: "answers on its own address but not on VIP 192.0.2.1"
                  in h.backend(svc, V4[0])["diagnostic"], timeout=5,
                  message="no DSR hint in the diagnostic")
            d = h.backend(svc, V4[0])["diagnostic"]
            assert d.startswith("http: GET http://192.0.2.1/alive - Timeout (backend 10.9.0.10 ") and \
                "192.0.2.1/32 dev lo" in d
            assert not h.backend(svc, V4[0])["up"]
    finally:
        loader.stop()


def test_http_timeout_goes_down_and_rounds_go_on(farm):
    """A hanging backend times out (aiohttp cancels internally) and is checked again until it recovers."""
    with farm.healthd(web(V4[:1], "      http:\n        path: /alive\n", vips="192.0.2.1")) as h:
        svc = "192.0.2.1:80:tcp"
        h.wait_backend(svc, V4[0], True)
        farm.set_status(V4[0], "hang")
        h.wait_backend(svc, V4[0], False, timeout=5)
        until(lambda: h.backend(svc, V4[0])["diagnostic"] == "http: GET http://192.0.2.1/alive - Timeout",
              timeout=5)
        farm.set_status(V4[0], 200)
        h.wait_backend(svc, V4[0], True, timeout=10)
