"""What every benchmark shares: Django on a PostgreSQL database of its own, timing, percentiles
and the result rows that `python -m bench` prints as one table."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "var" / "bench"
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")

# Production settings (DEBUG off: no query log, compressed static files), on loopback and HTTP.
PRODUCTION_LIKE = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
    "DJANGO_SECURE_SSL_REDIRECT": "false",
    "LOG_LEVEL": "WARNING",
}


@dataclass
class Row:
    """One line of the table: a measure of ours against its baseline and its budget."""

    benchmark: str
    measure: str
    ours: float
    budget: str
    passed: bool
    baseline: float | None = None
    unit: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.ours / self.baseline

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio}


def ratio_row(
    benchmark: str,
    measure: str,
    baseline: float,
    ours: float,
    *,
    at_most: float | None = None,
    at_least: float | None = None,
    unit: str = "",
) -> Row:
    """A budget row of ours against its baseline measured in the same run: the ratio
    ours / baseline must be at most `at_most` (a cost) or at least `at_least` (a throughput)."""
    if (at_most is None) == (at_least is None):
        raise ValueError("a ratio budget is either at_most or at_least")
    ratio = ours / baseline if baseline else float("inf")
    if at_most is not None:
        budget, passed = f"ratio <= {at_most:g}", ratio <= at_most
    else:
        budget, passed = f"ratio >= {at_least:g}", ratio >= at_least
    return Row(benchmark, measure, ours, budget, passed, baseline, unit)


def database_url(name: str) -> str:
    return f"{POSTGRES_URL}/{name}"


def environment(database: str, **extra: str) -> dict[str, str]:
    """The environment of a benchmark's Django (in-process or in a server it starts)."""
    return {**os.environ, **PRODUCTION_LIKE, "DATABASE_URL": database_url(database), **extra}


def setup_django(database: str, **extra: str) -> None:
    """Django with production settings on its own PostgreSQL database, created and migrated
    when missing, and the static files collected (the manifest storage needs them)."""
    os.environ.update(environment(database, **extra))
    create_database(database)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    call_command("collectstatic", verbosity=0, interactive=False)


def create_database(name: str) -> None:
    import psycopg

    with psycopg.connect(database_url("postgres"), autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(database_url("postgres"), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def timed_ms(function: Callable[[], object], repeat: int) -> list[float]:
    """Wall-clock milliseconds of `repeat` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return times


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linearly interpolated between the closest ranks."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def write_results(name: str, rows: list[Row], **details) -> Path:
    """var/bench/<name>.json, read by `python -m bench` to print the table."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({"rows": [row.as_dict() for row in rows], **details}, indent=2))
    return path


def say(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def manage(*args: str, env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], env=env, check=True, cwd=ROOT, **kwargs
    )
