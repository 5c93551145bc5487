"""Staff pages at scale: the admin's order list (unfiltered, filtered by status, searched by
order number), the admin's order page, the admin's index (the pharmacy's dashboard), the
prescriber's order list of a clinic with 5 % of all orders, and the partner API's lists of that
clinic's orders and patients (with an API key of the clinic), on 1 million orders against the
same pages on 10 thousand: the baseline is the small history, measured in the same run.

Budgets, per page: the same number of queries at both sizes (the "equal" rows: a page whose
queries grow with the history fails, whichever way), and p50 at 1 M at most twice p50 at 10 k.

Counting is deterministic. A few things a request does only once in a while, by design:
- the session's last-seen time is written (BEGIN, UPDATE django_session, COMMIT) when it is
  older than a sixtieth of the idle limit: once in 15 s for staff, 30 s for prescribers
  (core/sessions.py);
- a process reads the catalogue again (two queries) when its copy is 30 s old
  (orders.checks.Catalogue.current; the admin's order page reads it for the bottles' BUD);
- the dashboard's figures are computed again (six queries) when the cached ones are a minute
  old (pharmacy/dashboard.py);
- an API key's last use is written (one UPDATE) when it is a minute old (prescribers/api_keys.py).
Just before each page is counted, the benchmark makes all four fresh (writes the session's
last-seen time, reads the catalogue and computes the figures, writes the key's last use), and
the count is kept only when the request ended well inside the shortest of those intervals: the
count is the page's own steady-state queries, on every run. Each piece of that work is then
counted on its own, made due on purpose on the page that carries it, and must also be the same
at both sizes (the "with ..." rows; their extra SQL goes to var/bench/staff_pages.json).

Timing takes every request as it comes, the occasional periodic work included (once a minute
among 48 requests does not move a p50). Each size is its own PostgreSQL database, built once
(bench/dataset.py) and reused while it holds the expected number of orders; each is measured
in a process of its own (Django binds one database per process), in alternating rounds. Pages
are requested through Django's test client, so every middleware, the session, the second
factor, the API key and the permission checks run as for a browser or a clinic's system.
"""

import datetime
import difflib
import json
import re
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
    ratio_row,
    say,
    setup_django,
    write_results,
)
from .dataset import COMPLETE, build

SIZES = {"10k": 10_000, "1m": 1_000_000}
ROUNDS = 6
ROUND_REQUESTS = 8  # per page and round: 48 requests of each page at each size
GROWTH_BUDGET = 2.0  # p50 at 1 M / p50 at 10 k
COUNT_ATTEMPTS = 3
API_KEY_NAME = "Staff-pages benchmark"
# The periodic work counted on its own: (what, the page that carries it).
PERIODIC = {
    "session's last-seen time written": "admin order list",
    "catalogue read again": "admin order page",
    "figures computed again": "admin index (dashboard)",
    "API key's last use written": "partner API: order list",
}


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
        "partner API: order list": ("api", reverse("api-order-list")),
        "partner API: patient list": ("api", reverse("api-patient-list")),
    }


def bench_api_key(prescriber) -> str:
    """A new key of the prescriber's clinic (clinic 1) owned by them; the one of the run
    before is revoked (a key is shown once, so each run makes its own)."""
    from prescribers.api_keys import api_key_create, api_key_revoke
    from prescribers.models import ApiKey, Clinic

    earlier = ApiKey.objects.filter(clinic_id=1, name=API_KEY_NAME, revoked_at__isnull=True)
    for key in earlier:
        api_key_revoke(key=key, actor=prescriber.user)
    _, raw = api_key_create(
        clinic=Clinic.objects.get(pk=1), actor=prescriber.user, name=API_KEY_NAME
    )
    return raw


