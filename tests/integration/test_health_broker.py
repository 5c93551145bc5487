"""The staff's health detail and the metrics against a real Redis broker: its check answers,
the Celery queues' lengths are read from it, and a broker that does not answer is said."""

import pytest
import redis
from django.urls import reverse

from pharmacy.metrics import celery_queues
from tests.services import free_port
from tests.signing_in import verified_staff_login

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
TOKEN = "metrics-token-for-the-tests"


def test_the_detail_checks_the_broker_and_the_metrics_count_its_queues(
    client, pharmacist, settings, redis_url
):
    settings.CELERY_BROKER_URL = redis_url
    settings.METRICS_TOKEN = TOKEN
    broker = redis.Redis.from_url(redis_url)
    broker.lpush("render", "task-1", "task-2", "task-3")
    broker.lpush("mail", "task-4")
    verified_staff_login(client, pharmacist)

    detail = client.get(reverse("health_detail"))
    metrics = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()

    assert detail.status_code == 200
    database = redis_url.rsplit("/", 1)[1]
    assert detail.json()["checks"][f"Redis(db={database}, host='127.0.0.1', port=6379)"] == "OK"
    assert celery_queues() == ["default", "mail", "render", "webhooks"]
    assert {line for line in metrics.splitlines() if line.startswith("pharmacy_celery_")} == {
        'pharmacy_celery_queue_length{queue="default"} 0.0',
        'pharmacy_celery_queue_length{queue="mail"} 1.0',
        'pharmacy_celery_queue_length{queue="render"} 3.0',
        'pharmacy_celery_queue_length{queue="webhooks"} 0.0',
    }


def test_a_broker_that_does_not_answer_is_unavailable_on_the_detail(client, pharmacist, settings):
    port = free_port()  # nothing listens there
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{port}/0"
    settings.METRICS_TOKEN = TOKEN
    verified_staff_login(client, pharmacist)

    detail = client.get(reverse("health_detail"))
    metrics = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert detail.status_code == 503
    assert detail.json()["status"] == "unavailable"
    assert detail.json()["checks"][f"Redis(db=0, host='127.0.0.1', port={port})"] == (
        "Unavailable: Unable to connect to Redis: Connection Error"
    )
    assert metrics.status_code == 200  # the rest of the figures, without the queues
    assert "pharmacy_celery_queue_length{" not in metrics.content.decode()
    assert "pharmacy_outbox_rows{" in metrics.content.decode()
