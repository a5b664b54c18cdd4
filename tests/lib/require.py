"""Test dependencies that `make deps` installs are required, never skipped.

A test that silently skips when scapy or chromium is missing reports green
while checking nothing. These helpers make a missing dependency fail the run
instead, naming the Debian package that provides it:

    scapy_bgp = require("scapy.contrib.bgp", "python3-scapy")     # module level: a collection error
    chromium = require_program("chromium", "chromium")             # in a fixture or test: a failure
    require_user("nobody")

Only "needs root" is a reason to skip (tests/conftest.py's `root` fixture).
"""

from __future__ import annotations

import importlib
import pwd
import shutil
from types import ModuleType

import pytest

# The PATH the Makefile runs the tests with: Debian's programs, not a pyenv shim's.
CLEAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def hint(what: str, debian_package: str) -> str:
    return f"{what} is missing: install {debian_package} (make deps)"


def require(module: str, debian_package: str) -> ModuleType:
    """Import and return `module`; ImportError naming `debian_package` when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(hint(f"Python module {module}", debian_package)) from e


def require_program(name: str, debian_package: str) -> str:
    """The path of program `name`; fails the test naming `debian_package` when it is not installed."""
    path = shutil.which(name, path=CLEAN_PATH)
    if path is None:
        pytest.fail(hint(f"program {name}", debian_package), pytrace=False)
    return path


def require_user(name: str) -> pwd.struct_passwd:
    """The passwd entry of `name`, a user every Debian system has (base-passwd); fails without it."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pytest.fail(f"no user {name!r}: every Debian system has it (package base-passwd); "
                    f"this machine's /etc/passwd is broken", pytrace=False)
