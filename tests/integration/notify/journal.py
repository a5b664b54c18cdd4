"""A private systemd-journald for tests: PID 1 here is not systemd and no host journal runs.

journald is started in its own mount namespace (unshare -m) with tmpfs on /run and
/var/log/journal, so its socket (/run/systemd/journal/socket) and its files
(/run/log/journal, Storage=volatile) exist only there; the host and other test runs
see nothing. Writers and readers join that mount namespace with
`nsenter --mount=/proc/PID/ns/mnt` (the notifier, and `send()` below). Rate limiting
and /dev/kmsg are off (journald.conf(5)), so a test's burst is stored whole.
"""

import json
import os
import subprocess
import time

from tests.lib.wait import until

CONF = "[Journal]\nStorage=volatile\nRateLimitIntervalSec=0\nReadKMsg=no\nForwardToSyslog=no\n" \
       "ForwardToWall=no\nForwardToConsole=no\n"
SCRIPT = """set -e
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=0755 tmpfs /var/log/journal
mount --bind "$1" /etc/systemd/journald.conf
mkdir -p /run/systemd/journal /run/log/journal
exec /lib/systemd/systemd-journald
"""
SENDER = """
import json, sys
from systemd import journal
for fields in json.load(sys.stdin):
    message = fields.pop("MESSAGE")
    journal.send(message, **fields)
"""
ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..")


class PrivateJournal:
    def __init__(self, tmp):
        conf = os.path.join(tmp, "journald.conf")
        with open(conf, "w") as f:
            f.write(CONF)
        self.log = open(os.path.join(tmp, "journald.log"), "w")
        self.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", SCRIPT,
                                      "journald", conf], stdout=self.log, stderr=subprocess.STDOUT)
        self.mnt = f"/proc/{self.proc.pid}/ns/mnt"
        until(lambda: self.proc.poll() is not None or self._socket_ready(), 10,
              message="private journald did not start")
        assert self.proc.poll() is None, f"journald exited {self.proc.returncode}; see {self.log.name}"

    def _socket_ready(self):
        return os.path.exists(f"/proc/{self.proc.pid}/root/run/systemd/journal/socket")

    def argv(self, argv, net=None):
        """`argv` inside the journal's mount namespace (and the network namespace `net`, a path)."""
        return ["nsenter", f"--mount={self.mnt}", *([f"--net={net}"] if net else []), "--", *argv]

    def send(self, events):
        """journal.send() each dict (MESSAGE plus FIELD=value) from inside the namespace, in order."""
        subprocess.run(self.argv(["/usr/bin/python3", "-c", SENDER]), input=json.dumps(events), text=True,
                       check=True, timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ROOT})

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        time.sleep(0)
