"""`make test`: run every test suite, each where it belongs, and say loudly what was skipped.

Suites:
  unit         SQLite, in-process: models, forms, views, services, the fuzzing, the layers'
               contracts (on every core)
  postgresql   PostgreSQL: the integration tests (locks, transactions, the layers' migration, a
               real Celery worker on Redis, SMTP on loopback) and the tests marked `postgresql`,
               where PostgreSQL answers differently from SQLite (the fuzzing of every form and
               hostile list parameters: PostgreSQL refuses a NUL in text and integers out of
               range that SQLite stores; the dashboard's orders per day, cut in the
               pharmacy's time zone by each database's own date functions)
  e2e          a real browser (Debian's Chromium through Playwright) against a live server

The unit suite runs first, on every core. Then the postgresql and e2e suites run at the same
time: both mostly wait (for a Celery worker, a beat's sweep, an SMTP server, a browser's page or
axe-core), so together they finish well before one after the other would. The e2e suite's
output is kept in var/test-results/e2e.log and printed when it ends.

A suite whose service is unreachable is skipped with the reason; with REQUIRE_SERVICES=1 a
skipped suite, or a skipped test inside one, is a failure. Extra arguments go to every pytest.
"""

import os
import shutil
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "var" / "test-results"
TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ldn_portal"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
# The embedded default: no service URLs leak in from the caller's shell.
SERVICE_VARIABLES = ("DATABASE_URL", "CELERY_BROKER_URL", "EMAIL_URL", "DJANGO_DEBUG")


def reachable(url: str) -> str | None:
    """None if a TCP connection to the URL's host and port succeeds, else the reason."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=3):
            return None
    except OSError as exc:
        return f"{parts.hostname}:{parts.port} unreachable ({exc.strerror or exc})"


def suites():
    base_env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    base_env["TEST_REDIS_URL"] = TEST_REDIS_URL
    chromium_missing = None if Path(CHROMIUM).exists() else f"{CHROMIUM} is not installed"
    # On every core (pytest-xdist): the unit tests share nothing but the code. A worker that
    # runs out of tests takes some from another's queue (worksteal): a few long tests (the
    # fuzzing, the access matrix) no longer leave one core idle while another works through
    # them (tests/conftest.py restores the database after each transactional test, so any test
    # may run after one).
    yield (
        "unit",
        ["-m", "not integration and not e2e", "-n", "auto", "--dist", "worksteal"],
        base_env,
        None,
    )
    yield (
        "postgresql",
        # Not the whole unit suite again: the ORM writes the same SQL for both, and running
        # every test twice doubled the suite's time for differences these tests already find.
        # On every core: each worker has a test database and a Redis database of its own.
        ["-m", "integration or postgresql", "--create-db", "-n", "auto", "--dist", "worksteal"],
        {**base_env, "DATABASE_URL": TEST_DATABASE_URL},
        reachable(TEST_DATABASE_URL),
    )
    # Two browsers at once: a test mostly waits for its page, its server or axe-core.
    yield "e2e", ["-m", "e2e", "-n", "2", "--dist", "worksteal"], base_env, chromium_missing


def counts(report: Path) -> dict[str, int]:
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    total, failures, errors, skipped = (
        int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")
    )
    return {
        "passed": total - failures - errors - skipped,
        "failed": failures + errors,
        "skipped": skipped,
    }


# Suites that start together, after those before them have ended; the output of those named
# in LOGGED goes to a log of their own, printed when they end (not mixed with the other's).
TOGETHER = {"postgresql", "e2e"}
LOGGED = {"e2e"}


def start(name: str, args: list[str], env: dict, extra_args: list[str]):
    report = RESULTS / f"{name}.xml"
    command = [sys.executable, "-m", "pytest", *args, f"--junitxml={report}", *extra_args]
    log = RESULTS / f"{name}.log" if name in LOGGED else None
    output = log.open("w") if log else None
    beside = f" (beside another: its output is in {log.name})" if log else ""
    print(f"\n==== suite {name}{beside} ====", flush=True)
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output,
                               stderr=subprocess.STDOUT if output else None)  # fmt: skip
    return process, report, log, output


def finish(name, process, report, log, output) -> tuple[int, Path]:
    code = process.wait()
    if output is not None:
        output.close()
        print(f"\n==== suite {name}: its output ====\n{log.read_text()}", flush=True)
    return code, report


def main(extra_args: list[str]) -> int:
    shutil.rmtree(RESULTS, ignore_errors=True)
    RESULTS.mkdir(parents=True)
    summary, problems = [], []
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    running = {}

    def record(name: str, code: int, report: Path) -> None:
        if code == 5 or not report.exists():  # pytest collected nothing: that is a failure here
            problems.append(f"suite {name} ran no test (pytest exit {code})")
            return
        result = counts(report)
        for key in totals:
            totals[key] += result[key]
        summary.append(
            f"suite {name}: {result['passed']} passed, {result['failed']} failed, "
            f"{result['skipped']} skipped"
        )
        if code != 0:
            problems.append(f"suite {name} failed (pytest exit {code})")
        if REQUIRE_SERVICES and result["skipped"]:
            problems.append(f"suite {name} skipped {result['skipped']} test(s)")

    for name, args, env, unavailable in suites():
        if unavailable:
            line = f"SKIPPED suite {name}: {unavailable}"
            print(f"\n{'!' * 78}\n!! {line}\n{'!' * 78}", flush=True)
            summary.append(line)
            if REQUIRE_SERVICES:
                problems.append(f"suite {name} skipped while REQUIRE_SERVICES=1")
            continue
        running[name] = start(name, args, env, extra_args)
        if name not in TOGETHER:
            record(name, *finish(name, *running.pop(name)))
    for name, started in running.items():
        record(name, *finish(name, *started))
    print("\n==== summary ====")
    for line in summary:
        print(line)
    for problem in problems:
        print(f"FAILED: {problem}")
    print(
        f"total: {totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
