"""Label pipeline end to end: orders made ready, labels rendered and mailed by a real Celery worker.

A `celery -A config worker --concurrency=2` process on Redis serves the queues the settings
route to (default, render, mail); an SMTP server on loopback (aiosmtpd, in this process) takes
the mail; PostgreSQL holds the data. Orders become ready through the real service
(orders.services.order_final_check): it writes the outbox row, and after commit the label is
rendered on the render queue and mailed from the mail queue.

(a) Throughput: 1,000 orders made ready one after another, each in its own transaction; labelled
    emails per second from the first commit until the 1,000th message is received. Baseline:
    the same worker and server sending 1,000 emails of the same size, the PDF already rendered
    (an outbox row per order whose label exists, sent from the mail queue): what rendering costs.
(b) Latency: 50 orders made ready at once (one transaction, so their tasks are queued together);
    p95 of (time the SMTP server received the message - time the final check committed), both
    taken in this process.

    python -m bench.pipeline
"""

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from email import message_from_bytes, policy
from email.utils import make_msgid
from pathlib import Path

from .common import (
    REDIS_URL,
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

NAME = "pipeline"
DATABASE = "ldn_bench_pipeline"
TEMPLATE = "ldn_bench_pipeline_orders"  # orders not yet ready: each run's database is a copy
THROUGHPUT_ORDERS = 1000
LATENCY_ORDERS = 50
WARMUP_ORDERS = 10
RATE_BUDGET = 50.0  # emails per second, at least
P95_BUDGET_S = 2.0
WAIT_LIMIT = 150  # seconds for one phase's mail to arrive


class TimedSmtpSink:
    """An SMTP server on loopback that notes when each message arrived (perf_counter, this
    process's clock, the same as the commit times); messages are parsed after the run."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.received: list[tuple[float, bytes]] = []
        self.running = False
        self._arrived = threading.Condition()
        with socket.socket() as probe:  # a free port on loopback
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        arrived = time.perf_counter()
        with self._arrived:
            self.received.append((arrived, envelope.original_content))
            self._arrived.notify_all()
        return "250 Message accepted for delivery"

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self):
        self._controller.start()
        self.running = True

    def stop(self):
        if self.running:
            self._controller.stop()
            self.running = False

    def take(self, count: int, timeout: float) -> list[tuple[float, bytes]]:
        """Wait for `count` messages, then hand them over (the next phase starts empty)."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.received) >= count, timeout=timeout)
            taken, self.received = self.received, []
        if len(taken) < count:
            raise RuntimeError(f"only {len(taken)} of {count} messages arrived in {timeout} s")
        return taken


def _die_with_parent():
    """In the worker: stop when the benchmark process dies, even by SIGKILL (Linux). Runs
    between fork and exec, so the worker is started while this process has no other thread."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Worker:
    """`celery -A config worker --concurrency=2` on the queues the settings route to."""

    def __init__(self, env: dict[str, str], log: Path):
        self.env, self.log = env, log
        self.process = self._log_file = None

    def start(self):
        self._log_file = self.log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--concurrency=2",
             "--queues=default,render,mail", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "--loglevel=WARNING", f"--hostname=bench-{os.getpid()}@%h"],
            cwd=ROOT, env=self.env, stdout=self._log_file, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )  # fmt: skip

    def check(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"the worker stopped:\n{self.log.read_text()[-3000:]}")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()  # warm shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log_file:
            self._log_file.close()


def prepared_orders(total: int) -> tuple[list, object]:
    """`total` verified, dispensed orders waiting for their final check, and a pharmacist.

    Orders are made ready once, so each run works on a new database: a copy of the one kept
    from an earlier run, with its orders not yet ready (TEMPLATE; setup_django has applied any
    newer migration to the copy). When there is none, or it holds too few orders, the orders
    are made in a new database, which is then kept as the copy for the next runs."""
    from django.core.management import call_command
    from django.db import connections

    from core.models import User
    from orders.models import Order, OrderStatus
    from tests.factories import StaffFactory

    from .labels import compounded_orders

    def found() -> tuple[list, object]:
        orders = Order.objects.filter(status=OrderStatus.COMPOUNDING, dispenses__isnull=False)
        orders = list(orders.select_related("clinic").distinct().order_by("pk")[:total])
        return orders, User.objects.filter(groups__name="Pharmacist").first()

    orders, pharmacist = found()
    if len(orders) == total and pharmacist is not None:
        return orders, pharmacist
    started = time.perf_counter()
    connections.close_all()
    drop_database(TEMPLATE)
    if User.objects.exists():  # a copy with too few orders: start from an empty database
        connections.close_all()
        drop_database(DATABASE)
        create_database(DATABASE)
        call_command("migrate", verbosity=0, interactive=False)
    compounded_orders(total)
    StaffFactory(group="Pharmacist")
    connections.close_all()  # a database is copied only when no one is connected to it
    _copy_database(DATABASE, to=TEMPLATE)
    say(f"{total} verified, dispensed orders made in {time.perf_counter() - started:.0f} s")
    return found()


def _copy_database(name: str, *, to: str) -> None:
    """CREATE DATABASE <to> TEMPLATE <name>, when <name> exists and <to> does not."""
    import psycopg

    with psycopg.connect(database_url("postgres"), autocommit=True) as connection:
        found = {
            row[0]
            for row in connection.execute(
                "SELECT datname FROM pg_database WHERE datname IN (%s, %s)", [name, to]
            )
        }
        if name in found and to not in found:
            connection.execute(f'CREATE DATABASE "{to}" TEMPLATE "{name}"')


def make_ready(orders, pharmacist, *, together: bool) -> dict[int, float]:
    """order_final_check for each order; returns each order's commit time. One transaction
    per order, or one for all (`together`); the time is taken by a callback that runs right
    after the commit, before the callbacks that queue the tasks."""
    from django.db import transaction

    from pharmacy.fulfilment import order_final_check
    from pharmacy.labels import label_barcodes

    committed: dict[int, float] = {}

    def note(pks):
        now = time.perf_counter()
        committed.update(dict.fromkeys(pks, now))

    if together:
        with transaction.atomic():
            transaction.on_commit(lambda: note([order.pk for order in orders]))
            for order in orders:
                order_final_check(order=order, actor=pharmacist, scans=label_barcodes(order))
    else:
        for order in orders:
            with transaction.atomic():
                transaction.on_commit(lambda pk=order.pk: note([pk]))
                order_final_check(order=order, actor=pharmacist, scans=label_barcodes(order))
    return committed


def labelled(messages: list[tuple[float, bytes]]) -> dict[str, float]:
    """Order number -> arrival time; checks one message per order, each with its label PDF."""
    arrivals: dict[str, float] = {}
    for arrived, raw in messages:
        message = message_from_bytes(raw, policy=policy.default)
        number = message["Subject"].rsplit(" ", 1)[-1]
        attachments = [a.get_content_type() for a in message.iter_attachments()]
        if attachments != ["application/pdf"]:
            raise RuntimeError(f"message for {number} carries {attachments}, not one PDF")
        if number in arrivals:
            raise RuntimeError(f"order {number} was mailed twice")
        arrivals[number] = arrived
    return arrivals


def resend_with_labels(orders) -> float:
    """The baseline: an outbox row per order, whose label is already rendered, sent by the
    mail queue's task. Returns the commit time."""
    from django.db import transaction

    from pharmacy.models import Delivery, DeliveryKind
    from pharmacy.tasks import send_delivery

    with transaction.atomic():
        deliveries = Delivery.objects.bulk_create(
            Delivery(kind=DeliveryKind.LABEL_READY, recipient=f"copy-{order.clinic.label_email}",
                     subject_key=f"order:{order.pk}", order=order,
                     message_id=make_msgid(domain="ldn-portal"))
            for order in orders
        )  # fmt: skip
    committed = time.perf_counter()
    for delivery in deliveries:
        send_delivery.delay(delivery_id=delivery.pk)
    return committed


def main() -> None:
    import redis

    scratch = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    sink = TimedSmtpSink()
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    worker = None
    try:
        settings_env = {
            "CELERY_BROKER_URL": REDIS_URL, "EMAIL_URL": sink.url,
            "MEDIA_ROOT": str(scratch / "media"),
        }  # fmt: skip
        started = time.perf_counter()
        drop_database(DATABASE)
        _copy_database(TEMPLATE, to=DATABASE)
        setup_django(DATABASE, **settings_env)
        say(f"database ready in {time.perf_counter() - started:.0f} s")
        total = WARMUP_ORDERS + THROUGHPUT_ORDERS + LATENCY_ORDERS
        orders, pharmacist = prepared_orders(total)
        warmup = orders[:WARMUP_ORDERS]
        throughput = orders[WARMUP_ORDERS : WARMUP_ORDERS + THROUGHPUT_ORDERS]
        latency = orders[WARMUP_ORDERS + THROUGHPUT_ORDERS :]

        worker = Worker(environment(DATABASE, **settings_env), scratch / "worker.log")
        worker.start()
        sink.start()  # its thread after the worker's fork
        make_ready(warmup, pharmacist, together=True)
        sink.take(WARMUP_ORDERS, timeout=120)
        worker.check()
        say("worker warm")

        # (a) Throughput.
        committed = make_ready(throughput, pharmacist, together=False)
        ready_s = max(committed.values()) - min(committed.values())
        arrivals = labelled(sink.take(THROUGHPUT_ORDERS, timeout=WAIT_LIMIT))
        elapsed = max(arrivals.values()) - min(committed.values())
        rate = THROUGHPUT_ORDERS / elapsed
        delays = [arrivals[o.number] - committed[o.pk] for o in throughput]
        say(
            f"throughput: {rate:.1f} emails/s ({THROUGHPUT_ORDERS} in {elapsed:.1f} s; making "
            f"them ready took {ready_s:.1f} s; p95 commit to mail {percentile(delays, 95):.2f} s)"
        )
        worker.check()

        # (b) Latency: 50 at once.
        committed = make_ready(latency, pharmacist, together=True)
        arrivals = labelled(sink.take(LATENCY_ORDERS, timeout=WAIT_LIMIT))
        latencies = [arrivals[o.number] - committed[o.pk] for o in latency]
        p95, p50 = percentile(latencies, 95), percentile(latencies, 50)
        say(
            f"latency of {LATENCY_ORDERS} at once: p50 {p50:.2f} s, p95 {p95:.2f} s, "
            f"max {max(latencies):.2f} s"
        )
        worker.check()

        # Baseline of (a): the same emails, labels already rendered.
        committed_at = resend_with_labels(throughput)
        arrivals = labelled(sink.take(THROUGHPUT_ORDERS, timeout=WAIT_LIMIT))
        baseline_rate = THROUGHPUT_ORDERS / (max(arrivals.values()) - committed_at)
        say(f"baseline, labels already rendered: {baseline_rate:.1f} emails/s")
        worker.check()
    finally:
        if worker is not None:
            worker.stop()
        sink.stop()
        broker.flushdb()
        broker.close()
        shutil.rmtree(scratch, ignore_errors=True)
        if "django" in sys.modules:  # its orders are used up: the next run starts afresh
            from django.db import connections

            connections.close_all()
            drop_database(DATABASE)

    rows = [
        Row(NAME, f"labelled emails per second ({THROUGHPUT_ORDERS} orders)", rate,
            f">= {RATE_BUDGET:g}/s", rate >= RATE_BUDGET, baseline_rate, "emails/s"),
        Row(NAME, f"p95 commit to mail received, {LATENCY_ORDERS} at once (s)", p95,
            f"<= {P95_BUDGET_S:g} s", p95 <= P95_BUDGET_S, unit="s"),
    ]  # fmt: skip
    write_results(
        NAME, rows, emails_per_second=rate, baseline_emails_per_second=baseline_rate,
        making_ready_s=ready_s, throughput_delay_p95_s=percentile(delays, 95),
        latency_p50_s=p50, latency_p95_s=p95, latencies_s=latencies,
    )  # fmt: skip


if __name__ == "__main__":
    main()
