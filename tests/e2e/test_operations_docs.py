"""The operator documentation's worked example is a configuration vc5 accepts, as described."""

import os
import subprocess
import sys

from tests.lab.topology import REPO

EXAMPLE = os.path.join(REPO, "docs", "operations", "example.yaml")


def test_worked_example_is_valid_and_says_what_the_page_says():
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "services"))
    r = subprocess.run([sys.executable, "-m", "vc5.cli", "config", "check", EXAMPLE], capture_output=True,
                       text=True, timeout=30, env=env, cwd=REPO)
    assert r.returncode == 0, r.stderr
    summary = "OK: 6 services on 3 VIPs, 5 backends, 2 BGP peers"
    assert summary in r.stdout, r.stdout
    page = " ".join(open(os.path.join(REPO, "docs", "operations", "example.md")).read().split())
    assert summary in page, "docs/operations/example.md quotes another summary"
