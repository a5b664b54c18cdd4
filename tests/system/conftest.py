"""System tier: the .debs, installed with apt into a booted systemd container.

Session fixtures:
  debs     - the six .debs, built ONCE per session with dpkg-buildpackage from
             a snapshot of the source (or taken from $VC5_DEB_DIR, e.g. dist/
             after `make deb`), plus lintian's verdict on them;
  machine  - one booted container (tests/system/container.py) with the .debs
             installed by `apt install`, exactly as a user would.

The snapshot is the committed tree (`git archive HEAD`): in CI that is the
checkout; on the shared development tree it keeps other engineers'
half-saved files out of the packages. VC5_SYSTEM_SOURCE=worktree builds the
work tree as it is instead (uncommitted changes included). Tests compare
installed files with the snapshot, never with a tree that may have moved.

Tests that need a service skip with "service not built yet" while
services/vc5/<service>/__main__.py does not exist in the source.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time

import pytest

from tests.lib.require import require_program
from tests.system.container import Container, reap_stale

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PACKAGES = ("python3-vc5", "vc5-xdp-loader", "vc5-healthd", "vc5-bgpd", "vc5-webd", "vc5", "vc5-decap",
            "vc5-notifyd")
CLEAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# apt as the tests run it in the container: no questions, wait for the dpkg lock.
APT = "DEBIAN_FRONTEND=noninteractive apt-get -y -o DPkg::Lock::Timeout=120"


def _use_head() -> bool:
    if os.environ.get("VC5_SYSTEM_SOURCE", "head") == "worktree":
        return False
    return subprocess.run(["git", "-C", REPO, "rev-parse", "--verify", "-q", "HEAD"],
                          capture_output=True).returncode == 0


USE_HEAD = _use_head()


def service_built(pkg: str) -> bool:
    """True when the service's entry point exists in the source (services are written in parallel)."""
    rel = f"services/vc5/{pkg}/__main__.py"
    if USE_HEAD:
        return subprocess.run(["git", "-C", REPO, "cat-file", "-e", f"HEAD:{rel}"],
                              capture_output=True).returncode == 0
    return os.path.exists(os.path.join(REPO, rel))


def needs_service(pkg: str):
    return pytest.mark.skipif(not service_built(pkg), reason=f"service not built yet (services/vc5/{pkg})")


class Debs:
    def __init__(self, directory: str, src: str, changes: str | None, lintian: str, build_seconds: float):
        self.dir = directory
        self.src = src                      # the source the .debs were built from
        self.files = sorted(glob.glob(os.path.join(directory, "*.deb")))
        self.changes = changes
        self.lintian = lintian
        self.build_seconds = build_seconds


# Build leftovers of someone's local `dpkg-buildpackage` are not part of a checkout.
SKIP_PREFIXES = ("build/", ".pybuild/", "dist/", ".hypothesis/", "bench/out/", ".git/", "debian/tmp/",
                 "debian/.debhelper/")


