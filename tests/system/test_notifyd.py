"""vc5-notifyd from its .deb in the booted container: hardened, ships the journal, keeps its cursor.

The fake Elasticsearch (tests/integration/notify/endpoints.py) runs inside the
container as a transient unit on 127.0.0.1; events are written to the
container's journald as vc5-healthd would (SYSLOG_IDENTIFIER, MESSAGE_ID,
VC5_* fields). The "upgrade" is `apt install --reinstall` of vc5-notifyd's
.deb: the same maintainer-script path as an upgrade (prerm upgrade, preinst
upgrade, postinst configure with the old version, then dh's restart)
without changing the version other tests in this session install.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess

import pytest

from tests.lib.wait import until
from tests.system.conftest import APT, needs_service

pytestmark = needs_service("notifyd")
HERE = os.path.dirname(os.path.abspath(__file__))
PORT = 19277
RECORDED = "/root/notify-es"
EXPOSURE_TARGET = 1.5
LOGGING = f"""
logging:
  alert: 3
  elasticsearch:
    index: vc5-system
    addresses: [http://127.0.0.1:{PORT}]
"""
SEND = ("from systemd import journal\n"
        "import sys\n"
        "for n in range(int(sys.argv[1]), int(sys.argv[2])):\n"
        "    journal.send(f'backend went up #{n}', SYSLOG_IDENTIFIER='vc5-healthd', PRIORITY='5',\n"
        "                 MESSAGE_ID='33e664a8c1644fdcbe569acfa8d1be25', VC5_SEQ=str(n),\n"
        "                 VC5_VIP='192.0.2.1')\n")


def sh(m, cmd, **kw):
    return m.run(cmd, **kw)


def stored(m):
    """The test's documents (the running healthd's own events are shipped too: left out)."""
    out = sh(m, f"cat {RECORDED}/es.jsonl 2>/dev/null").stdout
    docs = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [d for d in docs if "vc5.seq" in d["doc"]]


def journal_of(m):
    return sh(m, "journalctl -u vc5-notifyd -n 30 --no-pager").stdout


def seqs(m):
    return [int(d["doc"]["vc5.seq"]) for d in stored(m)]


def send(m, first, last):
    sh(m, f"python3 -c {shlex.quote(SEND)} {first} {last}", check=True)


@pytest.fixture(scope="module")
def notifyd(machine):
    m = machine
    status = sh(m, "dpkg-query -W -f='${Status}' vc5-notifyd").stdout
    if status != "install ok installed":        # a tier run purges the packages before this file
        sh(m, f"{APT} install --no-install-recommends /root/debs/*.deb", check=True, timeout=300)
    m.put(os.path.join(HERE, "..", "integration", "notify", "endpoints.py"), "/root/notify_endpoints.py")
    sh(m, f"rm -rf {RECORDED} && mkdir -p {RECORDED}", check=True)
    sh(m, f"systemd-run --unit=wtn-fake-es python3 /root/notify_endpoints.py {RECORDED} {PORT}", check=True)
    until(lambda: sh(m, f"ss -Hltn 'sport = :{PORT}'").stdout.strip(), 30, message="fake ES did not listen")
    original = sh(m, "cat /etc/vc5/vc5.yaml", check=True).stdout
    m.write("/etc/vc5/vc5.yaml.notifyd", original + LOGGING, 0o640)
    sh(m, "chown root:vc5 /etc/vc5/vc5.yaml.notifyd && mv /etc/vc5/vc5.yaml.notifyd /etc/vc5/vc5.yaml",
       check=True)
    r = sh(m, "systemctl reload vc5-notifyd")
    assert r.returncode == 0, r.stderr + journal_of(m)
    until(lambda: os.path.exists(os.path.join(m.root, "var/lib/vc5-notifyd/cursor-elasticsearch")), 30,
          message="no cursor after the reload:\n" + journal_of(m))
    try:
        yield m
    finally:
        m.write("/etc/vc5/vc5.yaml.notifyd", original, 0o640)
        sh(m, "chown root:vc5 /etc/vc5/vc5.yaml.notifyd && mv /etc/vc5/vc5.yaml.notifyd /etc/vc5/vc5.yaml")
        sh(m, "systemctl kill -s KILL wtn-fake-es; systemctl stop wtn-fake-es", timeout=60)
        r = sh(m, "systemctl reload vc5-notifyd", timeout=60)
        assert r.returncode == 0, r.stderr + journal_of(m)


def test_notifyd_unit_is_enabled_active_and_hardened(notifyd, capsys):
    m = notifyd
    assert sh(m, "systemctl is-enabled vc5-notifyd").stdout.strip() == "enabled"
    assert sh(m, "systemctl is-active vc5-notifyd").stdout.strip() == "active"
    assert sh(m, "systemctl show -P User vc5-notifyd").stdout.strip() == "_vc5-notify"
    out = sh(m, "systemd-analyze security --no-pager vc5-notifyd.service", check=True).stdout
    score = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", out).group(1))
    with capsys.disabled():
        print(f"\nsystemd-analyze security vc5-notifyd.service: {score} (target <= {EXPOSURE_TARGET})")
    assert score <= EXPOSURE_TARGET, out[-1500:]


def test_notifyd_ships_the_journal_to_elasticsearch(notifyd):
    m = notifyd
    send(m, 1, 21)
    until(lambda: len(stored(m)) >= 20, 30, message="not shipped:\n" + journal_of(m))
    assert seqs(m) == list(range(1, 21))
    doc = stored(m)[0]
    assert doc["_index"] == "vc5-system" and doc["doc"]["event.action"] == "backend_up"
    assert doc["doc"]["journal.identifier"] == "vc5-healthd"

    def delivered():
        text = sh(m, "cat /run/vc5-notifyd/metrics.prom").stdout
        found = re.search(r'^vc5_notify_delivered_total\{sink="elasticsearch"\} (\d+)$', text, re.M)
        return found and int(found.group(1)) >= 20
    try:
        until(delivered, 10)
    except AssertionError:
        shown = sh(m, "ls -la /run/vc5-notifyd; cat /run/vc5-notifyd/*").stdout
        raise AssertionError(f"no delivered count in metrics.prom:\n{shown}\n{journal_of(m)}") from None


def test_notifyd_cursor_survives_an_upgrade(notifyd):
    """Events logged while the notifier is stopped are delivered by the upgraded one: had the upgrade
    lost the cursor file, it would start at the journal's end and never send them."""
    m = notifyd
    send(m, 21, 31)
    until(lambda: len(stored(m)) >= 30, 30)
    sh(m, "systemctl stop vc5-notifyd", check=True)
    send(m, 31, 41)
    sh(m, f"{APT} install --reinstall /root/debs/vc5-notifyd_*.deb", check=True, timeout=300)
    until(lambda: sh(m, "systemctl is-active vc5-notifyd").stdout.strip() == "active", 30,
          message="the upgrade did not start vc5-notifyd again")
    until(lambda: len(stored(m)) >= 40, 30, message="events logged before the upgrade were lost:\n"
          + journal_of(m))
    assert seqs(m) == list(range(1, 41)), "exactly once, in order, across the upgrade"
    assert not sh(m, f"cat {RECORDED}/conflicts.jsonl 2>/dev/null").stdout.strip(), \
        "the restarted notifier sent acknowledged events again"


def test_notifyd_package_contents(debs):
    deb = next(f for f in debs.files if os.path.basename(f).startswith("vc5-notifyd_"))
    listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, check=True).stdout
    files = {line.split()[-1].lstrip(".") for line in listing.splitlines()}
    for path in ("/usr/bin/vc5-notifyd", "/lib/systemd/system/vc5-notifyd.service",
                 "/usr/lib/sysusers.d/vc5-notifyd.conf", "/usr/share/man/man8/vc5-notifyd.8.gz"):
        assert path in files, path
    depends = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], capture_output=True, text=True).stdout
    for dep in ("python3-vc5", "python3-aiohttp", "python3-systemd"):
        assert dep in depends, depends
    meta = next(f for f in debs.files if os.path.basename(f).startswith("vc5_"))
    recommends = subprocess.run(["dpkg-deb", "-f", meta, "Recommends"], capture_output=True, text=True).stdout
    assert "vc5-notifyd" in recommends
