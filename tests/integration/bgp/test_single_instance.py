"""A second vc5-bgpd must not talk BGP while another owns org.vc5.Bgp1.

Two real vc5-bgpd processes on one private bus, one configured peer: a plain
listening TCP socket on loopback that counts the connections it is offered
(vc5-bgpd is the active side, so every session attempt is one connection).
The first owns the name and connects; the second is refused the name and exits
1 with a message naming org.vc5.Bgp1, before it opens any session: the peer
sees one connection only.
"""

import os
import socket
import subprocess
import textwrap
import threading
import time

from tests.lib.wait import until
from vc5.common import bus as vbus
from vc5.common import names

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


class CountingPeer:
    """A TCP listener that accepts and keeps every connection (it never answers the OPEN)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.accepted.append(conn)

    def close(self):
        self._stop.set()
        self._thread.join(5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


def start_bgpd(config):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "services"), PYTHONUNBUFFERED="1")
    env.pop("NOTIFY_SOCKET", None)
    env.pop("INVOCATION_ID", None)
    return subprocess.Popen(["/usr/bin/python3", "-m", "vc5.bgpd", "--config", str(config), "--learn", "0",
                             "--retry-min", "0.2", "--retry-max", "0.5"],
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def owner(health):
    async def get():
        return await vbus.get_name_owner(health.bus, names.BGP_BUS)
    return health._call(get())


def test_second_bgpd_exits_1_and_opens_no_session(health, tmp_path):
    peer = CountingPeer()
    config = tmp_path / "vc5.yaml"
    config.write_text(textwrap.dedent(f"""\
        address: 10.0.0.2
        bgp:
          as_number: 65001
          hold_time: 6
          port: {peer.port}
          peers: [127.0.0.1]
        """))
    first = start_bgpd(config)
    second = None
    try:
        until(lambda: owner(health), 15, message="the first vc5-bgpd owns org.vc5.Bgp1")
        until(lambda: len(peer.accepted) == 1, 10, message="the first vc5-bgpd connected to the peer")
        owner_before = owner(health)

        second = start_bgpd(config)
        out, _ = second.communicate(timeout=30)
        assert second.returncode == 1, out
        assert names.BGP_BUS in out and "already owned" in out, out
        time.sleep(1.0)        # a session the second had opened would have connected by now (retry 0.2 s)
        assert len(peer.accepted) == 1, "the second vc5-bgpd opened a BGP session"
        assert first.poll() is None and owner(health) == owner_before
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if first.stdout is not None:
            first.stdout.close()
        peer.close()
