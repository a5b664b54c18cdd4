"""What must hold before the loader touches anything (startup.py): the lock, the configuration."""

import os

import pytest

from vc5.xdp_loader.startup import StartupError, load_config, take_lock


def test_lock_refuses_a_second_holder(tmp_path):
    path = str(tmp_path / "run" / "lock")
    fd = take_lock(path)
    try:
        with pytest.raises(StartupError, match=f"pid {os.getpid()}.*holds the lock"):
            take_lock(path)
    finally:
        os.close(fd)
    os.close(take_lock(path))               # released with the fd


def test_configuration_problems_refuse_the_start(tmp_path):
    with pytest.raises(StartupError, match="cannot read the configuration"):
        load_config(str(tmp_path / "absent.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("interfaces: [l0\n")
    with pytest.raises(StartupError, match="configuration refused"):
        load_config(str(bad))
    empty = tmp_path / "empty.yaml"
    empty.write_text("vlans:\n  1: 10.201.1.0/24\n")
    assert not load_config(str(empty)).interfaces
    with pytest.raises(StartupError, match="no interfaces"):
        load_config(str(empty), need_interfaces=True)
