"""vc5-notifyd's command line: defaults from systemd's directories, bad values exit 2 naming the option."""

import pytest

from vc5.notifyd.__main__ import parse_args
from vc5.notifyd.follower import default_matches


def test_defaults_follow_systemd_directories(monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/vc5-notifyd")
    monkeypatch.setenv("RUNTIME_DIRECTORY", "/run/vc5-notifyd")
    args = parse_args([])
    assert args.config == "/etc/vc5/vc5.yaml"
    assert args.state_directory == "/var/lib/vc5-notifyd"
    assert args.metrics_file == "/run/vc5-notifyd/metrics.prom"
    assert args.match == default_matches()
    assert (args.batch, args.max_backlog, args.backoff_initial, args.backoff_max) == (500, 100000, 1.0, 60.0)


def test_vc5s_matches_are_its_daemons_or_its_message_ids():
    identifiers, ids = default_matches()
    assert "SYSLOG_IDENTIFIER=vc5-healthd" in identifiers
    assert not any("vc5-notifyd" in m for m in identifiers), "its own messages are not shipped"
    assert "MESSAGE_ID=6515c61680c5441091c668cf96942a84" in ids     # BACKEND_DOWN


def test_each_match_is_its_own_alternative():
    assert parse_args(["--match", "SYSLOG_IDENTIFIER=a", "--match", "VC5_VIP=1"]).match == \
        [["SYSLOG_IDENTIFIER=a"], ["VC5_VIP=1"]]


@pytest.mark.parametrize("argv,named", [
    (["--match", "lower=x"], "--match"), (["--batch", "0"], "--batch"), (["--timeout", "-1"], "--timeout"),
    (["--backoff-initial", "5", "--backoff-max", "1"], "--backoff-initial"),
    (["--backoff-jitter", "1"], "--backoff-jitter")])
def test_bad_values_exit_2_naming_the_option(argv, named, capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(argv)
    assert e.value.code == 2
    assert named in capsys.readouterr().err
