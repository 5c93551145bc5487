"""Label pipeline end to end, against what its parts allow: orders made ready, their labels
rendered and mailed by a real Celery worker.

A `celery -A config worker --concurrency=2` process on Redis serves the queues the settings
route to (default, render, mail); an SMTP server on loopback (aiosmtpd, a thread of this
process, which only waits meanwhile) takes the mail; PostgreSQL holds the data. Orders become
ready through the real service (pharmacy.fulfilment.order_final_check): it writes the outbox
row, and after commit the label is rendered on the render queue and mailed from the mail queue.

The parts, each timed by the worker itself (Celery's runtime of the task, which the worker logs
at INFO as "Task ... succeeded in <s>"), while the worker runs them as the pipeline does:
- render: the render_label task of each order of (a): it locks the order, renders the label
  PDF, stores it with its event, and queues the email;
- send: the send_delivery task of mail whose label is already rendered, (c): it claims the
  outbox row, composes the message with the stored PDF, hands it to the SMTP server and
  records the send.
One email costs a worker process render p50 + send p50 of task time, and a worker of N
processes runs N tasks at once, so the parts allow N / (render p50 + send p50) emails per
second. The rest is what the pipeline adds: the outbox row's commit callback, two broker hops
per email, the worker's main process taking and handing out each task, a process idle while it
waits for its next one, and a send slowed by a render beside it (the send part is timed beside
other sends).

(a) Throughput: 1,000 orders, made ready 250 at a time in one transaction each, so that each
    commit queues 250 renders at once; labelled emails per second over the four rounds, each
    from its commit until its last message is received. Budget: at least 0.9 x N /
    (render p50 + send p50). (Made ready one transaction at a time, the orders were the
    bottleneck: this process's final checks, on the same two cores, took longer than the
    worker needed to mail them, and slowed the worker meanwhile.)
(b) Latency: 50 orders made ready at once (one transaction), in each round; p95, over the 200,
    of (time the SMTP server received the message - time the final check committed), both
    taken in this process. Budget: at most 1.2 x 50 x (render p50 + send p50) / N, the time the
    N processes need to do the 50 emails' work back to back.
(c) Mail already rendered: an outbox row per order of the round's (a), whose label exists,
    committed together and sent from the mail queue by the same worker to the same server:
    the send part, and its rate for information.
The three alternate in four rounds, so that a change of the machine's pace during the run
(other work, PostgreSQL's autovacuum after a burst of rows) reaches the pipeline and its parts
alike.

    python -m bench.pipeline
"""

import contextlib
import ctypes
import os
import re
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
    ratio_row,
    say,
    setup_django,
    write_results,
)

NAME = "pipeline"
DATABASE = "ldn_bench_pipeline"
TEMPLATE = "ldn_bench_pipeline_orders"  # orders not yet ready: each run's database is a copy
THROUGHPUT_ORDERS = 1000
LATENCY_ORDERS = 50
ROUNDS = 4  # (a), (b) and (c) alternate
WARMUP_ORDERS = 10
PROCESSES = 2  # the worker's --concurrency: how many tasks run at once
RATE_BUDGET = 0.9  # of what the parts allow, at least
P95_BUDGET = 1.2  # times the 50 emails' work on the worker's processes, at most
WAIT_LIMIT = 600  # seconds for one phase's mail to arrive (a busy machine is slow)
RENDER_TASK = "pharmacy.tasks.render_label"
SEND_TASK = "pharmacy.tasks.send_delivery"
# What the worker logs at INFO when a task returns: Celery's own runtime of the task.
SUCCEEDED = re.compile(r"Task ([\w.]+)\[[\w-]+\] succeeded in ([0-9.e-]+)s")


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
    """`celery -A config worker --concurrency=2` on the queues the settings route to, logging at
    INFO: each task's runtime, as the worker measures it, is read from its log."""

    def __init__(self, env: dict[str, str], log: Path):
        self.env, self.log = env, log
        self.process = self._log_file = None

    def start(self):
        self._log_file = self.log.open("w")
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "config", "worker"),
                f"--concurrency={PROCESSES}",
                *("--queues=default,render,mail", "--without-gossip", "--without-mingle"),
                *("--without-heartbeat", "--loglevel=INFO", f"--hostname=bench-{os.getpid()}@%h"),
            ],
            cwd=ROOT,
            env={**self.env, "LOG_LEVEL": "INFO"},
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )

    def check(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"the worker stopped:\n{self.log.read_text()[-3000:]}")

    def log_size(self) -> int:
        return self.log.stat().st_size

    def runtimes(self, since: int, expected: dict[str, int]) -> dict[str, list[float]]:
        """The runtimes (s) of the tasks that succeeded since byte `since` of the log, by task
        name, once `expected` (name -> count) have: a task logs after its message was sent."""
        deadline = time.monotonic() + 30
        while True:
            with self.log.open("rb") as log:
                log.seek(since)
                text = log.read().decode(errors="replace")
            found: dict[str, list[float]] = {name: [] for name in expected}
            for name, runtime in SUCCEEDED.findall(text):
                if name in found:
                    found[name].append(float(runtime))
            if all(len(found[name]) >= count for name, count in expected.items()):
                return found
            if time.monotonic() > deadline:
                counts = {name: len(runtimes) for name, runtimes in found.items()}
                raise RuntimeError(f"the worker logged {counts} tasks, not {expected}")
            self.check()
            time.sleep(0.2)

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


