"""Fixtures shared by every tier."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "services"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tests.lib import netns as _netns  # noqa: E402
from tests.lib.privatebus import private_bus as _private_bus  # noqa: E402


@pytest.fixture
def private_bus():
    """A private system-like bus; DBUS_SYSTEM_BUS_ADDRESS points at it."""
    with _private_bus() as address:
        yield address


@pytest.fixture
def netns_factory():
    """netns_factory(prefix) -> Netns; all are deleted after the test."""
    made = []

    def make(prefix="vc5t"):
        ns = _netns.Netns.create(prefix)
        made.append(ns)
        return ns

    yield make
    for ns in reversed(made):
        ns.delete()


@pytest.fixture(scope="session")
def root():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, XDP)")
