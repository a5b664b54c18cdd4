"""vc5.common.limits against a fake cgroup directory (no root, no systemd)."""

from __future__ import annotations

import asyncio
import errno
import logging

import pytest

from vc5.common import limits

M = 1 << 20


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def cgroup(tmp_path, current, mmax="max", high="max", events=None, v1=False):
    d = tmp_path / "system.slice" / "vc5-webd.service"
    d.mkdir(parents=True, exist_ok=True)
    if v1:
        (d / "memory.usage_in_bytes").write_text(f"{current}\n")
        (d / "memory.limit_in_bytes").write_text(f"{mmax}\n")
        return d
    (d / "memory.current").write_text(f"{current}\n")
    (d / "memory.max").write_text(f"{mmax}\n")
    (d / "memory.high").write_text(f"{high}\n")
    ev = {"low": 0, "high": 0, "max": 0, "oom": 0, "oom_kill": 0, **(events or {})}
    (d / "memory.events").write_text("".join(f"{k} {v}\n" for k, v in ev.items()))
    return d


def fds(tmp_path, n):
    d = tmp_path / "fd"
    d.mkdir(exist_ok=True)
    for f in d.iterdir():
        f.unlink()
    for i in range(n):
        (d / str(i)).write_text("")
    return str(d)


def watch(tmp_path, d, nofile=1024, nfds=10, clock=None):
    return limits.Watch("vc5-webd", directories=[str(d)], fd_dir=fds(tmp_path, nfds), nofile=lambda: nofile,
                        clock=clock or Clock())


def test_cgroup_dirs_reads_v2_and_v1_lines(tmp_path):
    p = tmp_path / "cgroup"
    p.write_text("4:memory:/process_api/x\n1:cpu:/\n0::/system.slice/vc5-webd.service\n")
    dirs = limits.cgroup_dirs(str(p), "/sys/fs/cgroup")
    assert dirs == ["/sys/fs/cgroup/memory/process_api/x", "/sys/fs/cgroup/system.slice/vc5-webd.service",
                    "/sys/fs/cgroup/unified/system.slice/vc5-webd.service"]
    assert limits.cgroup_dirs(str(tmp_path / "missing")) == []


def test_read_memory_v2_v1_and_none(tmp_path):
    d = cgroup(tmp_path, 100 * M, 384 * M, 256 * M, {"high": 3})
    m = limits.read_memory([str(tmp_path / "nothing"), str(d)])
    assert (m.current, m.max, m.high, m.events["high"]) == (100 * M, 384 * M, 256 * M, 3)
    assert m.ratio == pytest.approx(100 / 384)
    d1 = cgroup(tmp_path / "v1", 10 * M, 9223372036854771712, v1=True)
    m1 = limits.read_memory([str(d1)])
    assert (m1.current, m1.max, m1.ratio) == (10 * M, None, None)
    assert limits.read_memory([str(tmp_path / "nothing")]) is None


def test_quiet_below_the_threshold(tmp_path, caplog):
    w = watch(tmp_path, cgroup(tmp_path, 100 * M, 384 * M, 256 * M))
    with caplog.at_level(logging.INFO):
        assert w.check() == []
    assert not caplog.records


def test_warns_near_memory_max_with_message_id_and_rate_limit(tmp_path, caplog):
    clock = Clock()
    d = cgroup(tmp_path, 330 * M, 384 * M, 256 * M)
    w = watch(tmp_path, d, clock=clock)
    with caplog.at_level(logging.INFO, logger="vc5.limits"):
        [text] = w.check()
        assert text.startswith("memory at 86% of MemoryMax=384M (330M in use)")
        assert "systemctl edit vc5-webd.service" in text and "MemoryMax=" in text
        rec = caplog.records[-1]
        assert rec.levelno == logging.WARNING and rec.MESSAGE_ID == limits.MEMORY_LIMIT
        assert rec.VC5_MEMORY_MAX == str(384 * M)
        clock.t += 60
        assert w.check() == []                      # rate-limited
        clock.t += limits.REPEAT_S
        assert len(w.check()) == 1                  # still there: said again
        cgroup(tmp_path, 100 * M, 384 * M, 256 * M)
        assert w.check() == []
        assert caplog.records[-1].getMessage().startswith("memory back to 100M")
        assert caplog.records[-1].levelno == logging.INFO


def test_memory_high_events_are_reported_even_below_the_ratio(tmp_path):
    clock = Clock()
    d = cgroup(tmp_path, 250 * M, 384 * M, 256 * M, {"high": 2})
    w = watch(tmp_path, d, clock=clock)
    assert w.check() == []                          # events counted from the first reading
    cgroup(tmp_path, 250 * M, 384 * M, 256 * M, {"high": 9, "max": 1})
    [text] = w.check()
    assert "above MemoryHigh=256M 7 times since the last warning" in text
    assert "the kernel is reclaiming and throttling vc5-webd" in text
    assert "MemoryMax= reached 1 times" in text


