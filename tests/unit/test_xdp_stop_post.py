"""vc5-xdp-loader's command line and the ExecStopPost decision (stop_post.py): no root."""

import asyncio

import pytest

from vc5.xdp_loader import stop_post
from vc5.xdp_loader.__main__ import parse_args
from vc5.xdp_loader.stop_post import stop_post_decision


@pytest.mark.parametrize("job, result, detach", [
    ("stop", "success", True),              # systemctl stop
    ("", "success", True),                  # stopped, no job left
    (None, "success", True),                # systemd not reachable: a clean stop
    ("restart", "success", False),          # systemctl restart / package upgrade
    ("try-restart", "success", False),
    ("reload-or-restart", "success", False),
    ("", "signal", False),                  # crashed: Restart= may bring it back
    (None, "watchdog", False),
    ("stop", "signal", True),               # an explicit stop wins over a failure
])
def test_stop_post_decision(job, result, detach):
    decided, why = stop_post_decision(job, result)
    assert decided is detach and why


def test_pending_job_unknown_without_a_bus(monkeypatch, tmp_path):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    assert asyncio.run(stop_post.pending_job_type("vc5-xdp-loader.service", timeout=2)) is None


def test_command_line_keeps_every_flag():
    a = parse_args(["--config", "/c.yaml", "--pin-dir", "/sys/fs/bpf/x", "--lock", "/l", "--rescan", "0.5",
                    "--flows", "4096", "--unit", "u.service", "--stop-post"])
    assert (a.config, a.pin_dir, a.lock, a.rescan, a.flows, a.unit) == (
        "/c.yaml", "/sys/fs/bpf/x", "/l", 0.5, 4096, "u.service")
    assert a.stop_post and not a.detach
    assert parse_args(["--detach"]).detach
    with pytest.raises(SystemExit):
        parse_args(["--detach", "--stop-post"])      # one action at a time


def test_unit_runs_the_stop_post_command():
    with open("units/vc5-xdp-loader.service") as f:
        lines = [line.strip() for line in f if line.startswith("ExecStopPost=")]
    assert lines == ["ExecStopPost=/usr/bin/vc5-xdp-loader --stop-post"]
    assert parse_args(lines[0].split()[1:]).stop_post
