import contextlib
import os
import shutil
import subprocess
import time
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import redis
from django.db import connection
from kombu import pools as kombu_pools

from config.celery import app as celery_app
from tests.services import CeleryWorker, SmtpSink, free_port, service_unavailable


@pytest.fixture
def postgresql():
    if connection.vendor != "postgresql":
        service_unavailable(f"needs PostgreSQL; the database is {connection.vendor}")


def worker_database(url: str) -> str:
    """Each pytest-xdist worker a Redis database of its own, counting down from the URL's."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    parts = urlsplit(url)
    number = int(parts.path.strip("/") or 0) - int(worker.removeprefix("gw"))
    return parts._replace(path=f"/{number}").geturl()


@pytest.fixture
def redis_url():
    url = worker_database(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_unavailable(f"needs Redis at {url}: {exc}")
    client.flushdb()  # a database of its own: nothing left from an earlier run
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def smtp_sink():
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


def _reset_broker_connections():
    """Forget pooled broker connections, so the next publish connects to the current URL."""
    kombu_pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@contextlib.contextmanager
def celery_publishing_to(broker_url: str, **conf):
    """This process publishes tasks to that broker instead of running them in-process (with
    these other Celery settings, if any)."""
    saved = {key: celery_app.conf[key] for key in ("broker_url", "task_always_eager", *conf)}
    _reset_broker_connections()
    celery_app.conf.update(broker_url=broker_url, task_always_eager=False, **conf)
    try:
        yield broker_url
    finally:
        _reset_broker_connections()
        celery_app.conf.update(saved)


def broker_unreachable():
    """This process publishes to an address where no broker listens, and each publication fails
    at once (no retries): a request's view of a broker outage, fast enough for many rows."""
    return celery_publishing_to(
        f"redis://127.0.0.1:{free_port()}/0",
        task_publish_retry=False,
        broker_transport_options={"max_retries": 0},
    )


@pytest.fixture
def celery_on_redis(redis_url):
    with celery_publishing_to(redis_url):
        yield redis_url


def database_url() -> str:
    """The URL of the test database this process uses, for a worker process to share."""
    db = connection.settings_dict
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def celery_worker(postgresql, celery_on_redis, smtp_sink, settings):
    """Needs committed data: use with django_db(transaction=True)."""
    worker = CeleryWorker(
        {
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": celery_on_redis,
            "EMAIL_URL": smtp_sink.url,
            "PORTAL_BASE_URL": settings.PORTAL_BASE_URL,
        }
    )
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def own_redis(tmp_path):
    """A Redis server of this test's own on a free port, which the test may stop and start."""
    if shutil.which("redis-server") is None:
        service_unavailable("needs the redis-server program")
    port = free_port()

    def start():
        subprocess.run(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "yes", "--dir", str(tmp_path),
             "--logfile", str(tmp_path / "redis.log")],
            check=True, timeout=30,
        )  # fmt: skip
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop():
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], timeout=30,
                       capture_output=True)  # fmt: skip

    start()
    yield SimpleNamespace(url=f"redis://127.0.0.1:{port}/0", start=start, stop=stop)
    stop()
