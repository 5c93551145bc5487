"""Staff pages at scale: the admin's order list (unfiltered, filtered by status, searched by
order number), the admin's order page, the admin's index (the pharmacy's dashboard) and the
prescriber's order list of a clinic with 5 % of all orders, measured on 10 thousand and on 1
million orders.

Budget: <= 6 queries per page and the same count at both sizes; p50 <= 100 ms; p50 at 1 M at
most 2x p50 at 10 k. Each size is its own PostgreSQL database, built once (bench/dataset.py) and
reused while it holds the expected number of orders; each is measured in a process of its own
(Django binds one database per process), in alternating rounds. Pages are requested through
Django's test client, so every middleware, the session and the permission checks run as for a
browser.
"""

import datetime
import json
import subprocess
import sys
import time

from .common import (
    ROOT,
    Row,
    create_database,
    database_url,
    drop_database,
    environment,
    percentile,
    say,
    setup_django,
    write_results,
)
from .dataset import COMPLETE, build

SIZES = {"10k": 10_000, "1m": 1_000_000}
ROUNDS = 6
ROUND_REQUESTS = 8  # per page and round: 48 requests of each page at each size
QUERY_BUDGET = 6
P50_BUDGET_MS = 100
GROWTH_BUDGET = 2.0


def database(size: str) -> str:
    return f"ldn_bench_orders_{size}"


def latest_migrations() -> set[tuple[str, str]]:
    """(app, migration) of the last migration of each of the portal's apps, as on disk."""
    return {
        (app, max(path.stem for path in (ROOT / app / "migrations").glob("[0-9]*.py")))
        for app in ("core", "prescribers", "orders", "pharmacy")
    }


def dataset_ready(name: str, orders: int) -> bool:
    """A dataset built earlier is reused when its build finished, with every order, on the
    schema of the code as it is now (a migration since then means building it again)."""
    import psycopg

    try:
        with psycopg.connect(database_url(name)) as connection:
            found = connection.execute("SELECT count(*) FROM orders_order").fetchone()[0]
            applied = set(connection.execute("SELECT app, name FROM django_migrations"))
            mark = connection.execute(
                "SELECT obj_description('orders_order'::regclass, 'pg_class')"
            ).fetchone()[0]
    except psycopg.Error:
        return False
    return found == orders and latest_migrations() <= applied and mark == COMPLETE


def prepare(size: str) -> None:
    """The database of this size, built when missing or incomplete."""
    import psycopg

    name, orders = database(size), SIZES[size]
    if dataset_ready(name, orders):
        say(f"{name}: reusing {orders:,} orders")
        return
    say(f"{name}: building {orders:,} orders (once; later runs reuse it)")
    drop_database(name)
    create_database(name)
    subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); "
         "from django.core.management import call_command; call_command('migrate', verbosity=0)"],
        env=environment(name), cwd=ROOT, check=True,
    )  # fmt: skip
    with psycopg.connect(database_url(name)) as connection:
        build(connection, orders, datetime.datetime.now(datetime.UTC))