def make_ready(orders, pharmacist) -> float:
    """order_final_check for each order, in one transaction; returns its commit time, taken by
    a callback that runs right after the commit, before the callbacks that queue the tasks."""
    from django.db import transaction

    from pharmacy.fulfilment import order_final_check
    from pharmacy.labels import label_barcodes

    committed = []
    with transaction.atomic():
        transaction.on_commit(lambda: committed.append(time.perf_counter()))
        for order in orders:
            order_final_check(order=order, actor=pharmacist, scans=label_barcodes(order))
    return committed[0]


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
    """(c): an outbox row per order, whose label is already rendered, sent by the mail queue's
    task. Returns the commit time."""
    from django.db import transaction

    from pharmacy.models import Delivery, DeliveryKind
    from pharmacy.tasks import send_delivery

    with transaction.atomic():
        deliveries = Delivery.objects.bulk_create(
            Delivery(
                kind=DeliveryKind.LABEL_READY,
                recipient=f"copy-{order.clinic.label_email}",
                subject_key=f"order:{order.pk}",
                order=order,
                message_id=make_msgid(domain="ldn-portal"),
            )
            for order in orders
        )
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
            "CELERY_BROKER_URL": REDIS_URL,
            "EMAIL_URL": sink.url,
            "MEDIA_ROOT": str(scratch / "media"),
        }
        started = time.perf_counter()
        drop_database(DATABASE)
        _copy_database(TEMPLATE, to=DATABASE)
        setup_django(DATABASE, **settings_env)
        say(f"database ready in {time.perf_counter() - started:.0f} s")
        per_round = THROUGHPUT_ORDERS // ROUNDS
        orders, pharmacist = prepared_orders(WARMUP_ORDERS + ROUNDS * (per_round + LATENCY_ORDERS))
        warmup, orders = orders[:WARMUP_ORDERS], orders[WARMUP_ORDERS:]

        worker = Worker(environment(DATABASE, **settings_env), scratch / "worker.log")
        worker.start()
        sink.start()  # its thread after the worker's fork
        make_ready(warmup, pharmacist)
        sink.take(WARMUP_ORDERS, timeout=120)
        worker.runtimes(0, {RENDER_TASK: WARMUP_ORDERS, SEND_TASK: WARMUP_ORDERS})
        say("worker warm")

        pipeline_s = rendered_s = 0.0
        renders, pipeline_sends, sends, latencies, delays = [], [], [], [], []
        for number in range(ROUNDS):
            throughput, orders = orders[:per_round], orders[per_round:]
            latency, orders = orders[:LATENCY_ORDERS], orders[LATENCY_ORDERS:]

            # (a) Throughput: the round's orders, made ready together.
            since = worker.log_size()
            committed = make_ready(throughput, pharmacist)
            arrivals = labelled(sink.take(per_round, timeout=WAIT_LIMIT))
            pipeline_s += max(arrivals.values()) - committed
            delays += [arrival - committed for arrival in arrivals.values()]
            tasks = worker.runtimes(since, {RENDER_TASK: per_round, SEND_TASK: per_round})
            renders += tasks[RENDER_TASK]
            pipeline_sends += tasks[SEND_TASK]

            # (b) Latency: 50 at once.
            since = worker.log_size()
            committed = make_ready(latency, pharmacist)
            arrivals = labelled(sink.take(LATENCY_ORDERS, timeout=WAIT_LIMIT))
            latencies += [arrival - committed for arrival in arrivals.values()]
            worker.runtimes(since, {RENDER_TASK: LATENCY_ORDERS, SEND_TASK: LATENCY_ORDERS})

            # (c) The send part: the round's emails again, labels already rendered.
            since = worker.log_size()
            committed = resend_with_labels(throughput)
            arrivals = labelled(sink.take(per_round, timeout=WAIT_LIMIT))
            rendered_s += max(arrivals.values()) - committed
            sends += worker.runtimes(since, {SEND_TASK: per_round})[SEND_TASK]
            say(f"round {number + 1} of {ROUNDS} done")
        worker.check()

        rate = THROUGHPUT_ORDERS / pipeline_s
        rendered_rate = THROUGHPUT_ORDERS / rendered_s
        render_p50, send_p50 = percentile(renders, 50), percentile(sends, 50)
        pipeline_send_p50 = percentile(pipeline_sends, 50)
        # The share of the processes' time spent in tasks: the rest they waited for one.
        busy = (sum(renders) + sum(pipeline_sends)) / (PROCESSES * pipeline_s)
        p95, p50 = percentile(latencies, 95), percentile(latencies, 50)
        say(
            f"throughput: {rate:.1f} emails/s; render p50 {render_p50 * 1000:.1f} ms, send p50 "
            f"{pipeline_send_p50 * 1000:.1f} ms (worker's timing); processes busy {busy:.0%}"
        )
        say(
            f"latency of {LATENCY_ORDERS} at once: p50 {p50:.2f} s, p95 {p95:.2f} s, "
            f"max {max(latencies):.2f} s"
        )
        say(
            f"mail already rendered: {rendered_rate:.1f} emails/s, "
            f"send p50 {send_p50 * 1000:.1f} ms (worker's timing)"
        )
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

    per_email = render_p50 + send_p50  # one process's task time for one email
    allowed_rate = PROCESSES / per_email
    allowed_p95 = LATENCY_ORDERS * per_email / PROCESSES
    say(
        f"the parts allow {allowed_rate:.1f} emails/s (ratio {rate / allowed_rate:.2f}) and "
        f"{allowed_p95:.2f} s for {LATENCY_ORDERS} (ratio {p95 / allowed_p95:.2f})"
    )
    rows = [
        ratio_row(
            NAME,
            f"labelled emails per second ({THROUGHPUT_ORDERS:,} orders), against "
            f"{PROCESSES} / (render p50 + send p50)",
            allowed_rate,
            rate,
            at_least=RATE_BUDGET,
            unit="emails/s",
        ),
        ratio_row(
            NAME,
            f"p95 commit to mail received, {LATENCY_ORDERS} at once (s), against "
            f"{LATENCY_ORDERS} x (render p50 + send p50) / {PROCESSES}",
            allowed_p95,
            p95,
            at_most=P95_BUDGET,
            unit="s",
        ),
        Row(NAME, "render p50, the worker's timing (ms)", render_p50 * 1000, "-", True, unit="ms"),
        Row(
            NAME,
            "send p50 in the pipeline, beside the renders, the worker's timing (ms)",
            pipeline_send_p50 * 1000,
            "-",
            True,
            unit="ms",
        ),
        Row(
            NAME,
            "send p50 of mail already rendered, the worker's timing (ms)",
            send_p50 * 1000,
            "-",
            True,
            unit="ms",
        ),
        Row(
            NAME,
            f"mail already rendered, emails per second ({THROUGHPUT_ORDERS:,})",
            rendered_rate,
            "-",
            True,
            unit="emails/s",
        ),
    ]
    write_results(
        NAME,
        rows,
        processes=PROCESSES,
        emails_per_second=rate,
        allowed_emails_per_second=allowed_rate,
        render_p50_s=render_p50,
        send_p50_s=send_p50,
        pipeline_send_p50_s=pipeline_send_p50,
        processes_busy=busy,
        rendered_emails_per_second=rendered_rate,
        throughput_delay_p95_s=percentile(delays, 95),
        latency_p50_s=p50,
        latency_p95_s=p95,
        allowed_latency_p95_s=allowed_p95,
        latencies_s=latencies,
    )


if __name__ == "__main__":
    main()
