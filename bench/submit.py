"""Order submit under load: the prescriber's real new-order POST and the partner API's order
creation against a minimal Django submit, all three in one gunicorn server (5 sync workers) on
PostgreSQL, driven by wrk on loopback.

The order form is the new-order page (orders.order_views.OrderCreateView): the sign-in cookie,
the CSRF check, the form, every dose rule, the prescription with its steps and lines, the
order, its event and the history rows. The API is POST /api/v1/orders/ with a clinic's key
that signs (orders.api.OrderViewSet.create): the key checked, the JSON read, the same service
and rules, and what the API adds: the Idempotency-Key's kept answer, the access event of the
order shown, and the order as JSON. The baseline (bench/baseline) is what any Django submit
pays: the same sign-in and CSRF check, a small form validated and three rows inserted in one
transaction, then a redirect like the form's.

A success is the 302 of the Post/Redirect/Get pattern to the new record's page (/orders/<pk>/
for the form, /bench/baseline/<pk>/ for the baseline), which wrk does not follow, or the API's
201 with the new order's address. Every other answer, and every request without an answer, is
a failure.

wrk runs 10 threads of one connection each (concurrency 10); every connection sends a fixed
number of requests and stops (bench/submit.lua). Each request carries a fresh idempotency key
(ab would repeat one body, so every submit after the first would only find the first order),
and the sign-in cookie and CSRF token, or the API key, of one of 10 prescribers, who signed in
over HTTP. The prescribers' patients are many enough that each has a few open orders, as
patients do, not dozens. After a warm-up, the three sides take turns (the one that goes first
rotates) for ROUNDS runs of REQUESTS requests each; a throughput is the requests over the time
from the first request to the last answer, the latencies are each request's own. Afterwards the
database must hold exactly one order per form or API request, each with its event and history
rows, one kept answer per API request, and the baseline's rows.

Budgets, each a ratio measured in this run (for a 2-core machine that also runs wrk and
PostgreSQL, where absolute times move with the machine's other work): the order form's
throughput at least half the baseline's and its p99 at most 2.5 times the baseline's (the
form runs every dose rule and writes about four times the rows); the API's throughput at
least the order form's (a clinic's system ordering should cost no more than a prescriber's
form); no failure. The in-process query count of one form submit is printed too;
tests/orders/test_submit_queries.py pins it.

    python -m bench.submit
"""

import contextlib
import datetime
import http.client
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

from .common import (
    ROOT,
    Row,
    drop_database,
    environment,
    percentile,
    ratio_row,
    say,
    setup_django,
    write_results,
)

NAME = "submit"
DATABASE = "ldn_bench_submit"
SETTINGS = "bench.settings"
WORKERS = 5
CONNECTIONS = 10  # wrk threads, one connection each
REQUESTS = 500  # per measured run
ROUNDS = 6
WARMUP = 200  # per side, before the measured runs
PRESCRIBERS = 10  # one per connection
# Per prescriber. The order form and the API each place about 3,200 orders over the patients,
# so a patient has about 6 open orders at the end (the duplicate-therapy rule reads them all):
# with 10 patients each had about 65, which no patient has, and every submit got slower as
# the run went on.
PATIENTS = 100
THROUGHPUT_AT_LEAST = 0.5  # ours / the baseline's
P99_AT_MOST = 2.5  # ours / the baseline's
API_AT_LEAST = 1.0  # the API's throughput / the order form's
WRK_LIMIT_S = 120  # a run not done by then stops the benchmark with an error
START_LIMIT_S = 180  # gunicorn must answer within this (five workers importing on busy cores)
LUA_SCRIPT = Path(__file__).with_name("submit.lua")

OURS_LOCATION = "^/orders/%d+/$"
BASELINE_LOCATION = "^/bench/baseline/%d+/$"
API_LOCATION = "/api/v1/orders/%d+/$"  # an absolute address
BASELINE_PATH = "/bench/baseline/"