def pages(size: str) -> dict[str, tuple[str, str]]:
    """page name -> (who looks, URL), in the order of the table."""
    from django.urls import reverse

    from orders.models import Order

    middle = Order.objects.get(pk=SIZES[size] // 2)
    number = middle.number
    changelist = reverse("admin:orders_order_changelist")
    return {
        "admin order list": ("pharmacist", changelist),
        "admin order list, status filter": ("pharmacist", f"{changelist}?status__exact=on_hold"),
        "admin order list, number search": ("pharmacist", f"{changelist}?q={number}"),
        "admin order page": ("pharmacist", reverse("admin:orders_order_change", args=[middle.pk])),
        "admin index (dashboard)": ("pharmacist", reverse("admin:index")),
        "prescriber's order list": ("prescriber", reverse("order_list")),
    }


def serve(size: str) -> None:
    """Runs in its own process: answers the parent's requests on stdin, one JSON line each.
    "queries": the query count and SQL of every page; "round": ROUND_REQUESTS timings of every
    page. The parent alternates rounds between the sizes, so drift on the machine hits both."""
    setup_django(database(size))
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from core.models import User
    from prescribers.models import Prescriber
    from tests.signing_in import verified_staff_login

    pharmacist, created = User.objects.get_or_create(
        email="pharmacist@bench.invalid",
        defaults={"first_name": "Bench", "last_name": "Pharmacist", "is_staff": True},
    )
    if created:
        pharmacist.groups.add(Group.objects.get(name="Pharmacist"))
    clients = {"pharmacist": Client(), "prescriber": Client()}
    verified_staff_login(clients["pharmacist"], pharmacist)  # password and second factor
    prescriber = Prescriber.objects.filter(user__memberships__clinic_id=1).first()  # of clinic 1
    clients["prescriber"].force_login(prescriber.user)
    urls = {page: (clients[who], url) for page, (who, url) in pages(size).items()}
    for client, url in urls.values():
        for _ in range(3):  # warm: templates compiled, content types cached, pages in memory
            assert client.get(url).status_code == 200, url

    for command in sys.stdin:
        if command.strip() == "queries":
            answer = {}
            for page, (client, url) in urls.items():
                # Two requests in a row, keeping the fewer queries: the page's own. A session
                # writes its last-seen time (BEGIN, UPDATE, COMMIT) at most once in 15 s and a
                # process reads the catalogue again at most once in 30 s, so at most one of the
                # two carries either.
                captures = []
                for _ in range(2):
                    with CaptureQueriesContext(connection) as captured:
                        client.get(url)
                    captures.append(captured.captured_queries)
                fewest = min(captures, key=len)
                sql = [query["sql"][:400] for query in fewest]
                answer[page] = {"url": url, "queries": len(fewest), "sql": sql}
        else:
            answer = {page: _request_times(client, url) for page, (client, url) in urls.items()}
        print(json.dumps(answer), flush=True)


def _request_times(client, url) -> list[float]:
    times = []
    for _ in range(ROUND_REQUESTS):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    return times


def main() -> None:
    for size in SIZES:
        prepare(size)
    servers, measured = {}, {}

    def ask(size: str, command: str) -> dict:
        server = servers[size]
        server.stdin.write(command + "\n")
        server.stdin.flush()
        return json.loads(server.stdout.readline())

    try:
        # One server at a time: each collects the static files alone (two at once race on the
        # same files) and counts its queries straight after its warm-up, like the other.
        for size in SIZES:
            servers[size] = subprocess.Popen(
                [sys.executable, "-m", "bench.staff_pages", "serve", size],
                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            measured[size] = ask(size, "queries")
        for size in SIZES:
            for page in measured[size]:
                measured[size][page]["times_ms"] = []
        for _ in range(ROUNDS):
            for size in SIZES:
                for page, times in ask(size, "round").items():
                    measured[size][page]["times_ms"] += times
    finally:
        for server in servers.values():
            server.stdin.close()
            server.wait(timeout=60)
    for size in SIZES:
        for page in measured[size].values():
            page["p50_ms"] = percentile(page["times_ms"], 50)

    small, large = measured["10k"], measured["1m"]
    rows = []
    for page in small:
        s, m = small[page], large[page]
        say(f"{page}: {s['queries']} queries at 10 k, {m['queries']} at 1 M; "
            f"p50 {s['p50_ms']:.1f} ms at 10 k, {m['p50_ms']:.1f} ms at 1 M")  # fmt: skip
        rows.append(Row(
            "staff pages", f"{page}: queries (10 k vs 1 M)", baseline=s["queries"],
            ours=m["queries"], budget=f"<= {QUERY_BUDGET}, equal",
            passed=m["queries"] <= QUERY_BUDGET and m["queries"] == s["queries"],
        ))  # fmt: skip
        growth = m["p50_ms"] / s["p50_ms"]
        rows.append(Row(
            "staff pages", f"{page}: p50 ms (10 k vs 1 M)", baseline=s["p50_ms"],
            ours=m["p50_ms"], unit="ms",
            budget=f"p50 <= {P50_BUDGET_MS} ms, ratio <= {GROWTH_BUDGET:g}",
            passed=m["p50_ms"] <= P50_BUDGET_MS and growth <= GROWTH_BUDGET,
        ))  # fmt: skip
    write_results("staff_pages", rows, measured=measured)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2])
    else:
        main()
