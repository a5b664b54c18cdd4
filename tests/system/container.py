"""A booted systemd in a container over an overlay of the host's root.

environment-facts §1.7: a tmpfs upper layer over `lowerdir=/` (the host's
packages, Python and kernel headers are all there, and nothing the container
does reaches the host), `systemd-nspawn --boot` with the unified cgroup
hierarchy (the BPF IP firewall works only there), a private network (the
container's port 80/179 are not the host's), every capability plus `bpf` and
`perf_event_open` in the syscall filter (the XDP loader).

The container gets its OWN bpffs, mounted mode 0700 like systemd mounts it on
a real host, so its pins never meet the host's or another engineer's (the
host's /sys/fs/bpf is shared).

Invariant: `stop()` always powers the machine off and unmounts everything,
whatever state the boot reached; tests call it from a finalizer.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

CLEAN_ENV = "env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 TERM=dumb SYSTEMD_PAGER= SYSTEMD_COLORS=0"


def _mount(*args):
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _kill_nspawn_of(base: str) -> None:
    """Power off (SIGTERM), then SIGKILL, a systemd-nspawn still running a container under `base`."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"systemd-nspawn") and any(base.encode() in a for a in argv):
            pids.append(int(pid))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
            time.sleep(0.2)


def reap_stale(prefix: str = "vc5sys") -> list[str]:
    """Unmount and delete what containers of dead test sessions left (their pid is in the name).

    A session killed before its finalizer ran (timeout, SIGKILL) leaves its
    overlay, tmpfs and bpffs mounted under /tmp; live sessions are left alone.
    """
    reaped = []
    tmp = tempfile.gettempdir()
    for entry in os.listdir(tmp):
        parts = entry.split("-")
        if not entry.startswith(prefix + "-") or len(parts) < 3 or not parts[1].isdigit():
            continue
        if os.path.exists(f"/proc/{parts[1]}"):
            continue
        base = os.path.join(tmp, entry)
        _kill_nspawn_of(base)
        for sub in ("M", "bpffs", "U"):
            subprocess.run(["umount", "-l", os.path.join(base, sub)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
        reaped.append(base)
    return reaped


class ContainerError(Exception):
    """The container did not boot or a command in it failed; the message says which."""


class Container:
    """One booted container. `run()` executes a shell command inside it as root."""

    def __init__(self, prefix: str = "vc5sys"):
        self.name = f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.base = tempfile.mkdtemp(prefix=self.name + "-")
        self.upper = os.path.join(self.base, "U")
        self.root = os.path.join(self.base, "M")
        self.bpffs = os.path.join(self.base, "bpffs")
        self.log_path = os.path.join(self.base, "nspawn.log")
        self.nspawn: subprocess.Popen | None = None
        self.pid1: int | None = None
        self._mounted: list[str] = []
        self.boot_seconds: float | None = None

    # ------------------------------------------------------------------ life cycle

    def start(self, timeout: float = 90.0) -> "Container":
        for d in (self.upper, self.root, self.bpffs):
            os.makedirs(d)
        _mount("-t", "tmpfs", "tmpfs", self.upper)
        self._mounted.append(self.upper)
        os.makedirs(os.path.join(self.upper, "up"))
        os.makedirs(os.path.join(self.upper, "wk"))
        _mount("-t", "overlay", "overlay", "-o",
               f"lowerdir=/,upperdir={self.upper}/up,workdir={self.upper}/wk", self.root)
        self._mounted.append(self.root)
        _mount("-t", "bpf", "-o", "mode=0700", "bpf", self.bpffs)
        self._mounted.append(self.bpffs)

        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
        t0 = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.nspawn = subprocess.Popen(
                ["systemd-nspawn", "-D", self.root, "--boot", "--console=passive",
                 f"--machine={self.name}", "--register=no", "--keep-unit",
                 "--capability=all", "--system-call-filter=bpf perf_event_open",
                 f"--bind={self.bpffs}:/sys/fs/bpf", "--private-network",
                 "--", "systemd.firstboot=off"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while self.pid1 is None:
            if self.nspawn.poll() is not None:
                raise ContainerError(f"systemd-nspawn exited with {self.nspawn.returncode}: {self.console()}")
            if time.monotonic() > deadline:
                raise ContainerError(f"no systemd in container {self.name} after {timeout} s: "
                                     f"{self.console()}")
            self.pid1 = self._find_pid1()
            time.sleep(0.1)
        state = ""
        while state not in ("running", "degraded"):
            if time.monotonic() > deadline:
                raise ContainerError(f"container {self.name} did not finish booting ({state!r}): "
                                     f"{self.run('systemctl --failed --no-legend').stdout}")
            state = self.run("systemctl is-system-running", timeout=10).stdout.strip()
            if state not in ("running", "degraded"):
                time.sleep(0.2)
        self.boot_seconds = time.monotonic() - t0
        return self

    def _find_pid1(self) -> int | None:
        # PID 1 of the container is the nspawn process's descendant named "systemd".
        todo = [self.nspawn.pid]
        while todo:
            pid = todo.pop()
            for child in _children(pid):
                if _comm(child) == "systemd":
                    return child
                todo.append(child)
        return None

    def stop(self) -> None:
        """Power off, wait, kill what is left, unmount, delete. Never raises."""
        try:
            if self.nspawn is not None and self.nspawn.poll() is None:
                if self.pid1:
                    subprocess.run(["nsenter", "-t", str(self.pid1), "-a", "sh", "-c",
                                    f"{CLEAN_ENV} systemctl poweroff --no-block"],
                                   capture_output=True, timeout=15)
                try:
                    self.nspawn.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.nspawn.pid, signal.SIGKILL)
                    self.nspawn.wait(timeout=10)
        except Exception:                                    # noqa: BLE001 - cleanup must go on
            pass
        for mnt in reversed(self._mounted):
            r = subprocess.run(["umount", mnt], capture_output=True)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", mnt], capture_output=True)
        self._mounted.clear()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ commands

    def run(self, cmd: str, timeout: float = 120.0, check: bool = False,
            user: str | None = None) -> subprocess.CompletedProcess:
        """Run a shell command inside the container (as `user` via runuser if given)."""
        if user:
            cmd = f"runuser -u {shlex.quote(user)} -- sh -c {shlex.quote(cmd)}"
        argv = ["nsenter", "-t", str(self.pid1), "-a", "sh", "-c", f"{CLEAN_ENV} sh -c {shlex.quote(cmd)}"]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise ContainerError(f"`{cmd}` exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def put(self, src: str, dest: str) -> None:
        """Copy a host file into the container (through the overlay's merged tree)."""
        target = os.path.join(self.root, dest.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy(src, target)

    def write(self, dest: str, text: str, mode: int = 0o644) -> None:
        target = os.path.join(self.root, dest.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            f.write(text)
        os.chmod(target, mode)

    def console(self, tail: int = 2000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-tail:]
        except OSError:
            return ""