BASELINE_FORM = {"note": "Low-dose naltrexone 1.5 mg capsules", "quantity": "58"}
# Each patient gets many identical orders: from the second on, the rules warn of duplicate
# therapy, and the prescriber confirms it with a reason (a tick for a warning not raised, on a
# patient's first order, is ignored).
DUPLICATE_CONFIRMED = {
    "acknowledge": "duplicate.open_order@patient.orders",
    "reason": "Benchmark: another order on purpose.",
}
# The same prescription as the form's (tests.factories.order_form), as a clinic's system sends
# it to the partner API; the warning it confirms has the same key.
API_ORDER = {
    "patient_id": 0,  # each request's patient, put in by bench/submit.lua
    "dosage_form": "capsule",
    "steps": [{"dose_mg": "1.5", "days": 14}, {"dose_mg": "3", "days": 14},
              {"dose_mg": "4.5", "days": 30}],
    "doses_per_day": 1,
    "time_of_day": "bedtime",
    "quantity": "58",
    "days_supply": 58,
    "refills": 2,
    "diagnosis_codes": ["M79.7"],
    "reason_for_compounding": "Strength not commercially available.",
    "ship_to": "clinic",
    "acknowledged": [DUPLICATE_CONFIRMED["acknowledge"]],
    "reason": DUPLICATE_CONFIRMED["reason"],
}  # fmt: skip
BASELINE, FORM, API = "baseline", "order form", "API"


@dataclass
class Prescriber:
    email: str
    patient_pks: list[int]


@dataclass
class SignedIn:
    cookie: str  # the Cookie header: the sign-in and CSRF cookies
    csrf_token: str
    order_paths: list[str]


def prepare() -> list[Prescriber]:
    """Approved prescribers, each of a clinic of their own with patients that no rule refuses."""
    from tests.factories import (
        ClinicFactory,
        PatientFactory,
        PrescriberFactory,
        approve_the_catalogue,
        clinic_of,
    )

    approve_the_catalogue()  # what the pharmacy makes: an approved record of every product
    prescribers = []
    for _ in range(PRESCRIBERS):
        prescriber = PrescriberFactory(clinic=ClinicFactory())
        patients = PatientFactory.create_batch(
            PATIENTS, clinic=clinic_of(prescriber), created_by=prescriber.user,
            date_of_birth=datetime.date(1975, 3, 9), takes_opioids=False,
            current_medications="Vitamin D 1000 IU daily",
        )  # fmt: skip
        prescribers.append(Prescriber(prescriber.user.email, [p.pk for p in patients]))
    return prescribers


def api_keys(prescribers: list[Prescriber]) -> list[str]:
    """A key that signs, for each prescriber's clinic: its orders reach the pharmacy as the
    form's do (a key that does not sign makes drafts)."""
    from core.models import User
    from prescribers.api_keys import api_key_create
    from tests.factories import TEST_PASSWORD, clinic_of

    keys = []
    for prescriber in prescribers:
        user = User.objects.get(email=prescriber.email)
        _, raw = api_key_create(
            clinic=clinic_of(user.prescriber), actor=user, name="Benchmark EHR", can_sign=True,
            password=TEST_PASSWORD,
        )  # fmt: skip
        keys.append(raw)
    return keys


