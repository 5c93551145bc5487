"""The health check and the metrics (README, "Health and metrics"): /health/ for the load
balancer, without signing in, says only whether the database answers; the detail (every
service, the backlog of emails, webhooks and print jobs in counts and ages) is for verified
staff; /metrics exists only with a token and answers only to it. None of them names anyone."""

import datetime
import os
import subprocess
import sys
from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders.dosing import DosageForm, Regimen, Step
from pharmacy.label_documents import label_render
from pharmacy.metrics import LABEL_RENDER_SECONDS
from pharmacy.models import Delivery, DeliveryKind, DeliveryStatus, PrintJob, WebhookDelivery
from pharmacy.webhooks import endpoint_create, new_message_id, order_event_payload
from tests.factories import PatientAccessFactory, PatientFactory, clinic_of, submit_order
from tests.pharmacy.test_labels import TITRATION, dispensed, stock_titration, submitted
from tests.signing_in import verified_staff_login

pytestmark = pytest.mark.django_db

REGIMEN = Regimen(
    dosage_form=DosageForm.CAPSULE, steps=(Step(Decimal("1.5"), 30),), doses_per_day=1,
    quantity=Decimal("30"), days_supply=30, refills=1,
)  # fmt: skip
TOKEN = "metrics-token-for-the-tests"
# What must never appear in a health or metrics answer: the patient's name and every address.
PATIENT_FIRST, PATIENT_LAST = "Quillfeather", "Zanzibarova"
PATIENT_EMAIL = "quill.zanzibarova@mail.test"
CLINIC_EMAIL = "labels@clinic-of-quill.test"
SUBJECT = "About Quillfeather"
MINUTE = datetime.timedelta(minutes=1)
LINK = "core.auth.LinkBackend"  # how a patient signs in


def email(status, n: int, recipient=CLINIC_EMAIL) -> Delivery:
    return Delivery.objects.create(
        kind=DeliveryKind.ACCOUNT, recipient=recipient, subject_key=f"message:{status}:{n}",
        status=status, message={"subject": SUBJECT, "body": f"Dear {PATIENT_FIRST}"},
    )  # fmt: skip


@pytest.fixture
def backlog(prescriber, pharmacist, clock):
    """Built on the clock: at 14:00 a pending email (to the patient) and a webhook delivery; at
    14:05 a second pending email, one sending and one failed; at 14:08 a queued and a failed
    print job. Read at 14:12: the oldest email has waited 720 s, the webhook 720 s."""
    patient = PatientFactory(
        clinic=clinic_of(prescriber), first_name=PATIENT_FIRST, last_name=PATIENT_LAST,
    )  # fmt: skip
    PatientAccessFactory(patient=patient, user__email=PATIENT_EMAIL)
    order = submit_order(prescriber, patient, REGIMEN)
    email(DeliveryStatus.PENDING, 1, recipient=PATIENT_EMAIL)
    endpoint = endpoint_create(
        actor=prescriber.user, clinic_id=order.clinic_id, url="https://93.184.215.14/hooks",
        events=["order.status_changed"],
    )  # fmt: skip
    event = order.events.get()
    WebhookDelivery.objects.create(
        endpoint=endpoint, order_event=event, event_type="order.status_changed",
        message_id=new_message_id(), payload=order_event_payload(event, "order.status_changed"),
    )  # fmt: skip
    clock.shift(5 * MINUTE)
    email(DeliveryStatus.PENDING, 2)
    email(DeliveryStatus.SENDING, 3)
    email(DeliveryStatus.FAILED, 4)
    email(DeliveryStatus.SENT, 5)
    clock.shift(3 * MINUTE)
    for status in (PrintJob.Status.QUEUED, PrintJob.Status.FAILED, PrintJob.Status.DONE):
        PrintJob.objects.create(created_by=pharmacist, order_ids=[order.pk], total=1, status=status)
    clock.shift(4 * MINUTE)
    return order


