"""Make the lab router hash flows the way a real router does: from the packet, not the sender's socket.

A TCP socket gives its packets a random flow hash (sk_txhash, changed again
after a retransmission timeout), and on veth that hash travels with the
packet into the next namespace. The router's ECMP (fib_multipath_hash_policy
1 uses a layer-4 hash already on the packet) and the balancers' RPS would
then choose by socket, not by 4-tuple: a new connection re-using a 4-tuple
could reach another balancer, or another CPU of the same one, and a stream
could move after a timeout. Packets that arrive from a wire carry no such
hash. A three-instruction tc program on the router's client-facing port
drops the hash (bpf_set_hash_invalid), so the router computes it from the
headers, as it would for packets from a NIC, and the balancers receive that.

Loaded with the bpf(2) syscall directly (no compiler needed), pinned for the
`tc` command to pick up, then unpinned: the filter holds the program.
"""

import ctypes
import os
import struct

SYS_BPF = 321                         # x86_64
BPF_PROG_LOAD, BPF_OBJ_PIN = 5, 6
BPF_PROG_TYPE_SCHED_CLS = 3
BPF_FUNC_SET_HASH_INVALID = 41         # include/uapi/linux/bpf.h, __BPF_FUNC_MAPPER

# struct bpf_insn {u8 code; u8 dst:4, src:4; s16 off; s32 imm}
PROGRAM = b"".join(struct.pack("<BBhi", code, regs, 0, imm) for code, regs, imm in (
    (0x85, 0, BPF_FUNC_SET_HASH_INVALID),   # call bpf_set_hash_invalid(skb = r1)
    (0xb7, 0, 0),                           # r0 = TC_ACT_OK
    (0x95, 0, 0),                           # exit
))

_libc = ctypes.CDLL(None, use_errno=True)


def _bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, 128)
    fd = _libc.syscall(SYS_BPF, cmd, buf, 128)
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"bpf({cmd}): {os.strerror(e)}")
    return fd


def load_pinned(path, program=PROGRAM):
    """Load `program` (raw instructions of a SCHED_CLS program) and pin it at `path` (on bpffs)."""
    insns = ctypes.create_string_buffer(program, len(program))
    lic = ctypes.create_string_buffer(b"GPL")
    attr = struct.pack("<IIQQ", BPF_PROG_TYPE_SCHED_CLS, len(program) // 8,
                       ctypes.addressof(insns), ctypes.addressof(lic))
    fd = _bpf(BPF_PROG_LOAD, attr)
    try:
        name = ctypes.create_string_buffer(path.encode())
        _bpf(BPF_OBJ_PIN, struct.pack("<QI", ctypes.addressof(name), fd))
    finally:
        os.close(fd)


def clear_hash_on_ingress(ns, dev, pin):
    """Attach the program to `dev`'s ingress in namespace `ns` (a tests.lib.netns.Netns)."""
    load_pinned(pin)
    try:
        ns.run(f"tc qdisc add dev {dev} clsact && "
               f"tc filter add dev {dev} ingress bpf direct-action object-pinned {pin}")
    finally:
        os.unlink(pin)
