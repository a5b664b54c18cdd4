"""A doctor's findings and how they are shown.

Invariant: every finding whose status is not "ok" carries a `fix`: the exact command (sysctl,
ip, ethtool, systemctl, ...) or configuration change that removes it. The exit status is 1
when any finding is "fail" and 0 otherwise ("warn" is advice that does not break traffic).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

OK, WARN, FAIL = "ok", "warn", "fail"
ORDER = {FAIL: 0, WARN: 1, OK: 2}


@dataclass(frozen=True)
class Finding:
    check: str          # short name of the check: vip, arp, rp_filter, tunnel, mtu, xdp, bgp, ...
    subject: str        # what it is about: a VIP, an interface, a peer, a service
    status: str         # ok | warn | fail
    message: str        # what was found, in words
    fix: str = ""       # what to run or change ("" only when status is ok)

    def __post_init__(self):
        if self.status not in ORDER:
            raise ValueError(f"finding status {self.status!r} is not ok, warn or fail")
        if self.status != OK and not self.fix:
            raise ValueError(f"{self.check} {self.subject}: a {self.status} finding needs a fix")


def ok(check: str, subject: str, message: str) -> Finding:
    return Finding(check, subject, OK, message)


def warn(check: str, subject: str, message: str, fix: str) -> Finding:
    return Finding(check, subject, WARN, message, fix)


def fail(check: str, subject: str, message: str, fix: str) -> Finding:
    return Finding(check, subject, FAIL, message, fix)


def exit_status(findings) -> int:
    return 1 if any(f.status == FAIL for f in findings) else 0


def to_json(role: str, findings) -> str:
    doc = {"role": role, "ok": exit_status(findings) == 0,
           "problems": sum(f.status == FAIL for f in findings),
           "warnings": sum(f.status == WARN for f in findings),
           "findings": [asdict(f) for f in findings]}
    return json.dumps(doc, indent=2)


def to_table(findings) -> str:
    """A table, problems first; each fix on its own line under its finding."""
    rows = sorted(findings, key=lambda f: ORDER[f.status])
    width_c = max([5] + [len(f.check) for f in rows])
    width_s = max([7] + [len(f.subject) for f in rows])
    lines = [f"{'STATUS':6}  {'CHECK':{width_c}}  {'SUBJECT':{width_s}}  FINDING"]
    for f in rows:
        lines.append(f"{f.status.upper() if f.status != OK else OK:6}  {f.check:{width_c}}  "
                     f"{f.subject:{width_s}}  {f.message}".rstrip())
        if f.fix:
            pad = " " * (6 + 2 + width_c + 2 + width_s + 2)
            lines.append(f"{pad}fix: {f.fix}")
    problems = sum(f.status == FAIL for f in findings)
    warnings = sum(f.status == WARN for f in findings)
    if problems or warnings:
        lines.append(f"\n{problems} problem(s) to fix, {warnings} warning(s)")
    else:
        lines.append("\nall good")
    return "\n".join(lines)
