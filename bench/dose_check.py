"""The live dose check under load: what the order form POSTs as the prescriber types, against a
trivial signed-in JSON view, both in one gunicorn server (5 sync workers) on PostgreSQL, driven
by wrk on loopback.

Ours is orders/dose-check/ (orders.order_views.DoseCheckView): the sign-in cookie, the CSRF
header, the clinic membership, the JSON read by the serializer, the patient of the clinic, every
dose rule against the patient's record and open orders, the directions, the quantity, the
capsule lines and the refill plan. Each request carries the body the order form's script sends
(static/js/order_form.js) once the quantity is filled in: the 1.5 -> 3 -> 4.5 mg capsule
titration for one of ten of the prescriber's patients; every other one already has an open order
of it, so half the checks also warn of duplicate therapy. The baseline (bench/baseline) is what
any signed-in JSON endpoint pays: the same middleware and sign-in, the same body read, a small
JsonResponse.

A success is a 200 whose body is the expected JSON: the check's answer with "ok": true (no
rule refuses the schedule), or the baseline's. Every other answer, and every request without
an answer, is a failure.

Method as bench/submit.py: 10 prescribers sign in over HTTP; wrk runs 10 threads of one
connection each (concurrency 10), every connection sends a fixed number of requests and stops
(bench/dose_check.lua times each request with the monotonic clock). After a warm-up the
baseline and ours alternate, which goes first swapping each round, for ROUNDS runs of REQUESTS
requests each; the percentiles are over every measured request of a side, the throughput is
the requests over the time from the first request to the last answer.

Budgets (a 2-core machine that also runs wrk and PostgreSQL): the dose check's p95 at most
twice the baseline's, so that the check keeps up with typing whatever the machine; no failure.
The throughput, the p50, and the queries of one check in-process are printed for information.

    python -m bench.dose_check              the benchmark
    python -m bench.dose_check --profile    where one check's time goes, in-process (cProfile)
"""

import cProfile
import json
import pstats
import shutil
import sys

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
from .submit import (
    Prescriber,
    Side,
    SignedIn,
    gunicorn,
    prepare,
    sign_in,
    wrk_requests,
)

NAME = "dose_check"
DATABASE = "ldn_bench_dose_check"
SETTINGS = "bench.settings"
REQUESTS = 1000  # per measured run
ROUNDS = 6
WARMUP = 300  # per side, before the measured runs
P95_RATIO_BUDGET = 2.0
PROFILE_CHECKS = 300
PATIENTS_CHECKED = 10  # per prescriber: the first ones of bench.submit's patients
LUA_SCRIPT = ROOT / "bench" / "dose_check.lua"

OURS_PATH = "/orders/dose-check/"
BASELINE_PATH = "/bench/baseline/dose-check/"
# Lua patterns of a success's body (JsonResponse writes ", " and ": ").
OURS_BODY = '^{"ok": true, "findings": %['
BASELINE_BODY = '^{"ok": true, "fields": '


def form_body(patient_pk: int) -> str:
    """What static/js/order_form.js sends for the new-order page's titration once the quantity
    is filled in: the fields as typed (text), the steps parsed, the patient's id."""
    return json.dumps(
        {
            "dosage_form": "capsule",
            "steps": [
                {"dose_mg": "1.5", "days": 14},
                {"dose_mg": "3", "days": 14},
                {"dose_mg": "4.5", "days": 30},
            ],
            "doses_per_day": "1",
            "quantity": "58",
            "days_supply": "58",
            "refills": "2",
            "time_of_day": "bedtime",
            "patient_id": patient_pk,
            "diagnosis_codes": ["M79.7"],
        },
        separators=(",", ":"),  # as JSON.stringify writes it
    )


def open_orders(prescribers: list[Prescriber]) -> int:
    """An open order of the titration for every other patient: their checks read it and warn of
    duplicate therapy, as "order again" does."""
    from orders.models import Patient
    from prescribers.models import Prescriber as PrescriberProfile
    from tests.factories import TITRATION, submit_order

    submitted = 0
    for prescriber in prescribers:
        profile = PrescriberProfile.objects.get(user__email=prescriber.email)
        for pk in prescriber.patient_pks[:PATIENTS_CHECKED:2]:
            submit_order(profile, Patient.objects.get(pk=pk), TITRATION)
            submitted += 1
    return submitted


def in_process_client(prescriber: Prescriber):
    """A test client signed in as `prescriber`, and one check's request for it."""
    from django.test import Client

    from core.models import User

    client = Client()
    client.force_login(User.objects.get(email=prescriber.email))
    bodies = [form_body(pk) for pk in prescriber.patient_pks[:PATIENTS_CHECKED]]

    def check(number: int):
        response = client.post(
            OURS_PATH, bodies[number % len(bodies)], content_type="application/json"
        )
        if response.status_code != 200 or not response.json()["ok"]:
            raise RuntimeError(f"The in-process check failed: {response.status_code}")
        return response

    return check


