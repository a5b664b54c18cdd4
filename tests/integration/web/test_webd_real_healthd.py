"""webd and vc5ctl reading the real vc5-healthd (not a fake): healthd in one namespace checks a real
HTTP server in another; webd's /status.json, /metrics and log, and `vc5ctl backends`, follow the
backend up, then down when the server stops. Bounded: one backend, ~25 s."""

import os
import subprocess
import tempfile

import pytest

from tests.integration.web.webd_process import SERVICES
from tests.lib.netns import veth
from tests.lib.wait import until

LB_IP, BE_IP, VIP = "10.203.78.1", "10.203.78.2", "192.0.2.10"
CONFIG = f"""
vlans:
  1: {LB_IP}/24
services:
  - name: web
    description: real healthd
    virtual: [{VIP}]
    servers: [{BE_IP}]
    policy:
      http:
"""


@pytest.fixture
def lab(root, private_bus, netns_factory):
    lb, be = netns_factory("vc5h"), netns_factory("vc5h")
    veth(lb, "l0", be, "b0")
    lb.run(["ip", "addr", "add", f"{LB_IP}/24", "dev", "l0"])
    be.run(["ip", "addr", "add", f"{BE_IP}/24", "dev", "b0"])
    tmp = tempfile.mkdtemp(prefix="vc5realh")
    conf = os.path.join(tmp, "vc5.yaml")
    with open(conf, "w") as f:
        f.write(CONFIG)
    www = os.path.join(tmp, "www")
    os.mkdir(www)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("ok\n")
    env = dict(os.environ, PYTHONPATH=os.path.abspath(SERVICES))
    server = be.popen(["/usr/bin/python3", "-m", "http.server", "80", "--bind", BE_IP, "--directory", www],
                      stdout=subprocess.DEVNULL)
    healthd = lb.popen(["/usr/bin/python3", "-m", "vc5.healthd", "-c", conf, "--probe-path", "direct"],
                       env=env)
    webd = lb.popen(["/usr/bin/python3", "-m", "vc5.webd", "--listen", f"{LB_IP}:8080", "--config", conf,
                     "--interval", "1"], env=env)
    procs = [server, healthd, webd]
    try:
        yield lb, server, env
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, 15)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                p.wait()
        subprocess.run(["rm", "-rf", tmp])


FETCH = ("import sys, urllib.request; "
         "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())")


def curl(ns, path):
    """GET from inside the namespace (python, so no extra package is needed)."""
    r = ns.run(["/usr/bin/python3", "-c", FETCH, f"http://{LB_IP}:8080{path}"], check=False)
    return r.stdout if r.returncode == 0 else ""


def test_webd_follows_real_healthd(lab):
    import json
    lb, server, env = lab

    def backend():
        text = curl(lb, "/status.json")
        if not text:
            return None
        doc = json.loads(text)
        svcs = doc["services"].get(VIP)
        return svcs[0]["destinations"][0] if svcs else None

    up = until(lambda: (d := backend()) and d["up"] and d, timeout=30, interval=0.5,
               message="healthd's backend never came up in webd")
    assert up["address"] == BE_IP and up["port"] == 80
    metrics = curl(lb, "/metrics")
    assert f'vc5_backend_status{{service="{VIP}:tcp:80",name="web",backend="{BE_IP}:80"}} 1' in metrics
    r = lb.run(["/usr/bin/python3", "-m", "vc5.cli", "backends", "--quick"], check=False, env=env)
    assert r.returncode == 0 and f"{BE_IP}:80" in r.stdout and " up " in r.stdout, r.stdout + r.stderr

    os.killpg(server.pid, 15)
    server.wait(10)
    down = until(lambda: (d := backend()) and not d["up"] and d, timeout=30, interval=0.5,
                 message="the backend never went down in webd after its server stopped")
    assert down["diagnostic"]
    log = json.loads(curl(lb, "/log/0"))
    assert any(f"Backend {BE_IP}:80 for service {VIP}:80:tcp went down" in e["text"] for e in log), log