def in_process_queries(prescriber: Prescriber) -> int:
    """The queries of one submit through Django's test client, as the pinning test counts them:
    the second submit of the process (the first also reads the catalogue, which is kept)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from core.models import User
    from tests.factories import order_form

    client = Client()
    client.force_login(User.objects.get(email=prescriber.email))
    url = reverse("order_create", args=[prescriber.patient_pks[0]])
    client.post(url, order_form(idempotency_key=str(uuid.uuid4()), **DUPLICATE_CONFIRMED))
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            url, order_form(idempotency_key=str(uuid.uuid4()), **DUPLICATE_CONFIRMED)
        )
    if response.status_code != 302 or not re.match(r"^/orders/\d+/$", response["Location"]):
        raise RuntimeError(f"The in-process submit failed: {response.status_code}")
    return len(queries)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def gunicorn(env: dict[str, str]) -> Iterator[int]:
    """The portal under gunicorn with sync workers on a free loopback port; stopped on exit."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi:application",
             "--workers", str(WORKERS), "--worker-class", "sync",
             "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + START_LIMIT_S
            while True:
                if server.poll() is not None:
                    raise RuntimeError("gunicorn exited before it answered")
                with contextlib.suppress(OSError):
                    if fetch(port, "GET", "/accounts/login/")[0] == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not answer within {START_LIMIT_S} s")
                time.sleep(0.2)
            yield port
        except BaseException:
            log.seek(0)
            say("gunicorn said:\n" + log.read().decode(errors="replace")[-4000:])
            raise
        finally:
            server.send_signal(signal.SIGTERM)  # graceful: the workers finish their request
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def fetch(port: int, method: str, path: str, body: dict | None = None, cookies=None):
    """One request; returns the status, the response headers and the body text. Cookies that
    the answer sets go into `cookies` (a dict)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {}
    if cookies:
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        connection.request(method, path, urlencode(body) if body is not None else None, headers)
        response = connection.getresponse()
        text = response.read().decode(errors="replace")
    finally:
        connection.close()
    if cookies is not None:
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                cookies[name] = morsel.value
    return response.status, response.headers, text


def csrf_token(page: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if found is None:
        raise RuntimeError("The page has no CSRF token.")
    return found.group(1)


def sign_in(port: int, prescriber: Prescriber) -> SignedIn:
    """Sign in on the login page as a browser does, then open the new-order page."""
    from tests.factories import TEST_PASSWORD

    cookies: dict[str, str] = {}
    status, _, page = fetch(port, "GET", "/accounts/login/", cookies=cookies)
    form = {"csrfmiddlewaretoken": csrf_token(page), "username": prescriber.email,
            "password": TEST_PASSWORD}  # fmt: skip
    status, _, _ = fetch(port, "POST", "/accounts/login/", form, cookies)
    if status != 302 or "sessionid" not in cookies:
        raise RuntimeError(f"Signing in as {prescriber.email} failed ({status}).")
    paths = [f"/patients/{pk}/orders/new/" for pk in prescriber.patient_pks]
    status, _, page = fetch(port, "GET", paths[0], cookies=cookies)
    if status != 200:
        raise RuntimeError(f"The new-order page answered {status}.")
    cookie = "; ".join(f"{name}={cookies[name]}" for name in ("sessionid", "csrftoken"))
    return SignedIn(cookie, csrf_token(page), paths)


@contextlib.contextmanager
def sink() -> Iterator[int]:
    """A loopback port that accepts connections and never reads them (see bench/submit.lua)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(CONNECTIONS * 4)
        yield listener.getsockname()[1]


def form_clients(signed_in: list[SignedIn], *, baseline: bool) -> list[str]:
    """bench/submit.lua's CLIENT argument of each thread: the baseline's or the order form's
    POST, with the sign-in cookie and CSRF token of one prescriber."""
    from tests.factories import order_form

    form = BASELINE_FORM if baseline else order_form(**DUPLICATE_CONFIRMED)
    return [
        "|".join(["form", s.cookie, urlencode({**form, "csrfmiddlewaretoken": s.csrf_token}),
                  ",".join([BASELINE_PATH] if baseline else s.order_paths)])
        for s in signed_in
    ]  # fmt: skip


def api_clients(prescribers: list[Prescriber], keys: list[str]) -> list[str]:
    """CLIENT of each thread for the partner API: one clinic's key and its patients."""
    body = json.dumps({**API_ORDER, "patient_id": "PATIENT_ID"}).replace(
        '"PATIENT_ID"', "PATIENT_ID"
    )
    return [
        "|".join(["api", key, body, ",".join(str(pk) for pk in prescriber.patient_pks)])
        for prescriber, key in zip(prescribers, keys, strict=True)
    ]


EXPECTED = {  # a success: its status and the Location it answers with
    BASELINE: (302, BASELINE_LOCATION),
    FORM: (302, OURS_LOCATION),
    API: (201, API_LOCATION),
}


