"""The portal's own metrics for Prometheus (README, "Health and metrics"), next to the request
latencies django-prometheus' middlewares measure: the backlog of the outbox and of the print
jobs and the lengths of the Celery queues, read when Prometheus scrapes (a few aggregate
queries and one round trip to Redis), and the time a label takes to render. Counts, ages and
durations only: never an address, a name or a subject."""

import logging
import os

import redis
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from .selectors import email_backlog, print_job_backlog, webhook_backlog

logger = logging.getLogger(__name__)

# Observed where the label is rendered: in a Celery worker (render queue) or, for a person who
# renders one in the admin, in a web process. Workers' figures reach /metrics only through
# prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, README).
LABEL_RENDER_SECONDS = Histogram(
    "pharmacy_label_render_seconds",
    "Time to render one order's label PDF.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)


def broker_redis_url() -> str | None:
    """The broker's address when it is Redis (the embedded default has no broker)."""
    url = settings.CELERY_BROKER_URL
    return url if url.startswith(("redis://", "rediss://")) else None


def celery_queues() -> list[str]:
    """The queues the workers listen to: those of the task routes and the default one."""
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    return sorted(routed | {settings.CELERY_TASK_DEFAULT_QUEUE})


def _queue_lengths(url: str) -> dict[str, int]:
    """Celery on Redis keeps a queue's waiting tasks in a list named after the queue."""
    queues = celery_queues()
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        with client.pipeline(transaction=False) as pipeline:
            for queue in queues:
                pipeline.llen(queue)
            return dict(zip(queues, pipeline.execute(), strict=True))
    finally:
        client.close()


class WorkCollector(Collector):
    """The work waiting, read at scrape time. A database or broker that does not answer leaves
    its figures out of that scrape (the health check says why), not the whole answer."""

    def describe(self):
        return []  # registered without a query (the registry would collect() to learn names)

    def collect(self):
        try:
            yield from self._backlog()
        except DatabaseError:
            logger.warning("Metrics: the database did not answer; no backlog figures.")
        if url := broker_redis_url():
            try:
                lengths = _queue_lengths(url)
            except redis.RedisError:
                logger.warning("Metrics: the broker did not answer; no queue lengths.")
            else:
                queues = GaugeMetricFamily(
                    "pharmacy_celery_queue_length",
                    "Tasks waiting in a Celery queue.",
                    labels=["queue"],
                )
                for queue, length in lengths.items():
                    queues.add_metric([queue], length)
                yield queues

    def _backlog(self):
        now = timezone.now()
        outbox = {"email": email_backlog(now=now), "webhook": webhook_backlog(now=now)}
        rows = GaugeMetricFamily(
            "pharmacy_outbox_rows",
            "Emails and webhook deliveries waiting (pending), being sent or failed.",
            labels=["outbox", "status"],
        )
        oldest = GaugeMetricFamily(
            "pharmacy_outbox_oldest_pending_seconds",
            "How long the oldest pending row has waited (0 when none waits).",
            labels=["outbox"],
        )
        for name, backlog in outbox.items():
            for status in ("pending", "sending", "failed"):
                rows.add_metric([name, status], backlog[status])
            oldest.add_metric([name], backlog["oldest_pending_seconds"] or 0)
        jobs = GaugeMetricFamily(
            "pharmacy_print_jobs", "Print jobs queued, rendering or failed.", labels=["status"]
        )
        for status, count in print_job_backlog().items():
            jobs.add_metric([status], count)
        yield from (rows, oldest, jobs)


WORK = WorkCollector()
REGISTRY.register(WORK)  # once: a module is imported once per process


def scrape() -> bytes:
    """Every metric of this process, or, in multiprocess mode, of every process that shares
    PROMETHEUS_MULTIPROC_DIR (gunicorn's workers and the Celery workers on this machine)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(WORK)
    else:
        registry = REGISTRY
    return generate_latest(registry)
