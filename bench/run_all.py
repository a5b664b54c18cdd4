#!/usr/bin/python3
"""`make bench`: run every benchmark under bench/ and write one report, bench/out/report.md.

    sudo /usr/bin/python3 bench/run_all.py [--only NAME ...] [--timeout S]

Every bench/*.py except this runner and bench/report.py is a benchmark: a
script that prints Markdown with its figures and the baseline it measured in
the same run. Each runs in its own process, one after the other (they share
the machine's CPUs), with a time limit; its output and stderr go to
bench/out/NAME.log. A benchmark that fails or times out is reported with its
error and the runner goes on. bench/lab.py also leaves its raw figures in
bench/out/lab.json, from which bench/report.py draws the plots.
"""

import argparse
import glob
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
NOT_BENCHMARKS = {"run_all.py", "report.py", "__init__.py"}
PY = "/usr/bin/python3"   # Debian's: it has bcc, pyroute2, dbus-next (a pyenv python3 may be first on PATH)

sys.path.insert(0, HERE)
import report  # noqa: E402


def benchmarks():
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(HERE, "*.py"))
                  if os.path.basename(p) not in NOT_BENCHMARKS)


def extra_args(name):
    """Arguments a benchmark takes from the runner (raw figures for the plots; a Katran checkout
    for katran_compare.py from $VC5_KATRAN_DIR, without which it says how to get one and exits 2)."""
    if name == "lab.py":
        return ["--json", os.path.join(OUT, "lab.json")]
    if name == "katran_compare.py" and os.environ.get("VC5_KATRAN_DIR"):
        return ["--katran", os.environ["VC5_KATRAN_DIR"]]
    return []


def text(data):
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def run_one(name, timeout):
    """A report.Result for bench/NAME."""
    argv = [PY, os.path.join(HERE, name), *extra_args(name)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "services"), REPO]),
               PYTHONDONTWRITEBYTECODE="1", PATH="/usr/sbin:/usr/bin:/sbin:/bin")
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)
        status, out, err = p.returncode, p.stdout, p.stderr
        error = "" if status == 0 else f"exit status {status}"
    except subprocess.TimeoutExpired as e:
        status, error = None, f"timed out after {timeout} s"
        out, err = text(e.stdout), text(e.stderr)
    except OSError as e:
        status, out, err, error = None, "", str(e), f"could not start: {e}"
    took = time.monotonic() - t0
    with open(os.path.join(OUT, name[:-3] + ".log"), "w") as f:
        f.write(f"$ {' '.join(argv)}\n# {took:.1f} s, {error or 'ok'}\n\n"
                f"--- stdout\n{out}\n--- stderr\n{err}")
    return report.Result(name=name, argv=argv, seconds=took, ok=not error, error=error,
                         stdout=out, stderr=err)


def from_log(name):
    """The report.Result of an earlier run, read back from bench/out/NAME.log (written by run_one)."""
    text_ = open(os.path.join(OUT, name[:-3] + ".log")).read()
    head, _, rest = text_.partition("\n\n--- stdout\n")
    out, _, err = rest.rpartition("\n--- stderr\n")
    argv_line, status_line = head.splitlines()[:2]
    seconds, _, status = status_line[2:].partition(" s, ")
    return report.Result(name=name, argv=argv_line[2:].split(), seconds=float(seconds), ok=status == "ok",
                         error="" if status == "ok" else status, stdout=out, stderr=err)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="run only these benchmarks (file names)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per benchmark (default 900)")
    ap.add_argument("--report-only", action="store_true",
                    help="run nothing: write the report again from the logs in bench/out")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    if args.report_only:
        results = [from_log(n) for n in benchmarks() if os.path.exists(os.path.join(OUT, n[:-3] + ".log"))]
        print(f"report: {report.write(results, OUT)}")
        return 0
    names = benchmarks()
    if args.only:
        unknown = set(args.only) - set(names)
        if unknown:
            sys.exit(f"no such benchmark: {', '.join(sorted(unknown))} (have: {', '.join(names)})")
        names = [n for n in names if n in args.only]
    results = []
    for name in names:
        print(f"bench: {name} ...", end=" ", flush=True)
        r = run_one(name, args.timeout)
        print(f"{'ok' if r.ok else 'FAILED: ' + r.error} ({r.seconds:.0f} s)", flush=True)
        results.append(r)
    path = report.write(results, OUT)
    print(f"report: {path}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
