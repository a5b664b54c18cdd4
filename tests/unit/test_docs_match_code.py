"""The operator documentation names only what the code has.

Walks docs/ (Markdown and the man pages) and README.md and checks, against the
code itself (never a list kept here):
  * every command line of vc5ctl and the vc5-* programs (in code spans and
    blocks, in command position) against their real argparse parsers:
    subcommands, and each option of the subcommand it is given to;
  * every option in a program's man page against that program's parser;
  * every configuration key of a YAML example (```yaml blocks, and blocks that
    start with `# /etc/vc5/vc5.yaml`) through the real compiler (its "unknown
    key" problems, with the path), and every key of a `| key |` table against
    the grammar's key sets (vc5.config);
  * every metric name `vc5_*` / `xvs_*` against what webd's /metrics exports;
  * every `systemctl reload X` against the units in units/ that have
    ExecReload= or propagate a reload (ReloadPropagatedFrom= names them);
  * every `busctl get-property|set-property|call` of an org.vc5 interface
    against the shipped introspection XML (services/vc5/dbus/);
  * every relative link of a Markdown page: the file, and the heading its
    #anchor names.
A failure names FILE:LINE and what is wrong. The readers and checks are in
tests/unit/docs_check.py; the last tests here show each check failing on a
synthetic snippet.

Extending (docs_check.py): a new program -> one line in COMMANDS; a new
subcommand, option, config key, metric family or reloadable unit -> nothing
(read from the code). A name that is deliberately not ours (e.g. the Go
vc5's) -> FOREIGN_METRICS, with the reason. Run after a merge (no root, ~1 s):
  env PATH=/usr/sbin:/usr/bin:/sbin:/bin PYTHONPATH=services:. \
      /usr/bin/python3 -m pytest -q tests/unit/test_docs_match_code.py
"""

from __future__ import annotations

import os

import pytest

from tests.unit.docs_check import (
    COMMANDS, REPO, busctl_problems, command_problems, config_key_names,
    config_problems, doc_files, key_table_problems, link_problems, metric_names, metric_problems,
    options, parser_of, read, reload_problems, reloadable_units, shell_commands, snippets, subcommands,
    yaml_blocks)


# ---------------------------------------------------------------- the docs

def _where(path: str, line: int) -> str:
    return f"{os.path.relpath(path, REPO)}:{line}"


def _man_program(path: str):
    name = os.path.basename(path).rsplit(".", 1)[0]
    return name if not path.endswith(".md") and name in COMMANDS else None


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: os.path.relpath(p, REPO))
def test_commands_and_options_exist(path):
    program = _man_program(path)
    problems = [f"{_where(path, line)}: {p}" for line, text, _ in snippets(path)
                for p in command_problems(text, program)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: os.path.relpath(p, REPO))
def test_metrics_exist(path):
    problems = [f"{_where(path, line)}: {p}" for line, text, _ in snippets(path)
                for p in metric_problems(text)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: os.path.relpath(p, REPO))
def test_reloads_are_possible(path):
    problems = [f"{_where(path, line)}: {p}" for line, text, _ in snippets(path)
                for p in reload_problems(text)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: os.path.relpath(p, REPO))
def test_dbus_members_exist(path):
    problems = [f"{_where(path, line)}: {p}" for line, text, _ in snippets(path)
                for p in busctl_problems(text)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: os.path.relpath(p, REPO))
def test_config_keys_exist(path):
    problems = [f"{_where(path, start + line - 1)}: {p}" for start, block in yaml_blocks(path)
                for line, p in config_problems(block)]
    if path.endswith(".md"):
        problems += [f"{_where(path, line)}: {p}" for line, p in key_table_problems(read(path))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", [p for p in doc_files() if p.endswith(".md")],
                         ids=lambda p: os.path.relpath(p, REPO))
def test_links_resolve(path):
    problems = [f"{_where(path, line)}: {p}" for line, p in link_problems(path)]
    assert not problems, "\n".join(problems)


def test_every_checked_source_is_found():
    """The walk sees the pages and the code's vocabularies (an empty one would pass everything)."""
    assert len(doc_files()) > 10
    assert {"status", "drain", "config", "maintenance"} <= set(subcommands(parser_of("vc5ctl")))
    assert {"vc5_vip_status", "xvs_global_packets", "vc5_daemon_up"} <= metric_names()
    assert {"flows_per_cpu", "webserver", "tunnel-type", "graceful_shutdown"} <= config_key_names()
    assert {"vc5-healthd", "vc5-bgpd", "vc5.target", "vc5-decap@"} <= reloadable_units()
    for program in COMMANDS:
        assert "--help" in options(parser_of(program)), program
    commands = [w[0] for p in doc_files() for _, text, _ in snippets(p) for w in shell_commands(text)]
    assert commands.count("vc5ctl") > 30 and commands.count("systemctl") > 20, "the walk lost the commands"
    assert sum(len(yaml_blocks(p)) for p in doc_files()) > 10, "the walk lost the YAML examples"


# ---------------------------------------------------------------- the checks catch what they must

