"""vc5-notifyd against recording HTTP endpoints, fed from a private journald.

    notifier netns (wt-notifyd-n*)  eth0 10.77.0.1/24   vc5-notifyd (nsenter: the journal's mount ns)
          |  veth
    endpoint netns (wt-notifyd-e*)  eth0 10.77.0.2/24   endpoints.py :9200 (_bulk, /hook/slack, /hook/teams)

Events are written with systemd.journal.send() under a SYSLOG_IDENTIFIER unique to
the test, and the notifier follows only that (--match).
"""

import json
import os
import signal
import subprocess
import uuid

import pytest

from tests.lib.netns import veth
from tests.lib.wait import until

from vc5.config import load
from vc5.notifyd.settings import sinks as configured_sinks

from .journal import ROOT, PrivateJournal

ES_PORT = 9200
CONFIG = """\
logging:
  alert: {alert}
  slack: http://10.77.0.2:{port}/hook/slack
  teams: http://10.77.0.2:{port}/hook/teams
  elasticsearch:
    index: {index}
    addresses: [http://10.77.0.2:{port}]
"""


def jsonl(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


class Endpoints:
    def __init__(self, ns, directory):
        self.ns, self.dir, self.proc = ns, directory, None

    def start(self):
        self.proc = self.ns.popen(["/usr/bin/python3", "-m", "tests.integration.notify.endpoints", self.dir,
                                   str(ES_PORT)], cwd=ROOT, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ROOT})
        until(lambda: self.ns.run(f"ss -Hltn 'sport = :{ES_PORT}'").stdout.strip(), 15,
              message="endpoints did not listen")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def control(self, **settings):
        with open(os.path.join(self.dir, "control.json.tmp"), "w") as f:
            json.dump(settings, f)
        os.replace(os.path.join(self.dir, "control.json.tmp"), os.path.join(self.dir, "control.json"))

    def stored(self):
        """Elasticsearch documents in the order they were stored."""
        return jsonl(os.path.join(self.dir, "es.jsonl"))

    def seqs(self):
        return [int(d["doc"]["vc5.seq"]) for d in self.stored()]

    def hooks(self, name):
        return jsonl(os.path.join(self.dir, f"{name}.jsonl"))

    def requests(self):
        return jsonl(os.path.join(self.dir, "requests.jsonl"))

    def conflicts(self):
        return jsonl(os.path.join(self.dir, "conflicts.jsonl"))


class Notifier:
    def __init__(self, journal, ns, tmp, ident):
        self.journal, self.ns, self.tmp, self.ident = journal, ns, tmp, ident
        self.state = os.path.join(tmp, "state")
        self.config = os.path.join(tmp, "vc5.yaml")
        self.metrics = os.path.join(tmp, "metrics.prom")
        self.log = os.path.join(tmp, "notifyd.log")
        self.proc = None

    def write_config(self, text):
        with open(self.config + ".tmp", "w") as f:
            f.write(text)
        os.replace(self.config + ".tmp", self.config)

    def start(self, *extra, env=None):
        argv = ["/usr/bin/python3", "-m", "vc5.notifyd", "--config", self.config, "--state-directory",
                self.state, "--metrics-file", self.metrics, "--match", f"SYSLOG_IDENTIFIER={self.ident}",
                "--backoff-initial", "0.1", "--backoff-max", "0.5", "--backoff-jitter", "0",
                "--backlog-interval", "0.2", "--timeout", "5", "--batch", "20", *extra]
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT}/services:{ROOT}", **(env or {})}
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(self.journal.argv(argv, net=self.ns.path), stdout=log,
                                         stderr=subprocess.STDOUT, env=env, start_new_session=True)
        sinks = configured_sinks(load(self.config))
        # Ready: every configured sink has its cursor file (positioned before any event is sent).
        until(lambda: self.proc.poll() is not None or all(
            os.path.exists(os.path.join(self.state, f"cursor-{s}")) for s in sinks), 20,
            message="vc5-notifyd wrote no cursor files")
        assert self.proc.poll() is None, f"vc5-notifyd exited {self.proc.returncode}:\n{self.output()}"

    def send_signal(self, sig):
        os.kill(self.proc.pid, sig)

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(20)

    def output(self):
        with open(self.log) as f:
            return f.read()

    def metric(self, name, sink):
        try:
            with open(self.metrics) as f:
                for line in f:
                    if line.startswith(f'{name}{{sink="{sink}"}} '):
                        return float(line.split()[-1])
        except FileNotFoundError:
            pass
        return None


class World:
    def __init__(self, journal, notifier, endpoints, ident):
        self.journal, self.notifier, self.endpoints, self.ident = journal, notifier, endpoints, ident

    def send(self, seqs, priority=6, message_id="33e664a8c1644fdcbe569acfa8d1be25"):
        self.journal.send([{"MESSAGE": f"backend went up #{n}", "SYSLOG_IDENTIFIER": self.ident,
                            "PRIORITY": str(priority), "MESSAGE_ID": message_id, "VC5_SEQ": str(n),
                            "VC5_VIP": "192.0.2.1", "VC5_BACKEND": "10.1.10.10"} for n in seqs])


@pytest.fixture
def world(root, netns_factory, tmp_path):
    notifier_ns, endpoint_ns = netns_factory("wt-notifyd-n"), netns_factory("wt-notifyd-e")
    veth(notifier_ns, "eth0", endpoint_ns, "eth0")
    notifier_ns.run("ip addr add 10.77.0.1/24 dev eth0")
    endpoint_ns.run("ip addr add 10.77.0.2/24 dev eth0")
    journal = PrivateJournal(str(tmp_path))
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    endpoints = Endpoints(endpoint_ns, str(recorded))
    endpoints.start()
    ident = f"wtn-{uuid.uuid4().hex[:8]}"
    notifier = Notifier(journal, notifier_ns, str(tmp_path), ident)
    notifier.write_config(CONFIG.format(alert=3, port=ES_PORT, index="vc5-test"))
    try:
        yield World(journal, notifier, endpoints, ident)
    finally:
        notifier.stop(signal.SIGKILL)
        endpoints.stop()
        journal.close()
