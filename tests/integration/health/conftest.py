"""A farm of real backends in a network namespace, and the real healthd in another.

    prober netns (vc5hp*)  eth0 10.9.0.1/24, fd00:9::1/64
          |  veth
    farm netns (vc5hf*)    eth0 10.9.0.10-12/24, fd00:9::10-12/64
                           aiohttp http :80 / https :443 (self-signed), dnsmasq :53 udp+tcp

healthd probes directly (probe path "direct"), on a private bus.
"""

import os
import subprocess

import pytest

from tests.lib.netns import veth
from tests.lib.wait import until

from .healthd_proc import Healthd, write

HERE = os.path.dirname(os.path.abspath(__file__))
V4 = ["10.9.0.10", "10.9.0.11", "10.9.0.12"]
V6 = ["fd00:9::10", "fd00:9::11", "fd00:9::12"]


class Farm:
    def __init__(self, prober, farm, state_dir, bus, tmp):
        self.prober, self.ns, self.state_dir, self.bus, self.tmp = prober, farm, state_dir, bus, tmp

    def set_status(self, address, status):
        write(os.path.join(self.state_dir, address), str(status))

    def host_seen(self, address):
        try:
            with open(os.path.join(self.state_dir, "host-" + address)) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def healthd(self, config_text, name="vc5.yaml", args=()):
        cfg = write(os.path.join(self.tmp, name), config_text)
        return Healthd(cfg, self.bus, args=args, argv_prefix=["nsenter", f"--net={self.prober.path}", "--"])


@pytest.fixture
def farm(root, netns_factory, private_bus, tmp_path):
    prober, farm_ns = netns_factory("vc5hp"), netns_factory("vc5hf")
    veth(prober, "eth0", farm_ns, "eth0")
    prober.run("ip addr add 10.9.0.1/24 dev eth0 && ip -6 addr add fd00:9::1/64 dev eth0 nodad")
    for a in V4:
        farm_ns.run(f"ip addr add {a}/24 dev eth0")
    for a in V6:
        farm_ns.run(f"ip -6 addr add {a}/64 dev eth0 nodad")
    state = tmp_path / "state"
    state.mkdir()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=backend.test", "-keyout", str(key), "-out", str(cert)], check=True,
                   capture_output=True)
    web = farm_ns.popen(["/usr/bin/python3", os.path.join(HERE, "backend_server.py"), str(state), str(cert),
                         str(key)])
    assert web.stdout.readline().strip() == b"ready", "backend server did not start"
    dns = farm_ns.popen(["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                         "--port=53", "--bind-dynamic", "--pid-file=", "--log-facility=-"],
                        stdout=subprocess.DEVNULL)
    until(lambda: ":53 " in farm_ns.run("ss -ltnH").stdout, timeout=10, message="dnsmasq did not listen")
    try:
        yield Farm(prober, farm_ns, str(state), private_bus, str(tmp_path))
    finally:
        for p in (web, dns):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
