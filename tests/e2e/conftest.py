"""The lab with the whole vc5 stack, shared by the end-to-end tests of a module."""

import os

import pytest

from tests.lab.stack import Stack
from tests.lab.topology import Lab


def running_lab(prefix, **build):
    """Lab.build(**build) with BIRD, the backends and vc5 on every balancer, until the router has
    the VIP from each; a generator for module fixtures (yields the lab, then removes it)."""
    lab = Lab.build(prefix=prefix, **build)
    stack = Stack(lab, interval=0.5)
    lab.stack = stack
    try:
        lab.start_backends()
        lab.start_router()
        stack.start()
        stack.wait_advertised(timeout=90)
        yield lab
    finally:
        lab.destroy()
        stack.stop()


@pytest.fixture(scope="module")
def lab(root):
    yield from running_lab(f"vc5e{os.getpid() % 10000}")


@pytest.fixture(scope="module")
def routed_lab(root):
    """The lab with two routed backends (rb1, rb2) behind the router, vc5-decap on each, and the
    routed services (stack.routed_services: ipip, gre, fou, gue; outer IPv4 and IPv6)."""
    yield from running_lab(f"vc5r{os.getpid() % 10000}", backends=2, routed=2)


def pytest_terminal_summary(terminalreporter):
    """The chaos tables (tests/lab/chaos.py), after the results: the figures of the run."""
    from tests.lab.chaos import TABLES
    for title, table in TABLES:
        terminalreporter.section(title)
        terminalreporter.write_line(table)