def test_no_memory_files_no_memory_warning(tmp_path):
    w = limits.Watch("vc5-bgpd", directories=[str(tmp_path / "none")], fd_dir=fds(tmp_path, 3),
                     nofile=lambda: 1024, clock=Clock())
    assert w.check() == []


def test_fds_near_limitnofile(tmp_path, caplog):
    d = cgroup(tmp_path, 1 * M)
    w = watch(tmp_path, d, nofile=100, nfds=85)
    with caplog.at_level(logging.WARNING, logger="vc5.limits"):
        [text] = w.check()
    assert text.startswith("85 file descriptors open, 85% of LimitNOFILE=100")
    assert caplog.records[-1].MESSAGE_ID == limits.FD_LIMIT


def test_emfile_logged_once_per_period_naming_limitnofile(tmp_path, caplog):
    clock = Clock()
    w = watch(tmp_path, cgroup(tmp_path, 1 * M), nofile=64, clock=clock)
    err = OSError(errno.EMFILE, "Too many open files")
    with caplog.at_level(logging.WARNING, logger="vc5.limits"):
        assert w.note_fd_error(err, "accepting a connection")
        assert w.note_fd_error(err, "accepting a connection")
        assert len(caplog.records) == 1
        msg = caplog.records[0].getMessage()
        assert "EMFILE: LimitNOFILE=64 reached" in msg and "keeps running" in msg
        assert caplog.records[0].MESSAGE_ID == limits.FD_LIMIT
        clock.t += limits.REPEAT_S
        assert w.note_fd_error(OSError(errno.ENFILE, "x"), "connecting")
        assert "fs.file-max" in caplog.records[-1].getMessage()
    assert not w.note_fd_error(OSError(errno.ECONNREFUSED, "x"), "connecting")
    assert not w.note_fd_error(ValueError("x"), "connecting")


def test_loop_exception_handler_routes_emfile(caplog):
    async def main():
        loop = asyncio.get_running_loop()
        limits.install("vc5-bgpd", loop)
        with caplog.at_level(logging.WARNING):
            loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                         "exception": OSError(errno.EMFILE, "Too many open files")})
            loop.call_exception_handler({"message": "other", "exception": RuntimeError("boom")})
    asyncio.run(main())
    msgs = [r.getMessage() for r in caplog.records]
    assert any("out of file descriptors while socket.accept() out of system resource" in m for m in msgs)
    assert any(m == "other" for m in msgs)            # everything else: asyncio's default handler


def test_flow_table_formula_matches_the_measurement():
    # bench/flow_tables.py, kernel 6.18: an LRU_HASH of 1,000,000 entries, 12-byte key, 16-byte
    # value = 92.3 MiB (fdinfo memlock); the three side tables of 250,000 add ~81 MiB.
    assert limits.flow_side(1_000_000) == 250_000 and limits.flow_side(1000) == 1024
    b = limits.flow_table_bytes(1_000_000, 2)
    assert 165 * M <= b <= 180 * M
    assert limits.flow_table_bytes(1_000_000, 64) == b          # shared tables: no per-CPU part


def test_loader_refuses_a_new_table_over_memory_max():
    mem = limits.Memory("/x", 30 * M, max=256 * M, high=224 * M)
    v = limits.check_loader_memory(1_000_000, 64, reuse=False, memory=mem, mem_available=64 << 30)
    assert not v.ok
    assert "flows 1,000,000 needs flow tables of about" in v.message
    assert "MemoryMax=256M" in v.message and "systemctl edit vc5-xdp-loader.service" in v.message
    # the same, pins already there: a warning only
    v = limits.check_loader_memory(1_000_000, 64, reuse=True, memory=mem, mem_available=64 << 30)
    assert v.ok and "re-used" in v.message


def test_loader_refuses_over_memavailable_and_passes_when_it_fits():
    v = limits.check_loader_memory(1_000_000, 2, reuse=False, memory=None, mem_available=100 * M)
    assert not v.ok and "MemAvailable (100M)" in v.message
    mem = limits.Memory("/x", 30 * M, max=2560 * M, high=2304 * M)     # the unit's values
    assert limits.check_loader_memory(1_000_000, 2, reuse=False, memory=mem, mem_available=8 << 30) == \
        limits.Verdict(True)
    # the unit's values cover vc5's default flows on up to 128 possible CPUs (docs/operations/limits.md)
    for ncpus in (64, 128):
        v = limits.check_loader_memory(1_000_000, ncpus, reuse=False, memory=mem, mem_available=64 << 30)
        assert v == limits.Verdict(True), ncpus


def test_loader_warns_above_memory_high():
    mem = limits.Memory("/x", 30 * M, max=4 << 30, high=256 * M)
    v = limits.check_loader_memory(1_000_000, 2, reuse=False, memory=mem, mem_available=8 << 30)
    assert v.ok and "MemoryHigh=256M" in v.message


def test_mem_available(tmp_path):
    p = tmp_path / "meminfo"
    p.write_text("MemTotal: 100 kB\nMemAvailable:    2048 kB\n")
    assert limits.mem_available(str(p)) == 2 << 20
    assert limits.mem_available(str(tmp_path / "none")) is None