def drive(port: int, clients: list[str], *, side: str, requests: int) -> dict:
    """One wrk run of `requests` submits at concurrency 10; the JSON its done() prints."""
    status, location = EXPECTED[side]
    return wrk_requests(
        port, LUA_SCRIPT, requests, side,
        lambda sink_port: [uuid.uuid4().hex[:20], str(status), location, str(sink_port), *clients],
    )  # fmt: skip


def wrk_requests(port: int, script: Path, requests: int, side: str, arguments) -> dict:
    """wrk with `script`, one connection per thread (CONNECTIONS of them), each sending its
    share of `requests` and then pointed at a sink; the script's arguments are the requests per
    connection and `arguments(sink_port)`. Returns the JSON the script's done() prints, with
    "failures": every answer not a success and every request without an answer."""
    with sink() as sink_port:
        command = [
            shutil.which("wrk") or "wrk", "--threads", str(CONNECTIONS),
            "--connections", str(CONNECTIONS), "--duration", f"{WRK_LIMIT_S}s",
            "--timeout", "10s", "--script", str(script), f"http://127.0.0.1:{port}", "--",
            str(requests // CONNECTIONS), *arguments(sink_port),
        ]  # fmt: skip
        finished, out, said = run_wrk(command)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"wrk printed no result:\n{out}\n{''.join(said)}")
    result = json.loads(lines[-1])
    if finished != CONNECTIONS:
        raise RuntimeError(
            f"wrk did not get its {requests} answers within {WRK_LIMIT_S} s "
            f"({result['requests']} answered)"
        )
    # A request without an answer (a socket error) is a failure too.
    result["failures"] = requests - result["ok"] + result["socket_errors"]
    if result["failures"]:
        say(f"{side}: {result['failures']} failures, statuses "
            f"{result['statuses']}, socket errors {result['socket_errors']}, first: "
            f"{result['first_failure'][:300]!r}")  # fmt: skip
    return result


def run_wrk(command: list[str]) -> tuple[int, str, list[str]]:
    """Run wrk until every thread has said it is done, then interrupt its wait for --duration.
    Returns the number of threads done, what it printed, and its other messages."""
    wrk = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    finished, said = 0, []
    try:
        for line in wrk.stderr:
            if line.strip() == "thread-done":
                finished += 1
                if finished == CONNECTIONS:
                    wrk.send_signal(signal.SIGINT)
                    break
            else:
                said.append(line)
        out, err = wrk.communicate(timeout=60)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    return finished, out, [*said, err]


@dataclass
class Side:
    """The measured runs of ours or of the baseline, together."""

    requests: int = 0
    failures: int = 0
    elapsed_ms: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def add(self, result: dict, requests: int) -> None:
        self.requests += requests
        self.failures += result["failures"]
        self.elapsed_ms += result["elapsed_ms"]
        self.latencies += result["latencies_ms"]

    @property
    def throughput(self) -> float:
        return self.requests / (self.elapsed_ms / 1000) if self.elapsed_ms else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)


def written(api_requests: int) -> dict[str, tuple[float, int]]:
    """What the submits wrote, against what they should have: each order (the form's and the
    API's) with one event and one history row, its prescription with history, three steps and
    four lines (one per strength of the titration, and the maintenance refill's); each API
    order sent with its key (the event says so) and its answer kept for a retry; each baseline
    submit its three rows."""
    from bench.baseline.models import BaselineEvent, BaselineLine, BaselineOrder
    from orders.models import Order, OrderEvent, Prescription, PrescriptionLine, PrescriptionStep
    from prescribers.models import IdempotentRequest

    form_requests = WARMUP + ROUNDS * REQUESTS
    orders = 2 + form_requests + api_requests  # the in-process submits, the warm-up, the runs
    baselines = WARMUP + ROUNDS * REQUESTS
    return {
        "orders": (Order.objects.count(), orders),
        "idempotency keys": (Order.objects.values("idempotency_key").distinct().count(), orders),
        "order events": (OrderEvent.objects.count(), orders),
        "order history": (Order.history.count(), orders),
        "prescriptions": (Prescription.objects.count(), orders),
        "prescription history": (Prescription.history.count(), orders),
        "steps / 3": (PrescriptionStep.objects.count() / 3, orders),
        "lines / 4": (PrescriptionLine.objects.count() / 4, orders),
        "API orders (events sent with a key)": (
            OrderEvent.objects.filter(parameters__has_key="via").count(),
            api_requests,
        ),
        "API answers kept (201)": (
            IdempotentRequest.objects.filter(status_code=201).count(),
            api_requests,
        ),
        "API answers, all": (IdempotentRequest.objects.count(), api_requests),
        "baseline orders": (BaselineOrder.objects.count(), baselines),
        "baseline lines": (BaselineLine.objects.count(), baselines),
        "baseline events": (BaselineEvent.objects.count(), baselines),
    }


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (make bench installs it: apt-get install wrk).")
    drop_database(DATABASE)
    say("migrating a fresh database")
    setup_django(DATABASE, DJANGO_SETTINGS_MODULE=SETTINGS)
    try:
        rows = measure()
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(DATABASE)
    write_results(NAME, rows)


