"""bench/out/report.md from the benchmarks' outputs (bench/run_all.py), with plots when matplotlib is there.

Each benchmark's Markdown goes in as it printed it, under a heading with its
command line, duration and status; a failed one shows its error and the end
of its stderr. Plots (PNG, next to the report) come from bench/out/lab.json.
"""

import datetime
import json
import os
import platform
import subprocess
import textwrap
from dataclasses import dataclass

STDERR_TAIL = 40


@dataclass
class Result:
    name: str
    argv: list
    seconds: float
    ok: bool
    error: str
    stdout: str
    stderr: str


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        commit = subprocess.run(["git", "-C", here, "describe", "--always", "--dirty"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "?"
    return (f"{platform.node()}: Linux {platform.release()}, {os.cpu_count()} CPUs ({cpu}), "
            f"Python {platform.python_version()}; vc5 at {commit or '?'}")


def plots(out):
    """[(title, file name)] of the plots drawn; [] and a reason when they cannot be."""
    path = os.path.join(out, "lab.json")
    if not os.path.exists(path):
        return [], "no lab figures (bench/lab.py did not run or failed)"
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "python3-matplotlib is not installed"
    fig = json.load(open(path))
    drawn = []

    def bars(name, title, labels, values, unit, colours=None):
        f, ax = plt.subplots(figsize=(10, 0.7 * len(labels) + 1.4))
        ax.barh([textwrap.fill(x, 34) for x in labels], values, color=colours or ["#4c72b0"] * len(labels))
        ax.margins(x=0.15)
        ax.set_xlabel(unit)
        ax.set_title(title)
        ax.invert_yaxis()
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:.0f}" if v >= 100 else f" {v:.1f}", va="center")
        f.tight_layout()
        f.savefig(os.path.join(out, name), dpi=90)
        plt.close(f)
        drawn.append((title, name))

    def colours(labels):
        return ["#999999" if lab.startswith("baseline") else "#4c72b0" for lab in labels]

    if "conn_rate" in fig:
        labels = list(fig["conn_rate"])
        bars("lab-new-connections.png", "New TCP connections per second",
             labels, [fig["conn_rate"][k][0] for k in labels], "connections/s", colours(labels))
    if "memory_kib" in fig:
        labels = list(fig["memory_kib"])
        bars("lab-memory.png", "Memory after start (PSS)", labels,
             [fig["memory_kib"][k][1] / 1024 for k in labels], "MiB", colours(labels))
    if "reload_s" in fig:
        import statistics
        labels = list(fig["reload_s"])
        bars("lab-reload.png", "Reload: SIGHUP -> new Generation on the bus (median)", labels,
             [statistics.median(fig["reload_s"][k]) * 1000 for k in labels], "ms", colours(labels))
    return drawn, ""


def write(results, out):
    path = os.path.join(out, "report.md")
    lines = ["# vc5 benchmarks", "",
             f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC} on {machine()}.", "",
             "Every figure below comes with the baseline its benchmark measured in the same run. The machine "
             "may be shared and noisy: compare rows of one run, not runs.", "",
             "| benchmark | status | seconds |", "|---|---|---:|"]
    for r in results:
        lines.append(f"| [{r.name}](#{r.name.replace('.', '')}) | {'ok' if r.ok else 'FAILED: ' + r.error} "
                     f"| {r.seconds:.0f} |")
    drawn, why = plots(out)
    lines += ["", "## Plots", ""]
    if drawn:
        lines += [f"![{title}]({name})" for title, name in drawn]
    else:
        lines.append(f"No plots: {why}.")
    for r in results:
        lines += ["", "---", "", f'<a id="{r.name.replace(".", "")}"></a>', "",
                  f"# {r.name}", "", f"`{' '.join(r.argv)}`: {r.seconds:.1f} s, "
                  f"{'ok' if r.ok else '**' + r.error + '**'}", ""]
        body = r.stdout.strip()
        if body and not any(line.startswith(("|", "#")) for line in body.splitlines()):
            lines += ["```text", body, "```"]          # plain text: keep its layout
        elif body:
            # Each benchmark's own headings go one level down, under its name.
            lines += [("#" + line) if line.startswith("#") else line for line in body.splitlines()]
        else:
            lines.append("(no output)")
        if not r.ok:
            tail = r.stderr.strip().splitlines()[-STDERR_TAIL:]
            lines += ["", "Error output (last lines):", "", "```", *tail, "```"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path