def _tree_files() -> list[str]:
    """The files of the work tree that git knows or would add (not ignored), as CI's checkout has."""
    r = subprocess.run(["git", "-C", REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                       capture_output=True)
    if r.returncode == 0:
        candidates = r.stdout.decode().split("\0")
    else:                                   # not a git checkout (a tarball): every file
        candidates = [os.path.relpath(os.path.join(d, f), REPO)
                      for d, _, files in os.walk(REPO) for f in files]
    return [p for p in candidates
            if p and not p.startswith(SKIP_PREFIXES) and ".egg-info/" not in p and "__pycache__" not in p
            and os.path.isfile(os.path.join(REPO, p))]


UPGRADE_VERSION = "0.1.0+systest1"


def _bump_version(src: str, version: str) -> None:
    """Prepend a changelog entry: the same tree, packaged as a newer version (the upgrade test)."""
    path = os.path.join(src, "debian", "changelog")
    with open(path) as f:
        old = f.read()
    entry = (f"vc5 ({version}) unstable; urgency=medium\n\n  * System test upgrade build.\n\n"
             " -- vc5 engineers <vc5@example.org>  Fri, 27 Nov 2026 12:00:00 +0000\n\n")
    with open(path, "w") as f:
        f.write(entry + old)


def _snapshot(dest: str) -> str:
    """The source to package, copied to dest: HEAD (default) or the work tree."""
    os.makedirs(dest)
    if USE_HEAD:
        archive = subprocess.run(["git", "-C", REPO, "archive", "--format=tar", "HEAD"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True, capture_output=True)
        return dest
    for rel in _tree_files():
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(os.path.join(REPO, rel), target)
    return dest


def _build(tmp: str, src: str, version: str | None = None) -> tuple[str, float]:
    """Build a copy of `src` in tmp/vc5; the .debs land in tmp."""
    work = os.path.join(tmp, "vc5")
    shutil.copytree(src, work, symlinks=True)
    if version:
        _bump_version(work, version)
    src = work
    t0 = time.monotonic()
    # Debian's Python only: pybuild runs python3.X from PATH (environment-facts: two Pythons).
    r = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, capture_output=True, text=True,
                       env={"PATH": CLEAN_PATH, "LANG": "C.UTF-8", "HOME": tmp}, timeout=300)
    seconds = time.monotonic() - t0
    if r.returncode != 0:
        pytest.fail(f"dpkg-buildpackage failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return tmp, seconds


@pytest.fixture(scope="session")
def debs(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root (dpkg-buildpackage is fine, but the container tier is root-only)")
    require_program("dpkg-buildpackage", "dpkg-dev")
    require_program("systemd-nspawn", "systemd-container")
    require_program("lintian", "lintian")      # else test_lintian_reports_no_error_or_warning checks nothing
    src = _snapshot(str(tmp_path_factory.mktemp("source") / "vc5"))
    given = os.environ.get("VC5_DEB_DIR")
    if given:
        directory, seconds = os.path.abspath(given), 0.0
    else:
        directory, seconds = _build(str(tmp_path_factory.mktemp("debs")), src)
    changes = (glob.glob(os.path.join(directory, "vc5_*.changes")) or [None])[0]
    lintian = ""
    if changes:
        lintian = subprocess.run(["lintian", "-I", "--pedantic", changes], capture_output=True, text=True,
                                 env={"PATH": CLEAN_PATH, "LANG": "C.UTF-8"}, timeout=300).stdout
    d = Debs(directory, src, changes, lintian, seconds)
    names = {os.path.basename(f).split("_")[0] for f in d.files}
    missing = set(PACKAGES) - names
    assert not missing, f"no .deb for {sorted(missing)} in {directory}"
    return d


@pytest.fixture(scope="session")
def upgrade_debs(debs, tmp_path_factory):
    """The same source packaged as UPGRADE_VERSION: what `apt upgrade` would bring."""
    directory, _ = _build(str(tmp_path_factory.mktemp("debs-upgrade")), debs.src, UPGRADE_VERSION)
    files = sorted(glob.glob(os.path.join(directory, "*.deb")))
    assert len(files) == len(PACKAGES), files
    return files


@pytest.fixture(scope="session")
def machine(debs):
    """A booted container with every vc5 package installed by apt (fresh install)."""
    reap_stale("vc5sys")
    c = Container("vc5sys")
    try:
        c.start()
        for f in debs.files:
            c.put(f, f"/root/debs/{os.path.basename(f)}")
        # The host's Docker-style policy-rc.d (exit 101) would stop maintainer scripts from
        # starting units; remove it inside the container only (the change stays in the overlay).
        c.run("rm -f /usr/sbin/policy-rc.d", check=True)
        # The host's apt/dpkg timers (Persistent=, so they fire at the container's boot)
        # and PackageKit would race our apt for the dpkg lock.
        c.run("systemctl stop apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer "
              "apt-daily.service apt-daily-upgrade.service dpkg-db-backup.service packagekit.service")
        # The container boots the host's enabled services; the test tools among them
        # (nginx, bird, gobgpd, ...) would hold ports 80/179 that vc5's sockets need.
        c.run("for port in 80 179; do ss -Htlnp \"sport = :$port\" | grep -o 'pid=[0-9]*' | cut -d= -f2; "
              "done | sort -u | while read pid; do systemctl stop \"$(ps -o unit= -p $pid)\"; done")
        busy = c.run("ss -Htlnp '( sport = :80 or sport = :179 )'").stdout
        assert not busy.strip(), f"ports 80/179 still taken in the container:\n{busy}"
        t0 = time.monotonic()
        r = c.run(f"{APT} install --no-install-recommends /root/debs/*.deb", timeout=300)
        c.install_seconds = time.monotonic() - t0
        c.install_log = r.stdout + r.stderr
        c.install_rc = r.returncode
        c.src = debs.src
        print(f"\ncontainer {c.name}: boot {c.boot_seconds:.1f} s, apt install {c.install_seconds:.1f} s")
        yield c
    finally:
        c.stop()
