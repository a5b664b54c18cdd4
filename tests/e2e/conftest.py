"""The lab with the whole vc5 stack, shared by the end-to-end tests of a module."""

import os

import pytest

from tests.lab.stack import Stack
from tests.lab.topology import Lab


@pytest.fixture(scope="module")
def lab(root):
    lab = Lab.build(prefix=f"vc5e{os.getpid() % 10000}")
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


def pytest_terminal_summary(terminalreporter):
    """The chaos tables (tests/lab/chaos.py), after the results: the figures of the run."""
    from tests.lab.chaos import TABLES
    for title, table in TABLES:
        terminalreporter.section(title)
        terminalreporter.write_line(table)
