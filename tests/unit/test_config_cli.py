"""vc5ctl config check|json, run as operators run it: a subprocess of Debian's python."""

import json
import os
import re
import subprocess
import sys

import pytest

from vc5.cli import __main__ as cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "unit", "config_cases", "vc5-fixtures")
SAMPLE = os.path.join(ROOT, "etc", "vc5", "vc5.yaml")


def vc5ctl(*args, stdin=None):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "services"))
    return subprocess.run([sys.executable, "-m", "vc5.cli", *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=60)


@pytest.mark.parametrize("name, summary", [
    ("config.sample.yaml", "1 service on 1 VIP, 4 backends, 2 BGP peers"),
    ("ipv6-l3.yaml", "3 services on 3 VIPs, 6 backends, 1 BGP peer"),
])
def test_check_accepts_vc5_examples(name, summary):
    path = os.path.join(FIXTURES, name)
    r = vc5ctl("config", "check", path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{path}: OK: {summary}\n"


def test_check_reports_warnings_on_stderr_but_passes():
    r = vc5ctl("config", "check", os.path.join(FIXTURES, "config.sample.yaml"))
    assert re.search(r"config\.sample\.yaml:30:1: vlans: warning: no vlans: are configured", r.stderr)


def test_check_refuses_with_one_line_per_problem():
    path = os.path.join(FIXTURES, "services04.yaml")
    r = vc5ctl("config", "check", path)
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}:14:13: services[0].policy.http: the servers' port 8080 differs")
    assert lines[1].startswith(f"{path}:51:7: services[3].policy.http: service 192.168.123.3:80:tcp is "
                               "already defined")


def test_check_refuses_prose_virtual():
    path = os.path.join(FIXTURES, "services02.yaml")
    r = vc5ctl("config", "check", path)
    assert r.returncode == 1
    assert r.stderr == (f"{path}:42:14: services[3].virtual: 'HTTP/HTTPS checks for services not running on "
                        "default ports' is not an IPv4 or IPv6 address\n")


def test_check_reads_stdin_and_defaults_to_etc():
    r = vc5ctl("config", "check", "-", stdin="bgp: {as_number: 65000, peers: [10.1.10.200]}\n")
    assert (r.returncode, r.stdout) == (0, "<stdin>: OK: 0 services on 0 VIPs, 0 backends, 1 BGP peer\n")
    r = vc5ctl("config", "check")
    assert "/etc/vc5/vc5.yaml" in r.stdout + r.stderr


def test_json_prints_config_pl_output():
    r = vc5ctl("config", "json", os.path.join(FIXTURES, "bgp02.yaml"))
    assert r.returncode == 0, r.stderr
    with open(os.path.join(FIXTURES, "bgp02.json")) as f:
        assert json.loads(r.stdout) == json.load(f)
    assert r.stdout.startswith('{\n   "bgp": {')   # pretty (config.pl's 3 spaces), sorted keys


def test_json_masked_and_json_of_an_invalid_file():
    r = vc5ctl("config", "json", "--masked", "-",
               stdin="logging: {slack: 'https://hooks.slack.com/services/T/B/SECRET'}\n")
    assert r.returncode == 0 and json.loads(r.stdout)["logging"]["slack"] == "************"
    r = vc5ctl("config", "json", os.path.join(FIXTURES, "services02.yaml"))
    assert r.returncode == 1 and r.stdout == "" and "services[3].virtual" in r.stderr


def test_usage_errors():
    assert vc5ctl().returncode == 2
    assert vc5ctl("config").returncode == 2
    assert vc5ctl("nonsense").returncode == 2


def test_shipped_sample_passes_check():
    # Fully commented (a quiet install, tests/unit/test_config_limits_quiet.py): nothing to do.
    r = vc5ctl("config", "check", SAMPLE)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert r.stdout.endswith(": OK: 0 services on 0 VIPs, 0 backends, 0 BGP peers\n")


def test_shipped_sample_with_every_option_uncommented_passes_check():
    with open(SAMPLE) as f:
        text = f.read()
    # "#key: value" and "#  - item" lines are options; "# Prose" lines are not
    text = re.sub(r"(?m)^(\s*)#(?=\s*([a-z0-9_\"-]+:|- ))", r"\1", text)
    assert "groups:" in text and "\n  groups:" in text and "\nlogging:" in text
    r = vc5ctl("config", "check", "-", stdin=text)
    assert r.returncode == 0, r.stderr
    assert "3 BGP peers" in r.stdout


def test_subcommands_are_discovered_and_a_broken_one_is_isolated(monkeypatch, capsys):
    assert "vc5.cli.config_cmd" in cli.subcommand_modules()
    monkeypatch.setattr(cli, "subcommand_modules", lambda: ["vc5.cli.config_cmd", "vc5.cli.missing_cmd"])
    parser = cli.build_parser()
    assert "unavailable subcommands: missing" in parser.format_help()
    assert cli.main(["missing"]) == 1
    assert "missing is unavailable: ModuleNotFoundError" in capsys.readouterr().err
    assert cli.main(["config", "check", os.path.join(FIXTURES, "bgp01.yaml")]) == 0
