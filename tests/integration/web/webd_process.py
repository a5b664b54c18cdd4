"""Start a real vc5-webd process the way systemd does: socket-activated, no AF_INET of its own.

The listening socket is made here (the test plays vc5-webd.socket) and handed
over as fd 3 with LISTEN_FDS/LISTEN_PID. A sitecustomize on the child's
PYTHONPATH makes socket.socket(AF_INET|AF_INET6) fail with EAFNOSUPPORT, as
RestrictAddressFamilies=AF_UNIX does, so a webd that tried to open its own
TCP socket would fail these tests.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import socket
import subprocess
import tempfile
import urllib.request

SERVICES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "services")

GUARD = '''
import errno, socket
_orig_init = socket.socket.__init__
def _guarded(self, family=-1, type=-1, proto=-1, fileno=None):
    if fileno is None and family in (-1, socket.AF_INET, socket.AF_INET6):   # -1 means AF_INET
        raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol (test guard)")
    _orig_init(self, family, type, proto, fileno)
socket.socket.__init__ = _guarded
'''


class Webd:
    def __init__(self, *extra, bind="127.0.0.1", netns=None, nofile=None):
        """`nofile`: RLIMIT_NOFILE of the child, as LimitNOFILE= would set it."""
        self.tmp = tempfile.TemporaryDirectory(prefix="vc5webd")
        with open(os.path.join(self.tmp.name, "sitecustomize.py"), "w") as f:
            f.write(GUARD)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((bind, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.base = f"http://{bind}:{self.port}"
        fd = self.sock.fileno()
        env = dict(os.environ, PYTHONPATH=self.tmp.name + ":" + os.path.abspath(SERVICES), LISTEN_FDS="1")
        env.pop("LISTEN_PID", None)
        move = "" if fd == 3 else f"exec 3<&{fd}; exec {fd}<&-; "   # bash: multi-digit fds
        cmd = ["bash", "-c", move + 'LISTEN_PID=$$ exec "$@"', "bash",
               "/usr/bin/python3", "-m", "vc5.webd", *extra]
        if netns:
            cmd = ["nsenter", f"--net=/run/netns/{netns}", *cmd]
        self.log = open(os.path.join(self.tmp.name, "webd.log"), "w+")
        limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))) if nofile else None
        self.proc = subprocess.Popen(cmd, env=env, pass_fds=(fd,), stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=limit)

    def get(self, path, headers=None, timeout=5):
        req = urllib.request.Request(self.base + path, headers=headers or {})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()

    def json(self, path):
        return json.loads(self.get(path)[2])

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.sock.close()
        self.log.close()
        self.tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def guard_works() -> bool:
    """The guard really refuses AF_INET in a child (so the tests prove something)."""
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "sitecustomize.py"), "w") as f:
            f.write(GUARD)
        r = subprocess.run(["/usr/bin/python3", "-c", "import socket; socket.socket()"],
                           env=dict(os.environ, PYTHONPATH=tmp), capture_output=True, text=True)
        return r.returncode != 0 and os.strerror(errno.EAFNOSUPPORT).split()[0] in r.stderr
