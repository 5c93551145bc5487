"""`make bench`: run the benchmarks, each in a process of its own, and print one table.

    python -m bench                 every benchmark
    python -m bench labels submit   only these

Each benchmark writes var/bench/<name>.json; the table and the machine it ran on go to
var/bench/results.json. The exit status is 1 when a budget is missed or a benchmark fails.
"""

import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from .common import RESULTS_DIR, ROOT

# In the order of the README's table; each is the module bench/<name>.py.
BENCHMARKS = ["labels", "submit", "dose_check", "staff_pages", "pipeline"]
TIME_LIMIT = 5 * 60  # seconds per benchmark (the 1 M-row dataset is built once, before it)


def machine() -> dict:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
              if line.startswith("model name")]  # fmt: skip
    cpu = models[0] if models else platform.processor() or "unknown"
    postgres = subprocess.run(
        ["psql", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "postgresql": postgres or "unknown",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def run(name: str) -> tuple[list[dict], str | None]:
    result_file = RESULTS_DIR / f"{name}.json"
    result_file.unlink(missing_ok=True)
    print(f"\n== {name}", flush=True)
    started = time.monotonic()
    try:
        # The benchmark prepares its data first (not timed against the limit when it is the
        # 1 M-row dataset, which is built once); the limit below bounds a stuck run.
        completed = subprocess.run(
            [sys.executable, "-m", f"bench.{name}"], cwd=ROOT, check=False, timeout=3 * 3600
        )
    except subprocess.TimeoutExpired:
        return [], "did not finish"
    print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    if completed.returncode != 0 or not result_file.exists():
        return [], f"exited with status {completed.returncode}"
    return json.loads(result_file.read_text())["rows"], None


def number(value) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def ratio_text(row: dict) -> str:
    """The ratio to two decimals, or three where two would round it onto its budget's figure
    (a rate of 0.898 against "ratio >= 0.9" fails, and is not shown as 0.90)."""
    if row["ratio"] is None:
        return "-"
    text = f"{row['ratio']:.2f}"
    limit = row["budget"].rsplit(" ", 1)[-1]
    with contextlib.suppress(ValueError):  # budgets that are not a number ("equal")
        if float(text) == float(limit):
            text = f"{row['ratio']:.3f}"
    return text


def table(rows: list[dict]) -> str:
    header = ["benchmark", "measure", "baseline", "ours", "ratio", "budget", "result"]
    lines = [
        [row["benchmark"], row["measure"], number(row["baseline"]), number(row["ours"]),
         ratio_text(row), row["budget"],
         "pass" if row["passed"] else "FAIL"]
        for row in rows
    ]  # fmt: skip
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=True)]
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append("-|-".join("-" * w for w in widths))
    out += [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(out)


def main(names: list[str]) -> int:
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"Unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}.")
        return 2
    rows, problems = [], []
    for name in names or BENCHMARKS:
        found, problem = run(name)
        rows += found
        if problem:
            problems.append(f"{name}: {problem}")
    print("\n" + table(rows))
    for problem in problems:
        print(f"FAILED {problem}")
    about = machine()
    print(f"\n{about['cpu']}, {about['cores']} cores; Python {about['python']}; "
          f"{about['postgresql']}")  # fmt: skip
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "results.json").write_text(
        json.dumps({"machine": about, "rows": rows, "problems": problems}, indent=2)
    )
    return 1 if problems or not all(row["passed"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
