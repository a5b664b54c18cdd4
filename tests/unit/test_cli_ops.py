"""vc5ctl's operator commands without a bus: table formatting from fixture snapshots, parser wiring,
and the generated bash completion (syntax and behaviour in a real bash)."""

import subprocess

from vc5.cli import __main__ as cli
from vc5.cli import ops_cmd
from vc5.cli.completion import bash_script
from vc5.client import status as render_status
from vc5.client.snapshot import take
from vc5.webd import demo

NOW = demo.T0 / 1e6 + 315


def doc(**kw):
    _, first = take(demo.health(**kw), demo.bgp(), demo.xdp(0), now=NOW - 2, monotonic=1.0)
    snap, _ = take(demo.health(**kw), demo.bgp(), demo.xdp(1), previous=first, now=NOW, monotonic=3.0)
    return render_status.status(snap)


def test_status_table_shows_summary_vips_bgp_and_backends():
    out = ops_cmd.format_status(doc(flip_down="10.1.100.121", drained="10.1.100.120"))
    assert "latency 429 ns" in out
    assert any(line.split()[:3] == ["10.1.100.100", "ESTABLISHED", "5m15s"] for line in out.splitlines())
    assert "rib: 192.168.101.1 192.168.101.2" in out
    lines = out.splitlines()
    row = next(line for line in lines if line.split()[:2] == ["192.168.101.1:80:tcp", "10.1.100.121:80"])
    assert " down " in row and "500 Internal Server Error" in row
    assert any("10.1.100.120:80" in line and " drained " in line for line in lines)
    assert any("10.1.100.122:80" in line and " disabled " in line for line in lines)


def test_absent_daemons_are_named():
    snap, _ = take(demo.health(), None, None, now=NOW)
    out = ops_cmd.format_status(render_status.status(snap))
    assert "warning: vc5-bgpd is not running (org.vc5.Bgp1 is not on the bus)" in out
    assert "warning: vc5-xdp-loader is not running" in out


def test_services_and_bgp_tables():
    d = doc()
    s = ops_cmd.format_services(d)
    assert s.splitlines()[0].split() == ["SERVICE", "NAME", "STATE", "FOR", "AVAILABLE", "NEED", "TRAFFIC",
                                         "ACTIVE", "DESCRIPTION"]
    row = next(line.split() for line in s.splitlines() if line.startswith("192.168.101.2:53:udp"))
    assert row[:6] == ["192.168.101.2:53:udp", "bind", "up", "5m15s", "3/3", "2"]
    assert ops_cmd.format_backends(d, "192.168.101.2:53:udp").count("192.168.101.2:53:udp") == 3


def test_units():
    assert ops_cmd.dhms(315) == "5m15s" and ops_cmd.dhms(90000) == "1d1h" and ops_cmd.dhms(7) == "7s"
    assert ops_cmd.si(117_000_000, "bit/s") == "117 Mbit/s" and ops_cmd.si(12, "pkt/s") == "12 pkt/s"


def test_subcommands_registered():
    parser = cli.build_parser()
    for argv in (["status", "--json"], ["services"], ["backends", "1.2.3.4:80:tcp"], ["bgp"],
                 ["drain", "10.0.0.1", "--service", "1.2.3.4:80:tcp"], ["undrain", "10.0.0.1:80"],
                 ["reload", "--bgp"], ["completion", "bash"]):
        args = parser.parse_args(argv)
        assert callable(args.func), argv


def test_completion_script_is_valid_bash_and_completes(tmp_path):
    script = tmp_path / "vc5ctl.bash"
    script.write_text(bash_script())
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0

    def complete(*words):
        line = " ".join(f"'{w}'" for w in words)
        prog = (f"source {script}; COMP_WORDS=(vc5ctl {line}); COMP_CWORD={len(words)}; _vc5ctl; "
                'printf "%s\\n" "${COMPREPLY[@]}"')
        r = subprocess.run(["bash", "-c", prog], capture_output=True, text=True, check=True)
        return r.stdout.split()

    assert {"status", "drain", "undrain", "reload", "bgp", "backends", "services", "completion"} <= \
        set(complete(""))
    assert complete("st") == ["status"]
    assert complete("status", "--j") == ["--json"]
    assert set(complete("reload", "--")) == {"--help", "--bgp"}
    assert "bash" in complete("completion", "")
    assert complete("config", "j") == ["json"]
