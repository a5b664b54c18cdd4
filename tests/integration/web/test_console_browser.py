"""The console in a real browser: headless Chromium (in one network namespace) loads the page
served by a socket-activated vc5-webd (in another), reading fake daemons on a private bus.

Asserts what a person sees after the JavaScript ran (VIPs, backend rows and their states), that
a backend flipped down by the fake healthd turns into a DOWN row in place, and saves
screenshots (desktop and phone widths) under tests/out/web/ (path printed)."""

import os
import re
import shutil
import subprocess
import tempfile

import pytest

from tests.integration.web.fakes import Fakes
from tests.integration.web.webd_process import GUARD, SERVICES
from tests.lib.netns import veth
from tests.lib.require import require_program
from tests.lib.wait import until

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "out", "web")
WEB_IP, CLIENT_IP = "10.203.77.1", "10.203.77.2"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def lab(root, private_bus, netns_factory):
    require_program("chromium", "chromium")
    web, client = netns_factory("vc5w"), netns_factory("vc5w")
    veth(web, "w0", client, "c0")
    web.run(["ip", "addr", "add", f"{WEB_IP}/24", "dev", "w0"])
    client.run(["ip", "addr", "add", f"{CLIENT_IP}/24", "dev", "c0"])
    tmp = tempfile.mkdtemp(prefix="vc5browser")
    with open(os.path.join(tmp, "sitecustomize.py"), "w") as f:
        f.write(GUARD)          # webd may not open AF_INET sockets: the socket comes from the activator
    with Fakes() as fakes:
        proc = web.popen(["systemd-socket-activate", "-l", f"{WEB_IP}:80",
                          "-E", f"DBUS_SYSTEM_BUS_ADDRESS={private_bus}",
                          "-E", f"PYTHONPATH={tmp}:{os.path.abspath(SERVICES)}",
                          "/usr/bin/python3", "-m", "vc5.webd", "--interval", "1"])
        try:
            yield fakes, client, tmp
        finally:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
            shutil.rmtree(tmp, ignore_errors=True)


def chromium(client, tmp, *args, size="1280,1000"):
    exe = require_program("chromium", "chromium")
    profile = tempfile.mkdtemp(prefix="prof", dir=tmp)
    p = client.run([exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
                    "--virtual-time-budget=5000", *args, f"http://{WEB_IP}/"], check=False, timeout=60)
    shutil.rmtree(profile, ignore_errors=True)
    return p


def dom(client, tmp):
    return chromium(client, tmp, "--dump-dom").stdout


def backend_state(html, backend):
    m = re.search(r'<tr[^>]*data-backend="' + re.escape(backend) + r'"[^>]*data-state="(\w+)"', html)
    return m.group(1) if m else None


def test_console_shows_state_and_follows_a_backend_going_down(lab):
    fakes, client, tmp = lab
    html = until(lambda: (h := dom(client, tmp)) and 'data-state="up"' in h and "kpkt/s" in h and h,
                 timeout=60, interval=0.5, message="the console never rendered the fakes' state")
    for text in ("192.168.101.1", "192.168.101.2", "FooCorp website", "Corporate BIND server",
                 "BGP 10.1.100.100", "ESTABLISHED", "10.1.100.120:80", "DISABLED"):
        assert text in html, text
    assert backend_state(html, "192.168.101.1:80:tcp/10.1.100.121:80") == "up"
    assert backend_state(html, "192.168.101.1:80:tcp/10.1.100.122:80") == "disabled"
    assert "is not running" not in html.split('id="absent"')[1].split("</section>")[0]

    fakes.run(fakes.health.flip, dict(flip_down="10.1.100.121", drained="10.1.100.120"))
    html = until(lambda: (h := dom(client, tmp))
                 and backend_state(h, "192.168.101.1:80:tcp/10.1.100.121:80") == "down" and h,
                 timeout=60, interval=0.5, message="the console never showed the backend down")
    assert backend_state(html, "192.168.101.1:80:tcp/10.1.100.120:80") == "drained"
    assert "Backend 10.1.100.121:80 for service 192.168.101.1:80:tcp went down" in html
    assert "Last check: http: GET http://192.168.101.1/alive - 500 Internal Server Error" in html

    fakes.stop("bgp")
    html = until(lambda: (h := dom(client, tmp)) and "vc5-bgpd is not running" in h and h,
                 timeout=60, interval=0.5, message="the console never said bgpd is absent")

    os.makedirs(OUT, exist_ok=True)
    for name, size in (("console.png", "1280,1300"), ("console-phone.png", "390,1400")):
        path = os.path.abspath(os.path.join(OUT, name))
        p = chromium(client, tmp, f"--screenshot={path}", size=size)
        assert os.path.getsize(path) > 10_000, p.stderr[-2000:]
        print("screenshot:", path)
    assert fakes.manager_calls == []
