#!/usr/bin/python3
"""Benchmark vc5-notifyd's journal side: counting the backlog and reading events (needs root).

A private systemd-journald (tests/integration/notify/journal.py: its own mount
namespace) is filled with N entries (default 50,000) of one SYSLOG_IDENTIFIER;
then, inside that namespace, in the same run:
  * baseline: counting them with Reader.get_next() (decodes every field);
  * vc5-notifyd's Follower.count_after() (bare sd_journal_next, no decoding),
    which runs on the event loop every --backlog-interval while an endpoint is
    down, up to --max-backlog + 1 entries;
  * Follower.read() in batches of 500 (entries -> Events, what a pipeline does).

Usage: sudo /usr/bin/python3 bench/notifyd_backlog.py [N]
"""

import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from tests.integration.notify.journal import PrivateJournal  # noqa: E402

MEASURE = """
import sys, time
sys.path.insert(0, %(services)r)
from vc5.notifyd.follower import Follower
match = [['SYSLOG_IDENTIFIER=wtn-bench']]

def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0

def baseline():
    f = Follower(match)
    f.seek('')
    n = 0
    while f.reader.get_next():
        n += 1
    return n

def read_all():
    f = Follower(match)
    f.seek('')
    n = 0
    while True:
        batch = f.read(500)
        if not batch:
            return n
        n += len(batch)

n0, t0 = timed(baseline)
n1, t1 = timed(lambda: Follower(match).count_after('', 10 ** 7))
n2, t2 = timed(read_all)
print(f"baseline  get_next() count : {n0:7d} entries {t0:6.3f} s  {n0 / t0:9.0f} /s")
print(f"notifyd   count_after()    : {n1:7d} entries {t1:6.3f} s  {n1 / t1:9.0f} /s")
print(f"notifyd   read() -> Event  : {n2:7d} entries {t2:6.3f} s  {n2 / t2:9.0f} /s")
"""


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    tmp = tempfile.mkdtemp(prefix="wt-notifyd-bench")
    journal = PrivateJournal(tmp)
    try:
        for start in range(0, n, 10_000):
            journal.send([{"MESSAGE": f"backend went up #{i}", "SYSLOG_IDENTIFIER": "wtn-bench",
                           "PRIORITY": "5", "VC5_SEQ": str(i), "VC5_VIP": "192.0.2.1"}
                          for i in range(start, min(n, start + 10_000))])
        code = MEASURE % {"services": os.path.join(ROOT, "services")}
        r = subprocess.run(journal.argv(["/usr/bin/python3", "-c", code]), capture_output=True, text=True,
                           timeout=600)
        print(r.stdout + r.stderr, end="")
    finally:
        journal.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