def test_a_bogus_subcommand_or_option_is_caught():
    assert command_problems("vc5ctl status --json --quick") == []
    assert command_problems("sudo vc5ctl maintenance on --wait --timeout 60 && vc5ctl bgp") == []
    assert command_problems('eval "$(vc5ctl completion bash)"') == []
    assert command_problems("vc5ctl drain BACKEND [--service VIP:PORT:PROTO]") == []
    assert command_problems("vc5ctl config check|json FILE") == []
    assert command_problems("vc5ctl maintenance on|off [--wait] [--timeout SECONDS]") == []
    assert command_problems("vc5ctl config check|jsn FILE") != []
    found = command_problems("vc5ctl maintenance on|status --wait")
    assert found == ["`vc5ctl maintenance status` has no option --wait"], found
    assert command_problems("journalctl -u vc5-healthd -p warning") == []     # not in command position
    assert command_problems("vc5ctl statuz") != []
    assert "no option --jsn" in " ".join(command_problems("vc5ctl status --jsn"))
    assert "no option --wait" in " ".join(command_problems("vc5ctl maintenance status --wait"))
    assert "no option --frobnicate" in " ".join(command_problems("vc5-xdp-loader --frobnicate"))
    assert command_problems("vc5-xdp-loader --detach") == []
    checkout = "PYTHONPATH=services /usr/bin/python3 -m vc5.cli"
    assert command_problems(f"{checkout} config json --masked x.yaml") == []
    assert command_problems(f"{checkout} config jsn x.yaml") != []
    assert command_problems("vc5-decap attach eth0 --types gue --gue-port 6080") == []
    assert command_problems("--pin-dir", page_program="vc5-xdp-loader") == []
    assert command_problems("--pin-dirs", page_program="vc5-xdp-loader") != []
    assert command_problems("--retry-min SECONDS, --retry-maxx SECONDS", page_program="vc5-bgpd") == [
        "vc5-bgpd has no option --retry-maxx"]
    assert command_problems("status [--json] [--quick]", page_program="vc5ctl") == []
    assert command_problems("status [--json] [--quik]", page_program="vc5ctl") != []


def test_a_bogus_metric_is_caught():
    assert metric_problems("curl -s localhost/metrics | grep vc5_vip_status") == []
    assert metric_problems("rate(xvs_global_packets[1m])") == []
    assert metric_problems("vc5_vip_flaps_total") == ["metric vc5_vip_flaps_total is not exported by "
                                                      "vc5-webd's /metrics"]


def test_an_impossible_reload_is_caught():
    assert reload_problems("sudo systemctl reload vc5.target") == []
    assert reload_problems("systemctl reload vc5-healthd vc5-decap@eth0") == []
    assert reload_problems("systemctl reload vc5-frobd") != []           # no such unit
    assert reload_problems("systemctl reload vc5-frobd.service") != []
    assert reload_problems("systemctl reload vc5-webd.socket") != []     # a socket does not reload


def test_a_bogus_config_key_is_caught():
    assert config_problems("flows_per_cpu: 100\nservices:\n  - virtual: 192.0.2.1\n    servers: [10.0.0.1]\n"
                           "    policy: {http: {tunnel-type: gue}}\n") == []
    found = config_problems("flows_per_cpu: 100\nflow_per_cpu: 5\n")
    assert found and found[0][0] == 2 and "flow_per_cpu" in found[0][1], found
    found = config_problems("bgp:\n  as_number: 65001\n  peer_asn: 65000\n")
    assert found and "bgp" in found[0][1] and "peer_asn" in found[0][1], found
    table = "| key | type |\n|---|---|\n| `flows_per_cpu` | int |\n| `bgp.learn` | s |\n| `xdp_mod` | s |\n"
    assert key_table_problems(table) == [(5, "configuration key xdp_mod is not in the grammar (vc5.config)")]


def test_a_stale_link_is_caught(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Changing `flows_per_cpu`\n\n```sh\n# not a heading\n```\n"
                    "[a](#changing-flows_per_cpu) [b](page.md#not-a-heading) [c](gone.md) "
                    "[d](https://x.org/y)\n")
    assert link_problems(str(page)) == [(6, "link to page.md#not-a-heading: no heading #not-a-heading in "
                                            f"{os.path.relpath(str(page), REPO)}"),
                                        (6, "link to gone.md: no "
                                            f"{os.path.relpath(str(tmp_path / 'gone.md'), REPO)}")]


def test_a_bogus_dbus_member_is_caught():
    bgp = "busctl get-property org.vc5.Bgp1 /org/vc5/Bgp1 org.vc5.Bgp1"
    assert busctl_problems(f"{bgp} DataPlane Maintenance") == []
    assert busctl_problems("busctl call org.vc5.XdpLoader1 /org/vc5/XdpLoader1 org.vc5.XdpLoader1.Manager "
                           "Shutdown b false") == []
    assert busctl_problems(f"{bgp} Gate") == ["org.vc5.Bgp1 has no member Gate"]
    call = "busctl call org.vc5.Health1 /org/vc5/Health1 org.vc5.Health1.Manager"
    assert busctl_problems(f"{call} Drian ss a b") == ["org.vc5.Health1.Manager has no member Drian"]