def assert_names_no_one(text: str) -> None:
    for secret in (PATIENT_FIRST, PATIENT_LAST, PATIENT_EMAIL, CLINIC_EMAIL, SUBJECT, "@"):
        assert secret not in text, secret


# --- /health/ ----------------------------------------------------------------------------------


def test_health_answers_anyone_that_the_database_answers_and_nothing_else(client, backlog):
    response = client.get(reverse("health"))

    assert response.status_code == 200
    assert response.json() == {"database": "ok"}
    assert response["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"
    assert_names_no_one(response.content.decode())
    assert client.head(reverse("health")).status_code == 200
    assert client.post(reverse("health")).status_code == 405


def test_health_is_503_when_the_database_does_not_answer(client, tmp_path):
    # The check opens a connection of its own: to a database file in a folder that is not there.
    unreachable = {"NAME": str(tmp_path / "gone" / "db.sqlite3"), "HOST": "", "PORT": ""}
    if connection.vendor == "postgresql":
        unreachable = {"HOST": "127.0.0.1", "PORT": "1"}  # nothing listens on port 1
    with mock.patch.dict(connections.settings["default"], unreachable):
        response = client.get(reverse("health"))

    assert response.status_code == 503
    assert response.json() == {"database": "unreachable"}
    assert client.get(reverse("health")).status_code == 200  # and back once it answers


# --- /health/detail/ -----------------------------------------------------------------------------


def test_the_health_detail_is_refused_to_anyone_but_verified_staff(
    client, prescriber, clinic_staff, pharmacist
):
    url = reverse("health_detail")
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next={url}"

    patient = PatientAccessFactory().user
    for user, backend in ((prescriber.user, None), (clinic_staff, None), (patient, LINK)):
        signed_in = Client()
        signed_in.force_login(user, backend=backend)
        assert signed_in.get(url).status_code == 403, user

    unverified = Client()
    unverified.force_login(pharmacist)  # the second factor not passed
    response = unverified.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next={url}"


def test_the_health_detail_shows_verified_staff_the_backlog_in_counts_and_ages(
    client, pharmacist, backlog
):
    verified_staff_login(client, pharmacist)

    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("health_detail"))

    assert response.status_code == 200
    assert response.json() == {
        "status": "warning",
        "checks": {
            "Database(alias='default')": "OK",
            "Cache(alias='default')": "OK",
            "Storage(alias='default')": "OK",
            "EmailOutbox()": "Warning: the oldest pending email has waited 720 seconds; "
            "1 failed email wait for a person",
            "WebhookOutbox()": "Warning: the oldest pending webhook delivery has waited 720 "
            "seconds",
            "PrintJobs()": "Warning: 1 failed print job",
        },
        "emails": {"pending": 2, "sending": 1, "failed": 1, "oldest_pending_seconds": 720},
        "webhooks": {"pending": 1, "sending": 0, "failed": 0, "oldest_pending_seconds": 720},
        "print_jobs": {"queued": 1, "running": 0, "failed": 1},
    }
    assert_names_no_one(response.content.decode())
    # One query per table of work, whatever is in it.
    for table in ("pharmacy_delivery", "pharmacy_webhookdelivery", "pharmacy_printjob"):
        assert sum(f'FROM "{table}"' in query["sql"] for query in queries) == 1, table


def test_the_health_detail_is_ok_within_the_limits(client, pharmacist, settings, clock):
    settings.OUTBOX_BACKLOG_WARN_AFTER = 600
    email(DeliveryStatus.PENDING, 1)
    clock.shift(10 * MINUTE)  # 600 s: not longer than the limit
    verified_staff_login(client, pharmacist)

    response = client.get(reverse("health_detail"))

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert set(response.json()["checks"].values()) == {"OK"}
    assert response.json()["emails"]["oldest_pending_seconds"] == 600
    assert response.json()["webhooks"]["oldest_pending_seconds"] is None


