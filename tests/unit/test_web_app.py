"""webd's HTTP surface in-process (aiohttp test server on loopback): every path, gzip negotiation,
/status.json.gz, /config.json with secrets masked (spec §4 item 44), static files and webroot."""

import asyncio
import gzip
import json

from aiohttp.test_utils import TestClient, TestServer

from vc5.client.snapshot import take
from vc5.config import load_text
from vc5.webd import demo
from vc5.webd.app import make_app
from vc5.webd.logring import LogRing

CONFIG = """
logging:
  slack: https://hooks.slack.com/services/T000/B000/SECRETSECRET
  teams: https://example.webhook.office.com/webhookb2/SECRET
  elasticsearch:
    index: vc5
    username: elastic
    password: hunter2
vlans:
  100: 10.1.100.0/24
services:
  - name: foo
    description: FooCorp website
    virtual: [192.168.101.1]
    servers: [10.1.100.120, 10.1.100.121, 10.1.100.122*]
    policy:
      http:
"""


class Reader:
    def __init__(self, config=None):
        self.current, _ = take(demo.health(), demo.bgp(), demo.xdp(), config=config,
                               config_error="" if config else "/etc/vc5/vc5.yaml: no such file")
        self.log = LogRing()
        self.log.add("Backend 10.1.100.121:80 for service 192.168.101.1:80:tcp went down")


def fetch(reader, *requests, webroot=None):
    """[(status, headers, body bytes)] for each (path, headers) request."""
    async def go():
        client = TestClient(TestServer(make_app(reader, webroot=webroot)), auto_decompress=False)
        await client.start_server()
        try:
            out = []
            for path, headers in requests:
                r = await client.get(path, headers={"Accept-Encoding": "identity", **headers})
                out.append((r.status, r.headers, await r.read()))
            return out
        finally:
            await client.close()
    return asyncio.run(go())


def test_every_endpoint_answers():
    paths = ["/status.json", "/cue.json", "/lb.json", "/build.json", "/log/0", "/metrics", "/", "/vc5.js",
             "/vc5.css"]
    results = fetch(Reader(), *[(p, {}) for p in paths])
    for path, (status, headers, body) in zip(paths, results):
        assert status == 200, path
    status_doc = json.loads(results[0][2])
    assert status_doc["summary"]["vc5"] is True
    assert json.loads(results[4][2])[0]["text"].endswith("went down")
    assert results[5][1]["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"<script src=\"vc5.js\"></script>" in results[6][2]
    assert "javascript" in results[7][1]["Content-Type"]


def test_gzip_when_accepted_and_status_json_gz_always():
    (s1, h1, b1), (s2, h2, b2), (s3, h3, b3) = fetch(
        Reader(), ("/status.json", {"Accept-Encoding": "gzip, deflate"}), ("/status.json.gz", {}),
        ("/status.json", {"Accept-Encoding": "identity"}))
    assert h1["Content-Encoding"] == "gzip" and json.loads(gzip.decompress(b1))["summary"]["dsr"] is True
    assert h2["Content-Encoding"] == "gzip" and h2["Content-Type"].startswith("application/json")
    assert json.loads(gzip.decompress(b2)) == json.loads(b3)
    assert "Content-Encoding" not in h3


def test_config_json_masks_secrets():
    cfg = load_text(CONFIG, source="test.yaml")
    [(status, _, body)] = fetch(Reader(cfg), ("/config.json", {}))
    assert status == 200
    text = body.decode()
    for secret in ("SECRETSECRET", "webhookb2", "hunter2", "elastic\""):
        assert secret not in text
    doc = json.loads(text)
    assert doc["logging"]["slack"] == "************"
    assert doc["logging"]["elasticsearch"]["password"] == "************"
    assert "192.168.101.1:80:tcp" in doc["services"]


def test_config_json_without_config_says_why():
    [(status, _, body)] = fetch(Reader(), ("/config.json", {}))
    assert status == 503 and "no such file" in json.loads(body)["detail"]


def test_prefixes_log_and_unknown_paths():
    (s1, _, b1), (s2, _, _), (s3, _, b3), (s4, _, _) = fetch(
        Reader(), ("/prefixes.json", {}), ("/log/abc", {}), ("/nope.html", {}), ("/../etc/passwd", {}))
    assert s1 == 503 and "prefix counters" in json.loads(b1)["error"]     # no loader on the bus
    assert s2 == 400 and s3 == 404 and s4 == 404


def test_webroot_overrides_embedded_files(tmp_path):
    (tmp_path / "index.html").write_text("<p>site-local console</p>")
    (r1, r2) = fetch(Reader(), ("/", {}), ("/vc5.css", {}), webroot=str(tmp_path))
    assert r1[2] == b"<p>site-local console</p>"
    assert r2[0] == 200 and b":root" in r2[2]        # not in webroot: the embedded one


def test_webd_runs_in_the_common_skeleton(monkeypatch, capsys):
    """__main__ parses, vc5.common.lifecycle.main sets up vc5 logging (journald, MESSAGE_IDs) and runs
    webd's daemon.main; a malformed --listen exits 2 naming the accepted forms."""
    import pytest

    from vc5.common import lifecycle
    from vc5.webd import __main__ as webd_main
    from vc5.webd import daemon
    seen = {}

    def fake_main(service, args, run, *, debug=False):
        seen.update(service=service, listen=args.listen, run=run, debug=debug)
        return 0

    monkeypatch.setattr(lifecycle, "main", fake_main)
    assert webd_main.main(["--listen", "127.0.0.1:8080", "--debug"]) == 0
    assert seen == {"service": "vc5-webd", "listen": "127.0.0.1:8080", "run": daemon.main, "debug": True}
    with pytest.raises(SystemExit) as exit_:
        webd_main.main(["--listen", "8080"])
    assert exit_.value.code == 2
    assert "vc5-webd: --listen '8080': expected ADDR:PORT, :PORT or [IPv6]:PORT" in capsys.readouterr().err