def measure() -> list[Row]:
    from tests.orders.test_submit_queries import SUBMIT_QUERIES

    prescribers = prepare()
    keys = api_keys(prescribers)
    queries = in_process_queries(prescribers[0])
    say(f"one submit in-process: {queries} queries (pinned {SUBMIT_QUERIES})")
    sides = {BASELINE: Side(), FORM: Side(), API: Side()}
    with gunicorn(environment(DATABASE, DJANGO_SETTINGS_MODULE=SETTINGS)) as port:
        signed_in = [sign_in(port, prescriber) for prescriber in prescribers]
        clients = {
            BASELINE: form_clients(signed_in, baseline=True),
            FORM: form_clients(signed_in, baseline=False),
            API: api_clients(prescribers, keys),
        }
        say(f"gunicorn on port {port}, {len(signed_in)} prescribers signed in; warming up")
        for side in sides:
            drive(port, clients[side], side=side, requests=WARMUP)
        order = list(sides)
        for round_ in range(ROUNDS):
            # Rotate which goes first, so that drift hits all three alike.
            for side in order[round_ % 3 :] + order[: round_ % 3]:
                result = drive(port, clients[side], side=side, requests=REQUESTS)
                sides[side].add(result, REQUESTS)
                say(f"round {round_ + 1} {side}: "
                    f"{REQUESTS / (result['elapsed_ms'] / 1000):.0f} req/s, "
                    f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
                    f"{result['failures']} failed")  # fmt: skip

    counts = written(api_requests=WARMUP + ROUNDS * REQUESTS)
    wrong = {what: count for what, (count, expected) in counts.items() if count != expected}
    say(f"written: {', '.join(f'{what} {count:g}' for what, (count, _) in counts.items())}")
    if wrong:
        say(f"NOT as expected: {wrong}")
    orders, expected_orders = counts["orders"]
    baseline, form, api = sides[BASELINE], sides[FORM], sides[API]
    failed = form.failures + api.failures
    return [
        ratio_row(NAME, "throughput (req/s): order form / baseline", baseline.throughput,
                  form.throughput, at_least=THROUGHPUT_AT_LEAST, unit="req/s"),
        Row(NAME, "p50 latency (ms): order form / baseline", form.p(50), "-", True,
            baseline.p(50), "ms"),
        ratio_row(NAME, "p99 latency (ms): order form / baseline", baseline.p(99), form.p(99),
                  at_most=P99_AT_MOST, unit="ms"),
        ratio_row(NAME, "API throughput (req/s): API / order form", form.throughput,
                  api.throughput, at_least=API_AT_LEAST, unit="req/s"),
        Row(NAME, "API p99 latency (ms): API / order form", api.p(99), "-", True, form.p(99),
            "ms"),
        Row(NAME, "failed (order form and API; not the 302 / 201)", failed, "0",
            failed == 0 and baseline.failures == 0, baseline.failures, "requests"),
        Row(NAME, "orders written (1 per submit)", orders, f"= {expected_orders}, each whole",
            not wrong, unit="orders"),
        Row(NAME, "queries per form submit (its test pins them)", queries, "-", True,
            unit="queries"),
    ]  # fmt: skip


if __name__ == "__main__":
    main()