class PeriodicWork:
    """What a request does at most once in a while (see the module's docstring), made fresh
    before a steady-state count, or due on purpose to count it on its own."""

    def __init__(self, browsers: dict, api_prefix: str):
        from core.sessions import PRESCRIBER, STAFF, activity_resolution
        from orders.checks import CATALOGUE_MAX_AGE
        from pharmacy.dashboard import CACHE_SECONDS
        from prescribers.api_keys import LAST_USED_PRECISION

        self.browsers = browsers  # role -> a signed-in test client
        self.api_prefix = api_prefix
        self.resolution = {
            "pharmacist": activity_resolution(STAFF),
            "prescriber": activity_resolution(PRESCRIBER),
        }
        # Every interval is compared in whole seconds at worst (the session's times are),
        # hence a second less.
        self.fresh_for = (
            min(
                *self.resolution.values(),
                CATALOGUE_MAX_AGE,
                CACHE_SECONDS,
                LAST_USED_PRECISION.total_seconds(),
            )
            - 1
        )
        self.made_fresh_at = 0.0

    def make_fresh(self) -> None:
        from django.core.cache import cache
        from django.utils import timezone

        from core.sessions import LAST_SEEN
        from orders.checks import Catalogue
        from pharmacy.dashboard import CACHE_KEY, dashboard_cached
        from prescribers.models import ApiKey

        self.made_fresh_at = time.monotonic()
        now = int(time.time())
        for client in self.browsers.values():
            session = client.session
            session[LAST_SEEN] = now
            session.save()
        Catalogue.forget()
        Catalogue.current()
        cache.delete(CACHE_KEY)
        dashboard_cached()
        ApiKey.objects.filter(prefix=self.api_prefix).update(last_used_at=timezone.now())

    def still_fresh(self) -> bool:
        return time.monotonic() - self.made_fresh_at < self.fresh_for

    def make_due(self, work: str) -> None:
        """After make_fresh: this one piece of work is due at the next request."""
        from django.core.cache import cache
        from django.utils import timezone

        from core.sessions import LAST_SEEN
        from orders.checks import Catalogue
        from pharmacy.dashboard import CACHE_KEY
        from prescribers.api_keys import LAST_USED_PRECISION
        from prescribers.models import ApiKey

        if work == "session's last-seen time written":
            client = self.browsers["pharmacist"]
            session = client.session
            session[LAST_SEEN] = int(time.time()) - self.resolution["pharmacist"]
            session.save()
        elif work == "catalogue read again":
            Catalogue.forget()
        elif work == "figures computed again":
            cache.delete(CACHE_KEY)
        elif work == "API key's last use written":
            long_ago = timezone.now() - 2 * LAST_USED_PRECISION
            ApiKey.objects.filter(prefix=self.api_prefix).update(last_used_at=long_ago)
        else:
            raise ValueError(work)


