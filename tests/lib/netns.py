"""Network namespaces for tests: create, wire with veths, run commands inside.

Every namespace is named `<prefix><short-id>` so that concurrent test runs on
one machine never collide, and is deleted when its owner exits (context
manager) or by `cleanup_prefix()` after a crash.

Commands run through `nsenter --net=/run/netns/NAME`, never `ip netns exec`:
the latter remounts /sys and hides the host's bpffs, which the XDP loader
needs (environment-facts §7).
"""

import os
import shlex
import subprocess
import uuid

NSENTER = ["nsenter"]


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


class Netns:
    """One network namespace. Use as a context manager, or call delete()."""

    def __init__(self, name):
        self.name = name
        self.path = f"/run/netns/{name}"
        _ip("netns", "add", name)
        self.run("ip link set lo up")

    @classmethod
    def create(cls, prefix="vc5t"):
        return cls(f"{prefix}{uuid.uuid4().hex[:6]}")

    def argv(self, cmd):
        """The argv that runs `cmd` (a string or a list) in this namespace."""
        if isinstance(cmd, str):
            cmd = ["sh", "-c", cmd]
        return [*NSENTER, f"--net={self.path}", "--", *cmd]

    def run(self, cmd, check=True, timeout=60, **kw):
        """Run to completion; returns CompletedProcess with text stdout/stderr."""
        p = subprocess.run(self.argv(cmd), capture_output=True, text=True, timeout=timeout, **kw)
        if check and p.returncode != 0:
            shown = cmd if isinstance(cmd, str) else shlex.join(cmd)
            raise RuntimeError(f"[{self.name}] {shown}: exit {p.returncode}\n{p.stdout}{p.stderr}")
        return p

    def popen(self, cmd, **kw):
        """Start a background process in the namespace (caller stops it)."""
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.STDOUT)
        kw.setdefault("start_new_session", True)
        return subprocess.Popen(self.argv(cmd), **kw)

    def sysctl(self, key, value):
        self.run(["sysctl", "-qw", f"{key}={value}"])

    def delete(self):
        _ip("netns", "del", self.name, check=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.delete()


def veth(ns_a, dev_a, ns_b, dev_b, mac_a=None, mac_b=None):
    """A veth pair with one end in each namespace, both ends up."""
    tmp_a, tmp_b = f"t{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:8]}"
    _ip("link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
    _ip("link", "set", tmp_a, "netns", ns_a.name)
    _ip("link", "set", tmp_b, "netns", ns_b.name)
    for ns, tmp, dev, mac in ((ns_a, tmp_a, dev_a, mac_a), (ns_b, tmp_b, dev_b, mac_b)):
        ns.run(["ip", "link", "set", tmp, "name", dev])
        if mac:
            ns.run(["ip", "link", "set", dev, "address", mac])
        ns.run(["ip", "link", "set", dev, "up"])


def bridge(ns, name, ports=()):
    """A Linux bridge in `ns` enslaving the given devices of that namespace."""
    ns.run(["ip", "link", "add", name, "type", "bridge"])
    for port in ports:
        ns.run(["ip", "link", "set", port, "master", name])
    ns.run(["ip", "link", "set", name, "up"])


def cleanup_prefix(prefix):
    """Delete every namespace whose name starts with `prefix` (crash recovery)."""
    out = _ip("netns", "list", check=False).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(prefix):
            _ip("netns", "del", name, check=False)


def is_root():
    return os.geteuid() == 0
