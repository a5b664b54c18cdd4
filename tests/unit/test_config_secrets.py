"""Secrets (issue #12): systemd credentials for secret values, and masking them everywhere.

docs/configuration.md, "Secrets and credentials".
"""

import json
import os
import subprocess
import sys

import pytest

from vc5.config import SECRET, ConfigError, load, load_text, masked, to_vc5_json
from vc5.config.secrets import mask_url

BGP = """\
address: 10.1.10.100
bgp:
  as_number: 65000
  peers: [10.1.10.201]
  groups:
    - name: r1
      md5: {credential: bgp-md5-router1}
      peers: [10.1.10.200]
"""

LOGGING = """\
logging:
  slack: {credential: slack-hook}
  teams: https://example.webhook.office.com/webhookb2/YYYY
  elasticsearch:
    index: vc5
    addresses: ["https://elastic:pa55@es1.example:9200/", {credential: es-url}, "http://es3/?api_key=K3Y"]
    username: elastic
    password: {credential: es-password}
"""


@pytest.fixture
def creds(tmp_path, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    d = tmp_path / "credentials"
    d.mkdir()
    (d / "bgp-md5-router1").write_text("s3cr3t-md5\n")          # echo adds a newline: dropped
    (d / "slack-hook").write_text("https://hooks.slack.com/services/T/B/TOKEN")
    (d / "es-password").write_text("hunter2")
    (d / "es-url").write_text("https://admin:0pen5esame@es2.example/")
    return d


def problems(text, **kw):
    with pytest.raises(ConfigError) as e:
        load_text(text, source="t.yaml", **kw)
    return [str(p) for p in e.value.problems]


def test_credentials_are_read_from_the_directory(creds):
    cfg = load_text(BGP + LOGGING, credentials=str(creds))
    by_addr = {str(p.address): p for p in cfg.bgp.peers}
    assert by_addr["10.1.10.200"].md5 == "s3cr3t-md5" and by_addr["10.1.10.201"].md5 is None
    assert cfg.logging.slack == "https://hooks.slack.com/services/T/B/TOKEN"
    assert cfg.logging.elasticsearch["password"] == "hunter2"
    assert cfg.logging.elasticsearch["addresses"][1] == "https://admin:0pen5esame@es2.example/"
    assert cfg.warnings == ()


def test_credentials_directory_comes_from_the_environment(creds, monkeypatch, tmp_path):
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    path = tmp_path / "vc5.yaml"
    path.write_text(BGP)
    assert {p.md5 for p in load(str(path)).bgp.peers} == {"s3cr3t-md5", None}


def test_a_missing_credential_is_a_located_error(creds):
    (creds / "bgp-md5-router1").unlink()
    assert problems(BGP, credentials=str(creds)) == [
        f"t.yaml:7:25: bgp.groups[0].md5.credential: credential 'bgp-md5-router1' is missing from {creds}: "
        "add LoadCredential=bgp-md5-router1:/etc/vc5/credentials/bgp-md5-router1 to the unit (a drop-in), "
        "then restart it"]


def test_without_credentials_the_secret_is_unset_with_a_warning_or_refused(monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    cfg = load_text(BGP, source="t.yaml")     # webd, healthd: they need no BGP password
    assert {p.md5 for p in cfg.bgp.peers} == {None}
    [w] = cfg.warnings
    assert (w.line, w.column, w.path) == (7, 25, "bgp.groups[0].md5.credential")
    assert "credential 'bgp-md5-router1' is not loaded in this process" in w.message
    assert "LoadCredential=bgp-md5-router1:/etc/vc5/credentials/bgp-md5-router1" in w.message
    found = problems(BGP, require_credentials=True)            # bgpd: it does
    assert found == ["t.yaml:7:25: bgp.groups[0].md5.credential: credential 'bgp-md5-router1' is not "
                     "available: $CREDENTIALS_DIRECTORY is not set; the unit needs "
                     "LoadCredential=bgp-md5-router1:/etc/vc5/credentials/bgp-md5-router1 "
                     "(vc5ctl: --credentials DIR)"]


@pytest.mark.parametrize("value,why", [
    ("{credential: ../etc/shadow}", "'../etc/shadow' is not a credential name"),
    ("{credential: }", "md5.credential: is required"),
    ("{credential: [a]}", "must be a credential name, not a list"),
    ("{file: x}", "unknown key 'file'"),
    ("{credential: x, other: y}", "unknown key 'other'"),
])
def test_bad_credential_references(creds, value, why):
    found = problems(f"bgp: {{as_number: 65000, md5: {value}, peers: [10.1.10.200]}}\n",
                     credentials=str(creds))
    assert any(why in f and f.startswith("t.yaml:1:") for f in found), found


@pytest.mark.parametrize("content,why", [
    (b"", "is empty"), (b"\n", "is empty"), (b"\xff\xfe", "is not UTF-8 text"),
    (b"x" * 70000, "is larger than 65536 bytes"), (b"x" * 81, "must be 1..80 bytes"),
])
def test_bad_credential_contents_are_refused_without_showing_them(creds, content, why):
    (creds / "bgp-md5-router1").write_bytes(content)
    found = problems(BGP, credentials=str(creds))
    assert len(found) == 1 and why in found[0] and found[0].startswith("t.yaml:7:"), found
    assert "xxxx" not in found[0]


def test_a_credential_that_is_not_a_url_is_not_shown(creds):
    (creds / "slack-hook").write_text("hooks.slack.com/TOKEN")
    found = problems("logging: {slack: {credential: slack-hook}}\n", credentials=str(creds))
    assert found == ["t.yaml:1:18: logging.slack: the credential is not an http:// or https:// URL"]


def test_masked_masks_credentials_and_secrets_inside_urls(creds):
    cfg = load_text(BGP + LOGGING, credentials=str(creds))
    m = masked(cfg)
    log = m["logging"]
    assert log["slack"] == log["teams"] == SECRET
    assert log["elasticsearch"]["password"] == log["elasticsearch"]["username"] == SECRET
    assert log["elasticsearch"]["addresses"] == [
        f"https://elastic:{SECRET}@es1.example:9200/", f"https://admin:{SECRET}@es2.example/",
        f"http://es3/?{SECRET}"]
    assert m["bgp"]["10.1.10.200"]["md5"] == SECRET and "md5" not in m["bgp"]["10.1.10.201"]
    text = json.dumps(m)
    for secret in ("s3cr3t", "TOKEN", "YYYY", "hunter2", "pa55", "0pen5esame", "K3Y"):
        assert secret not in text, secret
    # the unmasked view (vc5ctl config json, root only) has them
    assert to_vc5_json(cfg)["bgp"]["10.1.10.200"]["md5"] == "s3cr3t-md5"


def test_no_secret_in_the_models_repr(creds):
    cfg = load_text(BGP + LOGGING, credentials=str(creds))
    text = repr(cfg)
    for secret in ("s3cr3t", "TOKEN", "YYYY", "hunter2", "pa55", "0pen5esame"):
        assert secret not in text, secret


@pytest.mark.parametrize("url,shown", [
    ("https://user:pass@host/", f"https://user:{SECRET}@host/"),
    ("https://token@host:9200/x", f"https://{SECRET}@host:9200/x"),
    ("http://[2001:db8::1]:9200/?api_key=k", f"http://[2001:db8::1]:9200/?{SECRET}"),
    ("http://10.1.2.31/", "http://10.1.2.31/"),
    ("http://host:99999/", SECRET),
    ("not a url", SECRET),
])
def test_mask_url(url, shown):
    assert mask_url(url) == shown


def vc5ctl(*args, stdin=None, env=None):
    e = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    e.pop("CREDENTIALS_DIRECTORY", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "vc5.cli", *args], input=stdin, capture_output=True,
                          text=True, env=e, timeout=60)


def test_vc5ctl_config_check_with_and_without_credentials(creds, tmp_path):
    path = tmp_path / "vc5.yaml"
    path.write_text(BGP)
    r = vc5ctl("config", "check", str(path))
    assert r.returncode == 0 and "warning: credential 'bgp-md5-router1' is not loaded" in r.stderr
    r = vc5ctl("config", "check", "--credentials", str(creds), str(path))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = vc5ctl("config", "check", "--credentials", str(tmp_path), str(path))
    assert r.returncode == 1 and "credential 'bgp-md5-router1' is missing" in r.stderr
    # ExecReload= runs in the unit, with $CREDENTIALS_DIRECTORY
    r = vc5ctl("config", "check", str(path), env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert r.returncode == 1 and f"{path}:7:25: " in r.stderr
    r = vc5ctl("config", "json", "--masked", "--credentials", str(creds), str(path))
    assert r.returncode == 0 and "s3cr3t" not in r.stdout and SECRET in r.stdout