def counted_sql(periodic: PeriodicWork, client, url, *, due: str | None = None) -> list[str]:
    """The SQL of one request made with all periodic work fresh (but `due`), kept when the
    request ended while the rest was still fresh."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(COUNT_ATTEMPTS):
        periodic.make_fresh()
        if due:
            periodic.make_due(due)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        if periodic.still_fresh():
            return [query["sql"] for query in captured.captured_queries]
    raise RuntimeError(f"{url}: no request ended within {periodic.fresh_for:g} s of the reset")


def _shape(sql: str) -> str:
    """The statement without its literals (a session's expiry time differs at each request)."""
    return re.sub(r"'(?:[^']|'')*'", "?", sql)


def extra_sql(steady: list[str], forced: list[str]) -> list[str]:
    """The statements of `forced` that the steady-state request did not make."""
    matcher = difflib.SequenceMatcher(
        a=[_shape(sql) for sql in steady], b=[_shape(sql) for sql in forced], autojunk=False
    )
    return [
        forced[index][:400]
        for tag, _, _, low, high in matcher.get_opcodes()
        if tag in ("insert", "replace")
        for index in range(low, high)
    ]


def serve(size: str) -> None:
    """Runs in its own process: answers the parent's requests on stdin, one JSON line each.
    "queries": the steady-state query count and SQL of every page, and each periodic piece of
    work counted on its own; "round": ROUND_REQUESTS timings of every page. The parent
    alternates rounds between the sizes, so drift on the machine hits both."""
    setup_django(database(size))
    from django.contrib.auth.models import Group
    from django.test import Client

    from core.models import User
    from prescribers.models import Prescriber
    from tests.api_clients import api_client
    from tests.signing_in import verified_staff_login

    pharmacist, created = User.objects.get_or_create(
        email="pharmacist@bench.invalid",
        defaults={"first_name": "Bench", "last_name": "Pharmacist", "is_staff": True},
    )
    if created:
        pharmacist.groups.add(Group.objects.get(name="Pharmacist"))
    browsers = {"pharmacist": Client(), "prescriber": Client()}
    verified_staff_login(browsers["pharmacist"], pharmacist)  # password and second factor
    prescriber = Prescriber.objects.filter(user__memberships__clinic_id=1).first()  # of clinic 1
    browsers["prescriber"].force_login(prescriber.user)
    raw_key = bench_api_key(prescriber)
    clients = {**browsers, "api": api_client(raw_key)}
    periodic = PeriodicWork(browsers, api_prefix=raw_key.partition(".")[0])
    urls = {page: (clients[who], url) for page, (who, url) in pages(size).items()}
    for client, url in urls.values():
        for _ in range(3):  # warm: templates compiled, content types cached, pages in memory
            assert client.get(url).status_code == 200, url

    for command in sys.stdin:
        if command.strip() == "queries":
            answer = {"pages": {}, "periodic": {}}
            for page, (client, url) in urls.items():
                sql = counted_sql(periodic, client, url)
                answer["pages"][page] = {"url": url, "queries": len(sql), "sql": sql}
            for work, page in PERIODIC.items():
                client, url = urls[page]
                sql = counted_sql(periodic, client, url, due=work)
                steady = answer["pages"][page]["sql"]
                answer["periodic"][work] = {
                    "page": page,
                    "queries": len(sql),
                    "extra_sql": extra_sql(steady, sql),
                }
            for page in answer["pages"].values():
                page["sql"] = [sql[:400] for sql in page["sql"]]
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


def equal_counts(measure: str, small: int, large: int) -> Row:
    """Queries at 1 M against 10 k: equal passes, more or fewer fails."""
    measure = f"{measure}: queries (10 k vs 1 M)"
    return Row("staff pages", measure, large, "equal", large == small, baseline=small)


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
            for page in measured[size]["pages"].values():
                page["times_ms"] = []
        for _ in range(ROUNDS):
            for size in SIZES:
                for page, times in ask(size, "round").items():
                    measured[size]["pages"][page]["times_ms"] += times
    finally:
        for server in servers.values():
            server.stdin.close()
            server.wait(timeout=60)
    for size in SIZES:
        for page in measured[size]["pages"].values():
            page["p50_ms"] = percentile(page["times_ms"], 50)

    small, large = measured["10k"], measured["1m"]
    rows = []
    for page, s in small["pages"].items():
        m = large["pages"][page]
        say(f"{page}: {s['queries']} queries at 10 k, {m['queries']} at 1 M; "
            f"p50 {s['p50_ms']:.1f} ms at 10 k, {m['p50_ms']:.1f} ms at 1 M")  # fmt: skip
        rows.append(equal_counts(page, s["queries"], m["queries"]))
        measure = f"{page}: p50 ms (10 k vs 1 M)"
        baseline, ours = s["p50_ms"], m["p50_ms"]
        rows.append(
            ratio_row("staff pages", measure, baseline, ours, at_most=GROWTH_BUDGET, unit="ms")
        )
    for work, s in small["periodic"].items():
        m = large["periodic"][work]
        say(f"{s['page']} with the {work}: {s['queries']} queries at 10 k, {m['queries']} at 1 M")
        rows.append(equal_counts(f"{s['page']}, with the {work}", s["queries"], m["queries"]))
    write_results("staff_pages", rows, measured=measured)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2])
    else:
        main()