def in_process_queries(prescriber: Prescriber) -> int:
    """The queries of one check of a patient with an open order, after a first check (which
    also reads the catalogue, kept for the process)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    check = in_process_client(prescriber)
    check(0)
    with CaptureQueriesContext(connection) as queries:
        check(0)
    return len(queries)


def profile(prescriber: Prescriber) -> None:
    """cProfile over PROFILE_CHECKS checks in-process: the functions by cumulative time."""
    check = in_process_client(prescriber)
    for number in range(20):  # warm: the catalogue, the URL resolver, the templates
        check(number)
    profiler = cProfile.Profile()
    profiler.enable()
    for number in range(PROFILE_CHECKS):
        check(number)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stderr).strip_dirs()
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(25)


def drive(
    port: int, signed_in: list[SignedIn], bodies: list[list[str]], *, baseline: bool, requests: int
) -> dict:
    """One wrk run of `requests` checks at concurrency 10; the JSON its done() prints."""
    per_thread = [
        "|".join([s.cookie, s.csrf_token, "\n".join(own)])
        for s, own in zip(signed_in, bodies, strict=True)
    ]
    return wrk_requests(
        port, LUA_SCRIPT, requests, "baseline" if baseline else "ours",
        lambda sink_port: [
            BASELINE_PATH if baseline else OURS_PATH, BASELINE_BODY if baseline else OURS_BODY,
            str(sink_port), *per_thread,
        ],
    )  # fmt: skip


def measure() -> tuple[list[Row], dict]:
    prescribers = prepare()
    say(f"{open_orders(prescribers)} open orders written")
    queries = in_process_queries(prescribers[0])
    say(f"one check in-process: {queries} queries")
    bodies = [
        [form_body(pk) for pk in prescriber.patient_pks[:PATIENTS_CHECKED]]
        for prescriber in prescribers
    ]
    ours, baseline = Side(), Side()
    rounds = []
    with gunicorn(environment(DATABASE, DJANGO_SETTINGS_MODULE=SETTINGS)) as port:
        signed_in = [sign_in(port, prescriber) for prescriber in prescribers]
        say(f"gunicorn on port {port}, {len(signed_in)} prescribers signed in; warming up")
        drive(port, signed_in, bodies, baseline=True, requests=WARMUP)
        drive(port, signed_in, bodies, baseline=False, requests=WARMUP)
        for round_ in range(ROUNDS):
            # Alternate which goes first, so that drift hits both alike.
            p95 = {}
            for is_baseline in (True, False) if round_ % 2 == 0 else (False, True):
                result = drive(port, signed_in, bodies, baseline=is_baseline, requests=REQUESTS)
                (baseline if is_baseline else ours).add(result, REQUESTS)
                side = "baseline" if is_baseline else "ours"
                p95[side] = percentile(result["latencies_ms"], 95)
                say(
                    f"round {round_ + 1} {side}: "
                    f"{result['requests'] / (result['elapsed_ms'] / 1000):.0f} req/s, "
                    f"p50 {percentile(result['latencies_ms'], 50):.1f} ms, "
                    f"p95 {p95[side]:.1f} ms, {result['failures']} failed"
                )
            rounds.append({**p95, "ratio": p95["ours"] / p95["baseline"]})
    ratios = [r["ratio"] for r in rounds]
    say(f"p95 ratio per round: {', '.join(f'{r:.2f}' for r in ratios)}")
    rows = [
        ratio_row(
            NAME,
            "p95 latency (ms), wrk at 10",
            baseline.p(95),
            ours.p(95),
            at_most=P95_RATIO_BUDGET,
            unit="ms",
        ),
        Row(NAME, "p50 latency (ms)", ours.p(50), "-", True, baseline.p(50), "ms"),
        Row(
            NAME,
            "throughput (req/s), gunicorn 5 workers",
            ours.throughput,
            "-",
            True,
            baseline.throughput,
            "req/s",
        ),
        Row(
            NAME,
            "failed (not a 200 with the answer)",
            ours.failures,
            "0",
            ours.failures == 0 and baseline.failures == 0,
            baseline.failures,
            "requests",
        ),
        Row(NAME, "queries per check (in-process)", queries, "-", True, unit="queries"),
    ]
    return rows, {"rounds": rounds}


def main(arguments: list[str]) -> None:
    if shutil.which("wrk") is None and "--profile" not in arguments:
        raise SystemExit("wrk is not installed (make bench installs it: apt-get install wrk).")
    drop_database(DATABASE)
    say("migrating a fresh database")
    setup_django(DATABASE, DJANGO_SETTINGS_MODULE=SETTINGS)
    try:
        if "--profile" in arguments:
            prescribers = prepare()
            open_orders(prescribers)
            profile(prescribers[0])
            return
        rows, details = measure()
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(DATABASE)
    write_results(NAME, rows, **details)


if __name__ == "__main__":
    main(sys.argv[1:])