def test_the_health_detail_is_503_when_a_service_is_down(client, pharmacist, settings):
    verified_staff_login(client, pharmacist)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": "/proc/no-files-here"},  # cannot be written to
        },
    }

    response = client.get(reverse("health_detail"))

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"]["Storage(alias='default')"] == "Unknown Error: unknown error"
    assert response.json()["checks"]["Database(alias='default')"] == "OK"


# --- /metrics --------------------------------------------------------------------------------


def test_metrics_do_not_exist_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.parametrize(
    "authorization", [None, "", f"Bearer {TOKEN}x", f"bearer {TOKEN}", TOKEN, f"Basic {TOKEN}"]
)
def test_metrics_refuse_a_wrong_or_missing_token(client, settings, authorization):
    settings.METRICS_TOKEN = TOKEN
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}

    response = client.get("/metrics", **headers)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"pharmacy_" not in response.content


def metric_lines(text: str, name: str) -> set[str]:
    return {line for line in text.splitlines() if line.startswith(f"{name}{{")}


def test_metrics_with_the_token_give_latencies_and_the_backlog(client, settings, backlog):
    settings.METRICS_TOKEN = TOKEN
    assert client.get(reverse("health")).status_code == 200  # a view just requested

    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    assert (
        'django_http_requests_latency_seconds_by_view_method_count{method="GET",view="health"}'
        in text
    )
    assert metric_lines(text, "pharmacy_outbox_rows") == {
        'pharmacy_outbox_rows{outbox="email",status="pending"} 2.0',
        'pharmacy_outbox_rows{outbox="email",status="sending"} 1.0',
        'pharmacy_outbox_rows{outbox="email",status="failed"} 1.0',
        'pharmacy_outbox_rows{outbox="webhook",status="pending"} 1.0',
        'pharmacy_outbox_rows{outbox="webhook",status="sending"} 0.0',
        'pharmacy_outbox_rows{outbox="webhook",status="failed"} 0.0',
    }
    assert metric_lines(text, "pharmacy_outbox_oldest_pending_seconds") == {
        'pharmacy_outbox_oldest_pending_seconds{outbox="email"} 720.0',
        'pharmacy_outbox_oldest_pending_seconds{outbox="webhook"} 720.0',
    }
    assert metric_lines(text, "pharmacy_print_jobs") == {
        'pharmacy_print_jobs{status="queued"} 1.0',
        'pharmacy_print_jobs{status="running"} 0.0',
        'pharmacy_print_jobs{status="failed"} 1.0',
    }
    # No broker here (tasks run in-process): no queue lengths.
    assert "pharmacy_celery_queue_length{" not in text
    assert "pharmacy_label_render_seconds_bucket" in text
    assert_names_no_one(text)
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def test_a_label_render_is_timed(prescriber, pharmacist, technician):
    stock_titration()
    order = dispensed(submitted(prescriber, TITRATION), pharmacist, technician)
    renders = LABEL_RENDER_SECONDS.collect()[0]
    count = next(s.value for s in renders.samples if s.name.endswith("_count"))

    label_render(order=order, actor=pharmacist)

    renders = LABEL_RENDER_SECONDS.collect()[0]
    assert next(s.value for s in renders.samples if s.name.endswith("_count")) == count + 1


def test_metrics_add_up_the_processes_that_share_a_multiprocess_folder(tmp_path):
    """Two worker processes render labels; a third, the web process, answers the scrape."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}},
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PHARMACY_VAR_DIR": str(tmp_path),  # a database of its own, without tables
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    (tmp_path / "metrics").mkdir()
    setup = "import django; django.setup(); from pharmacy import metrics; "

    def python(code: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", setup + code], env=env, check=True, capture_output=True,
            text=True, timeout=120,
        ).stdout  # fmt: skip

    python("metrics.LABEL_RENDER_SECONDS.observe(0.3)")
    python("metrics.LABEL_RENDER_SECONDS.observe(2)")
    text = python("print(metrics.scrape().decode())")

    assert "pharmacy_label_render_seconds_count 2.0" in text
    assert "pharmacy_label_render_seconds_sum 2.3" in text
