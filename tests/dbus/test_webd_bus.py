"""vc5-webd against fake daemons on a private bus: serves what they publish, follows changes,
shows absent daemons as absent, never calls a .Manager method, never opens an AF_INET socket."""

import gzip
import json

from tests.integration.web.fakes import Fakes
from tests.integration.web.webd_process import Webd, guard_works
from tests.lib.wait import until


def _status(webd):
    try:
        return webd.json("/status.json")
    except OSError:
        return None


def test_guard_refuses_af_inet():
    assert guard_works()


def test_webd_serves_and_follows_the_daemons(private_bus):
    with Fakes() as fakes, Webd("--interval", "0.5") as webd:
        doc = until(lambda: (s := _status(webd)) and s["services"] and s["bgp"] and s["summary"]["latency_ns"]
                    and s["summary"]["ingress_packets_per_second"] and s, timeout=20,
                    message="webd never showed the fakes' state")
        assert doc["daemons"] == {"org.vc5.Health1": True, "org.vc5.Bgp1": True, "org.vc5.XdpLoader1": True}
        http = doc["services"]["192.168.101.1"][0]
        assert [d["up"] for d in http["destinations"]] == [True, True, True]
        assert http["destinations"][0]["mac"] == "52:54:00:00:01:20"
        assert doc["bgp"]["10.1.100.100"]["state"] == "ESTABLISHED"
        assert doc["rib"] == ["192.168.101.1", "192.168.101.2"]

        # gzip variant and Accept-Encoding
        status, headers, body = webd.get("/status.json.gz")
        assert headers["Content-Encoding"] == "gzip"
        assert json.loads(gzip.decompress(body))["summary"]["dsr"] is True
        status, headers, body = webd.get("/metrics", {"Accept-Encoding": "gzip"})
        assert headers.get("Content-Encoding") == "gzip"
        assert b'vc5_backend_status{service="192.168.101.1:tcp:80",name="foo",backend="10.1.100.121:80"} 1' \
            in gzip.decompress(body)

        # a backend goes down: visible at once (PropertiesChanged), in JSON, metrics and the log
        fakes.run(fakes.health.flip, dict(flip_down="10.1.100.121"))
        until(lambda: not _status(webd)["services"]["192.168.101.1"][0]["destinations"][1]["up"], timeout=10)
        body = webd.get("/metrics")[2]
        assert b'vc5_backend_status{service="192.168.101.1:tcp:80",name="foo",backend="10.1.100.121:80"} 0' \
            in body
        until(lambda: any("Backend 10.1.100.121:80 for service 192.168.101.1:80:tcp went down" in e["text"]
                          for e in webd.json("/log/0")), timeout=10)

        # vc5 v0.2's /prefixes.json: packets per source /20, index = address >> 12
        prefixes = webd.json("/prefixes.json")
        assert len(prefixes) == 1 << 20 and prefixes[0xCB007] == 1234 and prefixes[0x0A016] == 5
        assert sum(prefixes) == 1239

        # bgpd leaves the bus: absent, not guessed
        fakes.stop("bgp")
        doc = until(lambda: (s := _status(webd)) and not s["daemons"]["org.vc5.Bgp1"] and s, timeout=10)
        assert doc["bgp"] == {} and doc["rib"] == []
        assert b"xvs_global_packets" in webd.get("/metrics")[2]

        assert fakes.manager_calls == [], "webd called a .Manager method"
        assert webd.proc.poll() is None, webd.output()


def test_webd_with_nothing_on_the_bus(private_bus):
    with Webd("--interval", "0.5") as webd:
        doc = until(lambda: _status(webd), timeout=10, message="webd did not answer")
        assert not any(doc["daemons"].values()) and len(doc["daemons"]) == 3
        assert doc["services"] == {} and doc["vip"] == []
        assert b"xvs_" not in webd.get("/metrics")[2]
        assert webd.get("/")[0] == 200
        # then healthd appears
        with Fakes(which=("health",)) as fakes:
            until(lambda: _status(webd)["services"], timeout=10)
            assert fakes.manager_calls == []


def test_sighup_rereads_the_configuration(private_bus, tmp_path):
    import signal
    conf = tmp_path / "vc5.yaml"
    conf.write_text("services: [\n")                       # broken: /config.json says why
    with Webd("--interval", "0.5", "--config", str(conf)) as webd:
        until(lambda: _status(webd), timeout=10)
        try:
            webd.get("/config.json")
            raise AssertionError("a broken configuration was served")
        except OSError as e:
            assert getattr(e, "code", None) == 503
        conf.write_text("vlans:\n  10: 10.1.10.0/24\nservices:\n  - name: foo\n    virtual: [192.0.2.1]\n"
                        "    servers: [10.1.10.10]\n    policy:\n      http:\n")
        webd.proc.send_signal(signal.SIGHUP)
        doc = until(lambda: _config(webd), timeout=10, message="SIGHUP did not re-read the configuration")
        assert "192.0.2.1:80:tcp" in doc["services"]
        assert webd.proc.poll() is None


def _config(webd):
    try:
        return webd.json("/config.json")
    except OSError:
        return None
