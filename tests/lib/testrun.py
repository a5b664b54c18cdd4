"""BPF_PROG_TEST_RUN through libbpf (ctypes): run an XDP program on one
frame and get the verdict, the rewritten frame and the kernel-measured time.

    r = test_run(dp.xdp_fd, frame)            # repeat=1
    r.action   -> 3 (XDP_TX); r.verdict -> "XDP_TX"
    r.data     -> the frame as the program left it
    r.duration -> ns per run, as reported by the kernel (mean over `repeat`)

The program runs on the CPU of the calling thread, so per-CPU maps (flows,
counters) are those of that CPU: pin the process (os.sched_setaffinity) to
keep a flow on one table.
"""

from __future__ import annotations

import ctypes as ct
import os
from dataclasses import dataclass

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)
VERDICTS = {XDP_ABORTED: "XDP_ABORTED", XDP_DROP: "XDP_DROP", XDP_PASS: "XDP_PASS",
            XDP_TX: "XDP_TX", XDP_REDIRECT: "XDP_REDIRECT"}


class BpfTestRunOpts(ct.Structure):
    """struct bpf_test_run_opts, libbpf 1.1 (/usr/include/bpf/bpf.h): 80 bytes."""
    _fields_ = [("sz", ct.c_size_t), ("data_in", ct.c_void_p), ("data_out", ct.c_void_p),
                ("data_size_in", ct.c_uint32), ("data_size_out", ct.c_uint32),
                ("ctx_in", ct.c_void_p), ("ctx_out", ct.c_void_p),
                ("ctx_size_in", ct.c_uint32), ("ctx_size_out", ct.c_uint32),
                ("retval", ct.c_uint32), ("repeat", ct.c_int), ("duration", ct.c_uint32),
                ("flags", ct.c_uint32), ("cpu", ct.c_uint32), ("batch_size", ct.c_uint32)]


assert ct.sizeof(BpfTestRunOpts) == 80

_libbpf = ct.CDLL("libbpf.so.1", use_errno=True)
_libbpf.bpf_prog_test_run_opts.argtypes = [ct.c_int, ct.POINTER(BpfTestRunOpts)]
_libbpf.bpf_prog_test_run_opts.restype = ct.c_int


@dataclass(frozen=True)
class TestRunResult:
    action: int
    data: bytes
    duration: int

    __test__ = False   # not a pytest class

    @property
    def verdict(self) -> str:
        return VERDICTS.get(self.action, str(self.action))


class TestRunner:
    """Reusable buffers for many runs of one program (benchmarks)."""

    __test__ = False

    def __init__(self, prog_fd: int, max_frame: int = 2048):
        self.prog_fd = prog_fd
        self._in = ct.create_string_buffer(max_frame)
        self._out = ct.create_string_buffer(max_frame + 256)
        self._opts = BpfTestRunOpts()

    def run(self, frame: bytes, repeat: int = 1) -> TestRunResult:
        n = len(frame)
        if n > len(self._in):
            raise ValueError(f"frame of {n} bytes, buffer {len(self._in)}")
        ct.memmove(self._in, frame, n)
        o = self._opts
        o.sz = ct.sizeof(BpfTestRunOpts)
        o.data_in = ct.addressof(self._in)
        o.data_size_in = n
        o.data_out = ct.addressof(self._out)
        o.data_size_out = len(self._out)
        o.repeat = repeat
        o.retval = 0
        o.duration = 0
        rc = _libbpf.bpf_prog_test_run_opts(self.prog_fd, ct.byref(o))
        if rc != 0:
            err = -rc if rc < 0 else ct.get_errno()
            raise OSError(err, f"BPF_PROG_TEST_RUN on fd {self.prog_fd}: {os.strerror(err)}")
        return TestRunResult(o.retval, self._out.raw[:o.data_size_out], o.duration)


def test_run(prog_fd: int, frame: bytes, repeat: int = 1) -> TestRunResult:
    """Run the program once (or `repeat` times) on frame."""
    return TestRunner(prog_fd, max(len(frame), 64)).run(frame, repeat)


test_run.__test__ = False
