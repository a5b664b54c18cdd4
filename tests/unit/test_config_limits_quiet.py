"""A quiet install (issue #15): the shipped /etc/vc5/vc5.yaml is all comments, so it parses to
"no services, no BGP peers"; the daemons that start at install accept it and idle (healthd
schedules no probe, bgpd opens no session), then act on an edited file at reload. The loader is
not started at install; started by hand on that file it refuses, naming what is missing.

The booted-package version of this is tests/system/test_quiet_install.py.
"""

import asyncio
import os
import re
import shutil

import pytest

from vc5.bgpd import __main__ as bgpd_main
from vc5.bgpd import daemon as bgpd_daemon
from vc5.config import load, load_text
from vc5.healthd.checks.runner import Round
from vc5.healthd.scheduler import Scheduler
from vc5.healthd.state import HealthState
from vc5.xdp_loader.startup import StartupError
from vc5.xdp_loader.startup import load_config as loader_load_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(ROOT, "etc", "vc5", "vc5.yaml")
# Every "#key: value", "#  - item" and "#  \"quoted key\":" line is a setting; prose is
# "# Capitalised ..." (tests/unit/test_config_cli.py uncomments the same way, quoted keys aside).
SETTING = re.compile(r'(?m)^(\s*)#(?=\s*([a-z0-9_-]+:|- |"))')
EDITED = """\
address: 10.199.0.1
vlans: {10: 10.199.0.0/24}
bgp:
  as_number: 65000
  peers: [10.199.0.2]
  passive: true
services:
  - virtual: 192.0.2.10
    servers: [10.199.0.11]
    policy: {http: }
"""


def shipped():
    with open(SAMPLE) as f:
        return f.read()


def test_the_shipped_file_is_all_comments_and_means_nothing_to_do():
    text = shipped()
    assert all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines())
    cfg = load(SAMPLE)
    assert (cfg.services, cfg.vips, cfg.bgp, cfg.interfaces, cfg.vlans) == ((), (), None, (), {})
    assert cfg.warnings == ()


def test_every_setting_uncommented_is_the_documented_example():
    cfg = load_text(SETTING.sub(r"\1", shipped()), source="uncommented")
    assert [s.key for s in cfg.services] == ["203.0.113.1:80:tcp", "203.0.113.1:443:tcp",
                                             "203.0.113.1:8080:tcp", "203.0.113.2:53:tcp",
                                             "203.0.113.2:53:udp"]
    assert len(cfg.bgp.peers) == 3 and cfg.interfaces == ("eth0",)


class FakeRunner:
    def __init__(self):
        self.probed = []

    async def round(self, service, backend):
        self.probed.append(str(backend.address))
        return Round(True, "OK", 0, str(backend.address))


def test_healthd_idles_on_the_shipped_file_and_probes_after_a_reload():
    async def main():
        runner = FakeRunner()
        scheduler = Scheduler(runner, lambda *a: None)
        state, _ = HealthState().applied(load(SAMPLE), 1)
        scheduler.sync(state)
        assert (state.services, state.vips, len(scheduler)) == ({}, {}, 0)
        await asyncio.sleep(0.3)
        assert runner.probed == []
        edited = load_text(EDITED.replace("policy: {http: }", "policy: {http: }\n    interval: 0.1"))
        state, _ = state.applied(edited, 2)
        scheduler.sync(state)
        assert len(scheduler) == 1 and state.generation == 2
        deadline = asyncio.get_running_loop().time() + 5
        while not runner.probed and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        await scheduler.stop()
        return runner.probed

    assert asyncio.run(main())[:1] == ["10.199.0.11"]


def test_bgpd_opens_no_session_on_the_shipped_file_and_adds_the_peer_at_reload(tmp_path):
    path = tmp_path / "vc5.yaml"
    shutil.copy(SAMPLE, path)
    args = bgpd_main.parse_args(["--config", str(path), "--state-dir", str(tmp_path), "--no-bus"])

    async def main():
        d = bgpd_daemon.Daemon(args)
        bgp = d._create_speaker()
        assert bgp is not None and bgp.peers == ()
        d.speaker.start()
        assert d.speaker.sessions == {} and d.speaker.local.asn == 0
        path.write_text(EDITED)
        ok, text = await d.reload()
        assert ok, text
        peers = sorted(str(a) for a in d.speaker.sessions)
        await d.speaker.shutdown("test over")
        d.feed.close()
        return peers, d.generation

    assert asyncio.run(main()) == (["10.199.0.2"], 2)


def test_the_loader_started_by_hand_on_the_shipped_file_refuses_naming_interfaces():
    with pytest.raises(StartupError) as e:
        loader_load_config(SAMPLE, need_interfaces=True)
    assert str(e.value) == (f"{SAMPLE}: no interfaces: list the NICs to attach XDP to "
                            "(interfaces: [eth0, ...])")


def test_the_webd_generator_leaves_the_socket_alone_on_the_shipped_file(tmp_path):
    import importlib.machinery
    import importlib.util
    path = os.path.join(ROOT, "units", "vc5-webd-generator")
    loader = importlib.machinery.SourceFileLoader("vc5_webd_generator_quiet", path)
    gen = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(gen)
    assert gen.read_webserver(SAMPLE) == (False, None)
    assert gen.generate(str(tmp_path), SAMPLE) == 0 and os.listdir(tmp_path) == []   # port 80, as documented
