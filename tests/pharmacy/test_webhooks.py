"""Webhooks to clinics' systems: endpoints registered by the clinic's prescribers, messages made
once from the order's events (and recall notices), signed per Standard Webhooks, sent to a real
HTTP receiver on loopback, retried with back-off, given up or the endpoint turned off after 24
hours of failures, and the portal's pages, for the endpoint's clinic only."""

import datetime
import json

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.messages import get_messages
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from orders.models import Order, OrderEvent, OrderStatus
from orders.services import order_start_review
from pharmacy import outbox, tasks
from pharmacy.fulfilment import order_final_check, order_hold, order_ship
from pharmacy.label_documents import label_render
from pharmacy.labels import label_barcodes
from pharmacy.models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEventType,
)
from pharmacy.recalls import batch_recall
from pharmacy.webhook_sending import signed_headers, webhook_delivery_send
from pharmacy.webhook_views import SECRET_TO_SHOW
from pharmacy.webhooks import (
    endpoint_create,
    endpoint_delete,
    endpoint_rotate_secret,
    endpoint_turn_off_failing,
    endpoint_update,
    webhook_delivery_retry,
    webhook_events_publish,
)
from prescribers.models import MembershipRole
from tests.factories import MembershipFactory, PatientFactory, clinic_of, submit_order
from tests.orders.test_inbox import filled
from tests.orders.test_workflow import REGIMEN, dispense_fully, with_status
from tests.signing_in import verified_staff_login
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.django_db
E, S = WebhookEventType, DeliveryStatus
EVERY_EVENT = list(E.values)
# The clock fixture's moment, as a message's timestamp says it.
AT = "2026-03-02T14:00:00.000Z"


@pytest.fixture(autouse=True)
def _loopback_receivers(settings):
    """The receivers of these tests listen on 127.0.0.1 over plain HTTP, which the portal
    allows for hosts named in WEBHOOK_ALLOWED_PRIVATE_HOSTS only."""
    settings.WEBHOOK_ALLOWED_PRIVATE_HOSTS = frozenset({"127.0.0.1"})


@pytest.fixture
def receiver():
    running = WebhookReceiver().start()
    yield running
    running.stop()


@pytest.fixture
def order(prescriber):
    """An order whose patient's name, birth date, address and diagnosis are known, to look for
    in every message (never there)."""
    patient = PatientFactory(
        clinic=clinic_of(prescriber),
        first_name="Privatefirst",
        last_name="Privatelast",
        date_of_birth=datetime.date(1961, 7, 14),
        address_line1="77 Hiddenway Road",
        takes_opioids=False,
        current_medications="",
    )
    return submit_order(prescriber, patient, REGIMEN)


def an_endpoint(prescriber, url, events=EVERY_EVENT) -> WebhookEndpoint:
    return endpoint_create(
        actor=prescriber.user,
        clinic_id=clinic_of(prescriber).pk,
        url=url,
        events=events,
        description="Clinic EHR",
    )


def dispatch(capture) -> int:
    """The publisher's run, and the sends it queues run in-process once it has committed."""
    with capture(execute=True):
        return tasks.webhook_dispatch()


def without_patient_data(payload: dict, order) -> None:
    text = json.dumps(payload)
    patient = order.prescription.patient
    for private in (
        patient.first_name,
        patient.last_name,
        "1961",
        patient.address_line1,
        "M79.7",
        patient.postal_code,
    ):
        assert private not in text


# --- Signing ------------------------------------------------------------------------------------


def test_a_message_verifies_with_the_standard_webhooks_library(
    clock, prescriber, order, receiver, django_capture_on_commit_callbacks
):
    endpoint = an_endpoint(prescriber, receiver.url)
    secret = endpoint.secret
    assert secret.startswith("whsec_")

    assert dispatch(django_capture_on_commit_callbacks) == 1

    (request,) = receiver.requests
    delivery = WebhookDelivery.objects.get()
    assert request.path == "/hooks"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == delivery.message_id
    assert delivery.message_id.startswith("msg_")
    assert request.headers["webhook-timestamp"] == str(int(timezone.now().timestamp()))
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    assert (
        Webhook(secret).verify(request.body, request.headers)
        == delivery.payload
        == {
            "type": "order.status_changed",
            "timestamp": AT,
            "data": {
                "order_id": order.pk,
                "order_number": order.number,
                "status": "submitted",
                "previous_status": None,
            },
        }
    )
    # Another secret, or the body changed by a byte, does not verify.
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body.replace(b"submitted", b"submitteD"), request.headers)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (S.SENT, 1)


def test_during_a_rotation_both_secrets_sign_and_after_its_grace_only_the_new_one(
    clock, prescriber, pharmacist, order, receiver, django_capture_on_commit_callbacks
):
    endpoint = an_endpoint(prescriber, receiver.url)
    old = endpoint.secret
    new = endpoint_rotate_secret(actor=prescriber.user, endpoint=endpoint)
    endpoint.refresh_from_db()
    assert new != old and new.startswith("whsec_")
    assert (endpoint.secret, endpoint.previous_secret) == (new, old)
    assert endpoint.previous_secret_expires_at == timezone.now() + datetime.timedelta(hours=24)

    dispatch(django_capture_on_commit_callbacks)
    (during,) = receiver.requests
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(during.body, during.headers)["data"]["order_id"] == order.pk
    assert Webhook(new).verify(during.body, during.headers)["data"]["order_id"] == order.pk

    clock.shift(datetime.timedelta(hours=24))
    order_start_review(order=order, actor=pharmacist)
    dispatch(django_capture_on_commit_callbacks)
    after = receiver.requests[1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert Webhook(new).verify(after.body, after.headers)["data"]["status"] == "in_review"
    with pytest.raises(WebhookVerificationError, match="No matching signature found"):
        Webhook(old).verify(after.body, after.headers)


def test_signed_headers_name_the_message_and_its_time(prescriber, clock):
    endpoint = an_endpoint(prescriber, "http://127.0.0.1:9/hooks")
    at = timezone.now()
    headers = signed_headers(endpoint=endpoint, message_id="msg_1", at=at, body=b'{"a":1}')
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert (headers["webhook-id"], headers["webhook-timestamp"]) == (
        "msg_1",
        str(int(at.timestamp())),
    )
    assert Webhook(endpoint.secret).verify(b'{"a":1}', headers) == {"a": 1}


# --- What each message says ---------------------------------------------------------------------


def published(event_type) -> list[dict]:
    return [d.payload for d in WebhookDelivery.objects.filter(event_type=event_type).order_by("pk")]


def test_each_kind_of_message_says_exactly_this_and_nothing_about_the_patient(
    clock, prescriber, pharmacist, technician, order
):
    an_endpoint(prescriber, "http://127.0.0.1:9/hooks")
    order = order_start_review(order=order, actor=pharmacist)
    order = order_hold(order=order, actor=pharmacist, question="Has the patient stopped tramadol?")
    order = with_status(order, OrderStatus.READY)
    order = order_ship(order=order, actor=technician, carrier="UPS", tracking_number="1Z999AA1")
    # The final check of another order, then its label rendered (by the render queue).
    checked = with_status(
        submit_order(prescriber, order.prescription.patient, REGIMEN), OrderStatus.COMPOUNDING
    )
    dispense_fully(checked)
    order_final_check(order=checked, actor=pharmacist, scans=label_barcodes(checked))
    label_render(order=checked)

    assert webhook_events_publish() == 9
    base = {"order_id": order.pk, "order_number": order.number}
    other = {"order_id": checked.pk, "order_number": checked.number}
    assert published(E.ORDER_STATUS_CHANGED) == [
        {
            "type": "order.status_changed",
            "timestamp": AT,
            "data": {**data, "status": to, "previous_status": before},
        }
        for data, before, to in [
            (base, None, "submitted"),
            (base, "submitted", "in_review"),
            (base, "in_review", "on_hold"),
            (base, "ready", "shipped"),
            (other, None, "submitted"),
            (other, "compounding", "ready"),
        ]
    ]
    assert published(E.ORDER_ON_HOLD) == [
        {
            "type": "order.on_hold",
            "timestamp": AT,
            "data": {**base, "status": "on_hold", "question": "Has the patient stopped tramadol?"},
        },
    ]
    assert published(E.ORDER_SHIPPED) == [
        {
            "type": "order.shipped",
            "timestamp": AT,
            "data": {**base, "status": "shipped", "carrier": "UPS", "tracking_number": "1Z999AA1"},
        },
    ]
    assert published(E.ORDER_LABEL_READY) == [
        {
            "type": "order.label_ready",
            "timestamp": AT,
            "data": {
                **other,
                "status": "ready",
                "label_path": f"/api/v1/orders/{checked.pk}/label/",
            },
        },
    ]
    for delivery in WebhookDelivery.objects.all():
        without_patient_data(delivery.payload, order)


def test_a_label_rendered_before_the_final_check_is_ready_at_the_check(
    clock, prescriber, pharmacist, order
):
    """No render follows such a check (the label exists): the check itself says label ready,
    and the earlier render, while the order was still compounding, did not."""
    an_endpoint(prescriber, "http://127.0.0.1:9/hooks", events=[E.ORDER_LABEL_READY])
    order = with_status(order, OrderStatus.COMPOUNDING)
    dispense_fully(order)
    label_render(order=order)
    assert webhook_events_publish() == 0
    order_final_check(order=order, actor=pharmacist, scans=label_barcodes(order))

    assert webhook_events_publish() == 1
    assert published(E.ORDER_LABEL_READY) == [
        {
            "type": "order.label_ready",
            "timestamp": AT,
            "data": {
                "order_id": order.pk,
                "order_number": order.number,
                "status": "ready",
                "label_path": f"/api/v1/orders/{order.pk}/label/",
            },
        },
    ]


def test_a_recall_notice_is_a_message_in_the_recalls_transaction(clock, prescriber, pharmacist):
    endpoint = an_endpoint(prescriber, "http://127.0.0.1:9/hooks", events=[E.RECALL_NOTICE])
    shipped = filled(prescriber, "Holder", days_ago=5)
    recall = batch_recall(
        batch=shipped.dispenses.get().batch, actor=pharmacist, reason="Capsule weight out of range."
    )
    notice = recall.notices.get()

    delivery = WebhookDelivery.objects.get()
    assert (delivery.endpoint, delivery.recall_notice, delivery.event_type, delivery.status) == (
        endpoint,
        notice,
        E.RECALL_NOTICE,
        S.PENDING,
    )
    assert delivery.payload == {
        "type": "recall.notice",
        "timestamp": AT,
        "data": {
            "notice_id": notice.pk,
            "orders": [{"order_id": shipped.pk, "order_number": shipped.number}],
        },
    }
    without_patient_data(delivery.payload, shipped)


def test_a_recall_that_is_refused_makes_no_message(prescriber, technician):
    an_endpoint(prescriber, "http://127.0.0.1:9/hooks", events=[E.RECALL_NOTICE])
    shipped = filled(prescriber, "Holder", days_ago=5)
    with pytest.raises(PermissionDenied):
        batch_recall(batch=shipped.dispenses.get().batch, actor=technician, reason="Weight.")
    assert not WebhookDelivery.objects.exists()


# --- Publishing once ----------------------------------------------------------------------------


def test_publishing_makes_each_delivery_once_for_the_endpoints_that_chose_it(
    clock, prescriber, other_prescriber, pharmacist, order
):
    everything = an_endpoint(prescriber, "http://127.0.0.1:9/all")
    holds_only = an_endpoint(prescriber, "http://127.0.0.1:9/holds", events=[E.ORDER_ON_HOLD])
    switched_off = an_endpoint(prescriber, "http://127.0.0.1:9/off")
    endpoint_update(
        actor=prescriber.user,
        endpoint=switched_off,
        url=switched_off.url,
        events=EVERY_EVENT,
        enabled=False,
    )
    an_endpoint(other_prescriber, "http://127.0.0.1:9/another-clinic")
    order = order_start_review(order=order, actor=pharmacist)
    order_hold(order=order, actor=pharmacist, question="Dose?")

    assert webhook_events_publish() == 5
    made = sorted(
        (d.endpoint_id, d.order_event.to_status, d.event_type)
        for d in WebhookDelivery.objects.select_related("order_event")
    )
    assert made == sorted(
        [
            (everything.pk, "submitted", E.ORDER_STATUS_CHANGED),
            (everything.pk, "in_review", E.ORDER_STATUS_CHANGED),
            (everything.pk, "on_hold", E.ORDER_STATUS_CHANGED),
            (everything.pk, "on_hold", E.ORDER_ON_HOLD),
            (holds_only.pk, "on_hold", E.ORDER_ON_HOLD),
        ]
    )
    assert not OrderEvent.objects.filter(published_at__isnull=True).exists()
    assert len({d.message_id for d in WebhookDelivery.objects.all()}) == 5

    # Again: every event is published, nothing is made twice.
    assert webhook_events_publish() == 0
    OrderEvent.objects.update(published_at=None)  # even if they were published again
    webhook_events_publish()
    assert WebhookDelivery.objects.count() == 5


def test_an_endpoint_hears_of_what_happens_from_its_making_on(clock, prescriber, pharmacist, order):
    clock.shift(datetime.timedelta(minutes=1))
    endpoint = an_endpoint(prescriber, "http://127.0.0.1:9/hooks")
    order_start_review(order=order, actor=pharmacist)
    webhook_events_publish()
    (delivery,) = WebhookDelivery.objects.all()
    assert (delivery.endpoint, delivery.payload["data"]["status"]) == (endpoint, "in_review")


# --- Sending, retrying, giving up ---------------------------------------------------------------


@pytest.fixture
def upper_jitter(monkeypatch):
    """backoff's jitter at its upper end, so that each wait is exact: 10, 20, 40 s ..."""
    monkeypatch.setattr(tasks.random, "randint", lambda low, high: high)


def test_failures_are_retried_with_back_off_each_attempt_recorded_with_one_webhook_id(
    clock, prescriber, order, upper_jitter, django_capture_on_commit_callbacks
):
    receiver = WebhookReceiver(answers=[500, 503]).start()
    try:
        endpoint = an_endpoint(prescriber, receiver.url)
        t0 = timezone.now()
        assert dispatch(django_capture_on_commit_callbacks) == 1
        delivery = WebhookDelivery.objects.get()
        assert (delivery.status, delivery.attempts, delivery.last_error) == (
            S.PENDING,
            1,
            "HTTP 500",
        )
        assert delivery.next_attempt_at == t0 + datetime.timedelta(seconds=10)
        endpoint.refresh_from_db()
        assert endpoint.failing_since == t0

        clock.shift(datetime.timedelta(seconds=9))
        assert dispatch(django_capture_on_commit_callbacks) == 0  # not due yet
        clock.shift(datetime.timedelta(seconds=1))
        assert dispatch(django_capture_on_commit_callbacks) == 1
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_error) == (
            S.PENDING,
            2,
            "HTTP 503",
        )
        assert delivery.next_attempt_at == t0 + datetime.timedelta(seconds=10 + 20)

        clock.shift(datetime.timedelta(seconds=20))
        assert dispatch(django_capture_on_commit_callbacks) == 1
    finally:
        receiver.stop()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (S.SENT, 3, "")
    assert delivery.sent_at == t0 + datetime.timedelta(seconds=30)
    attempts = list(delivery.attempt_log.values_list("attempted_at", "response_status", "error"))
    assert attempts == [
        (t0, 500, "HTTP 500"),
        (t0 + datetime.timedelta(seconds=10), 503, "HTTP 503"),
        (t0 + datetime.timedelta(seconds=30), 204, ""),
    ]
    assert all(
        ms is not None and ms >= 0
        for ms in delivery.attempt_log.values_list("duration_ms", flat=True)
    )
    assert {r.headers["webhook-id"] for r in receiver.requests} == {delivery.message_id}
    assert len(receiver.requests) == 3
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None  # a success forgets the failures


def test_a_send_delivered_twice_posts_once(clock, prescriber, order, receiver):
    an_endpoint(prescriber, receiver.url)
    webhook_events_publish()
    delivery = WebhookDelivery.objects.get()
    assert webhook_delivery_send(delivery_id=delivery.pk, retry_delay=tasks.backoff).sent
    assert not webhook_delivery_send(delivery_id=delivery.pk, retry_delay=tasks.backoff).sent
    assert len(receiver.requests) == 1
    assert WebhookAttempt.objects.count() == 1


def test_a_redirect_is_not_followed(clock, prescriber, order, django_capture_on_commit_callbacks):
    receiver = WebhookReceiver(answers=[301]).start()
    try:
        an_endpoint(prescriber, receiver.url)
        dispatch(django_capture_on_commit_callbacks)
    finally:
        receiver.stop()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.last_error) == (
        S.PENDING,
        "HTTP 301 (redirects are not followed)",
    )
    assert len(receiver.requests) == 1


def test_an_endpoint_failing_for_24_hours_is_turned_off_and_its_prescribers_emailed_once(
    clock, prescriber, pharmacist, order, upper_jitter, django_capture_on_commit_callbacks
):
    receiver = WebhookReceiver(answers=[500] * 20).start()
    try:
        endpoint = an_endpoint(prescriber, receiver.url)
        t0 = timezone.now()
        dispatch(django_capture_on_commit_callbacks)  # fails: failing since t0
        clock.shift(datetime.timedelta(hours=23, minutes=59))
        order_start_review(order=order, actor=pharmacist)  # one more message
        dispatch(django_capture_on_commit_callbacks)  # both fail; 1 minute short of 24 hours
        endpoint.refresh_from_db()
        assert (endpoint.enabled, endpoint.failing_since) == (True, t0)
        assert not Delivery.objects.filter(kind=DeliveryKind.WEBHOOK_DISABLED).exists()

        clock.shift(datetime.timedelta(minutes=1))
        dispatch(django_capture_on_commit_callbacks)
        requests_when_off = len(receiver.requests)
        # Off: new events make nothing for it, and the sweep sends nothing more.
        order_hold(order=Order.objects.get(pk=order.pk), actor=pharmacist, question="Dose?")
        clock.shift(datetime.timedelta(hours=1))
        with django_capture_on_commit_callbacks(execute=True):
            tasks.delivery_sweep()
    finally:
        receiver.stop()
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_at) == (False, t0 + datetime.timedelta(hours=24))
    assert endpoint.disabled_reason == (
        "Turned off by the pharmacy's portal: every delivery failed for 24 hours."
    )
    assert requests_when_off == len(receiver.requests) == 4  # 1, 2 (23:59), 1 (24:00)
    assert sorted(WebhookDelivery.objects.values_list("status", flat=True)) == [S.FAILED] * 2
    (email,) = Delivery.objects.filter(kind=DeliveryKind.WEBHOOK_DISABLED)
    assert (email.recipient, email.webhook_endpoint, email.status) == (
        prescriber.user.email,
        endpoint,
        S.SENT,
    )
    turned_off = "Demo Compounding Pharmacy: a webhook endpoint of your clinic was turned off"
    (message,) = [m for m in mail.outbox if m.subject == turned_off]
    assert message.to == [prescriber.user.email]
    assert receiver.url in message.body
    assert f"http://portal.test/clinic/webhooks/{endpoint.pk}/" in message.body
    assert "failed for 24 hours" in message.body
    patient = order.prescription.patient
    assert patient.last_name not in message.body and patient.first_name not in message.body


def test_a_delivery_that_fails_for_24_hours_is_given_up(
    clock, prescriber, order, upper_jitter, django_capture_on_commit_callbacks
):
    """Its endpoint answers other messages (so it stays on), never this one."""
    receiver = WebhookReceiver(answers=[400]).start()
    try:
        endpoint = an_endpoint(prescriber, receiver.url)
        dispatch(django_capture_on_commit_callbacks)
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)  # others pass
        receiver.answers = [400]
        clock.shift(datetime.timedelta(hours=24))
        dispatch(django_capture_on_commit_callbacks)
    finally:
        receiver.stop()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        S.FAILED,
        2,
        "HTTP 400 (given up after 24 hours)",
    )
    endpoint.refresh_from_db()
    assert endpoint.enabled


def test_a_failed_delivery_sent_again_keeps_its_webhook_id(
    clock, prescriber, prescriber_client, order, receiver, django_capture_on_commit_callbacks
):
    an_endpoint(prescriber, receiver.url)
    webhook_events_publish()
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=S.FAILED, last_error="HTTP 500")

    response = prescriber_client.post(reverse("webhook_delivery_resend", args=[delivery.pk]))
    assert response.status_code == 302
    dispatch(django_capture_on_commit_callbacks)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.resent_at) == (S.SENT, timezone.now())
    assert [r.headers["webhook-id"] for r in receiver.requests] == [delivery.message_id]
    # Sent: sending it again is refused, and changes nothing.
    assert webhook_delivery_retry(delivery=delivery, actor=prescriber.user) is False


def test_the_sweep_gives_back_a_send_whose_worker_died_and_requeues_a_lost_task(
    clock, prescriber, pharmacist, order, receiver, settings, django_capture_on_commit_callbacks
):
    an_endpoint(prescriber, receiver.url)
    order_start_review(order=order, actor=pharmacist)
    with django_capture_on_commit_callbacks(execute=False):  # queued, never run: lost
        assert tasks.webhook_dispatch() == 2
    died, lost = WebhookDelivery.objects.order_by("pk")
    t0 = timezone.now()
    # A worker claimed the first and died mid-send.
    WebhookDelivery.objects.filter(pk=died.pk).update(status=S.SENDING, claimed_at=t0, attempts=1)

    clock.shift(datetime.timedelta(seconds=settings.OUTBOX_SENDING_AFTER - 1))
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.webhook_delivery_sweep() == 0
    clock.shift(datetime.timedelta(seconds=settings.OUTBOX_PENDING_AFTER))
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.webhook_delivery_sweep() == 2

    assert sorted(r.headers["webhook-id"] for r in receiver.requests) == sorted(
        [died.message_id, lost.message_id]
    )
    died.refresh_from_db()
    assert (died.status, died.attempts) == (S.SENT, 2)
    assert list(died.attempt_log.values_list("attempted_at", "response_status", "error")) == [
        (t0, None, "No answer recorded: the worker stopped during the send."),
        (timezone.now(), 204, ""),
    ]


# --- Addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("http://93.184.215.14/hooks", "The URL must start with https://."),
        ("https://10.1.2.3/hooks", "10.1.2.3 is a private or local address"),
        ("https://127.0.0.1:8443/hooks", "127.0.0.1 is a private or local address"),
        ("https://localhost/hooks", "localhost is a private or local address"),
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is a private or local"),
        ("https://[::1]/hooks", "::1 is a private or local address"),
        ("https://[::ffff:192.168.0.1]/hooks", "::ffff:192.168.0.1 is a private or local"),
        ("https://100.64.0.1/hooks", "100.64.0.1 is a private or local address"),
        ("https://0.0.0.0/hooks", "0.0.0.0 is a private or local address"),
        ("https://clinic.invalid/hooks", "The host name clinic.invalid does not resolve"),
        ("https://user:password@93.184.215.14/hooks", "Leave the user name and password out"),
    ],
)
def test_an_address_inside_a_network_is_refused_at_registration(prescriber, settings, url, refusal):
    settings.WEBHOOK_ALLOWED_PRIVATE_HOSTS = frozenset()
    with pytest.raises(ValidationError) as refused:
        an_endpoint(prescriber, url)
    assert refusal in " ".join(refused.value.message_dict["url"])
    assert not WebhookEndpoint.objects.exists()


def test_a_public_address_is_accepted(prescriber, settings):
    settings.WEBHOOK_ALLOWED_PRIVATE_HOSTS = frozenset()
    endpoint = an_endpoint(prescriber, "https://93.184.215.14/hooks?clinic=7")
    assert (endpoint.url, endpoint.enabled, endpoint.events) == (
        "https://93.184.215.14/hooks?clinic=7",
        True,
        EVERY_EVENT,
    )


def test_an_address_that_became_private_is_refused_at_send_time(
    clock, prescriber, order, receiver, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_ALLOWED_PRIVATE_HOSTS = frozenset({"localhost"})
    an_endpoint(prescriber, f"https://localhost:{receiver.port}/hooks")
    settings.WEBHOOK_ALLOWED_PRIVATE_HOSTS = frozenset()
    dispatch(django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    refusal = (
        "Refused: localhost is a private or local address: webhooks go to public internet "
        "addresses only."
    )
    assert (delivery.status, delivery.last_error) == (S.PENDING, refusal)
    assert list(delivery.attempt_log.values_list("response_status", "error")) == [(None, refusal)]
    assert receiver.requests == []


# --- Services refuse who may not ---------------------------------------------------------------


def test_only_a_prescriber_of_the_clinic_changes_its_endpoints(
    prescriber, other_prescriber, clinic_staff
):
    endpoint = an_endpoint(prescriber, "http://127.0.0.1:9/hooks")
    for outsider in (other_prescriber.user, clinic_staff):
        with pytest.raises(PermissionDenied):
            endpoint_rotate_secret(actor=outsider, endpoint=endpoint)
        with pytest.raises(PermissionDenied):
            endpoint_delete(actor=outsider, endpoint=endpoint)
        with pytest.raises(PermissionDenied):
            endpoint_create(
                actor=outsider, clinic_id=endpoint.clinic_id, url=endpoint.url, events=EVERY_EVENT
            )
    assert WebhookEndpoint.objects.get() == endpoint
    assert WebhookEndpoint.objects.get().secret == endpoint.secret


def test_a_clinic_has_ten_endpoints_at_most(prescriber):
    for number in range(10):
        an_endpoint(prescriber, f"http://127.0.0.1:9/hooks/{number}")
    with pytest.raises(ValidationError) as refused:
        an_endpoint(prescriber, "http://127.0.0.1:9/hooks/10")
    assert refused.value.message_dict == {
        "url": ["A clinic has at most 10 endpoints: remove one it no longer uses first."]
    }
    assert WebhookEndpoint.objects.count() == 10


# --- The portal's pages -------------------------------------------------------------------------

CHOSEN = ["order.on_hold", "order.shipped"]


def test_a_prescriber_adds_an_endpoint_and_sees_its_secret_once(prescriber_client, prescriber):
    response = prescriber_client.post(
        reverse("webhook_endpoint_create"),
        {"url": "http://127.0.0.1:9/hooks", "description": "Clinic EHR", "events": CHOSEN},
    )
    endpoint = WebhookEndpoint.objects.get()
    detail = reverse("webhook_endpoint_detail", args=[endpoint.pk])
    assert (response.status_code, response["Location"]) == (302, detail)
    assert (endpoint.clinic, endpoint.url, endpoint.description, endpoint.events) == (
        clinic_of(prescriber),
        "http://127.0.0.1:9/hooks",
        "Clinic EHR",
        CHOSEN,
    )
    assert (endpoint.created_by, endpoint.enabled) == (prescriber.user, True)

    first = prescriber_client.get(detail).content.decode()
    assert f'id="webhook-secret">{endpoint.secret}</code>' in first
    again = prescriber_client.get(detail).content.decode()
    assert endpoint.secret not in again and "whsec_" not in again
    assert SECRET_TO_SHOW not in prescriber_client.session
    listing = prescriber_client.get(reverse("webhook_endpoint_list")).content.decode()
    assert "http://127.0.0.1:9/hooks" in listing and "whsec_" not in listing


def test_a_refused_address_is_said_on_the_form_and_saves_nothing(prescriber_client, settings):
    settings.WEBHOOK_ALLOWED_PRIVATE_HOSTS = frozenset()
    response = prescriber_client.post(
        reverse("webhook_endpoint_create"), {"url": "https://10.0.0.8/hooks", "events": CHOSEN}
    )
    assert response.status_code == 200
    assert response.context["form"].errors == {
        "url": [
            "10.0.0.8 is a private or local address: webhooks go to public internet addresses only."
        ],
    }
    empty = prescriber_client.post(reverse("webhook_endpoint_create"), {"url": "https://x.test"})
    assert empty.context["form"].errors == {"events": ["This field is required."]}
    assert not WebhookEndpoint.objects.exists()


def test_the_prescriber_changes_turns_off_rotates_and_removes_an_endpoint(
    prescriber_client, prescriber, clock
):
    endpoint = an_endpoint(prescriber, "http://127.0.0.1:9/hooks")
    old = endpoint.secret
    edit = reverse("webhook_endpoint_update", args=[endpoint.pk])
    assert 'value="http://127.0.0.1:9/hooks"' in prescriber_client.get(edit).content.decode()

    # Unticked, "Turned on" turns it off.
    response = prescriber_client.post(
        edit, {"url": "http://127.0.0.1:9/other", "description": "", "events": ["recall.notice"]}
    )
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.events, endpoint.enabled, endpoint.disabled_reason) == (
        "http://127.0.0.1:9/other",
        ["recall.notice"],
        False,
        "Turned off by a prescriber of the clinic.",
    )
    prescriber_client.post(edit, {"url": endpoint.url, "events": CHOSEN, "enabled": "on"})
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at) == (True, "", None)

    response = prescriber_client.post(reverse("webhook_endpoint_rotate", args=[endpoint.pk]))
    endpoint.refresh_from_db()
    assert (endpoint.previous_secret, endpoint.secret != old) == (old, True)
    page = prescriber_client.get(response["Location"]).content.decode()
    assert endpoint.secret in page and old not in page
    assert "The previous secret signs too until 03/03/2026 09:00" in page  # New York time
    assert endpoint.secret not in prescriber_client.get(response["Location"]).content.decode()

    response = prescriber_client.post(reverse("webhook_endpoint_delete", args=[endpoint.pk]))
    assert response["Location"] == reverse("webhook_endpoint_list")
    assert not WebhookEndpoint.objects.exists()
    # Who changed what is kept, never a secret.
    history = WebhookEndpoint.history.model
    assert {f.name for f in history._meta.fields} & {"secret", "previous_secret"} == set()
    assert list(history.objects.order_by("history_id").values_list("history_type", flat=True)) == [
        "+",
        "~",
        "~",
        "~",
        "-",
    ]
    assert set(history.objects.values_list("history_user", flat=True)) == {prescriber.user.pk}


def test_the_endpoint_page_lists_deliveries_and_attempts_in_three_queries_however_many(
    clock, prescriber, prescriber_client, pharmacist, order, django_capture_on_commit_callbacks
):
    receiver = WebhookReceiver(answers=[500] * 30).start()
    try:
        endpoint = an_endpoint(prescriber, receiver.url)
        page = reverse("webhook_endpoint_detail", args=[endpoint.pk])
        dispatch(django_capture_on_commit_callbacks)
        prescriber_client.get(page)  # the session's first request writes it
        with CaptureQueriesContext(connection) as one:
            first = prescriber_client.get(page)
        order = order_start_review(order=order, actor=pharmacist)
        order = order_hold(order=order, actor=pharmacist, question="Dose?")
        clock.shift(datetime.timedelta(minutes=5))
        dispatch(django_capture_on_commit_callbacks)
        prescriber_client.get(page)  # the session's last-seen time, written again
        with CaptureQueriesContext(connection) as four:
            more = prescriber_client.get(page)
    finally:
        receiver.stop()
    assert len(first.context["deliveries"]) == 1 and len(more.context["deliveries"]) == 4
    assert len(one.captured_queries) == len(four.captured_queries)
    html = more.content.decode()
    assert html.count("HTTP 500") == 5  # the first delivery twice, the three others once
    assert "Send again" not in html  # none failed for good


def test_another_clinics_prescriber_gets_404_and_changes_nothing(
    clock, client, prescriber, other_prescriber, clinic_staff, order
):
    endpoint = an_endpoint(prescriber, "http://127.0.0.1:9/hooks")
    webhook_events_publish()
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=S.FAILED)

    def state():
        return (
            list(WebhookEndpoint.objects.values()),
            list(WebhookDelivery.objects.values()),
            WebhookEndpoint.history.count(),
        )

    before = state()
    data = {"url": "http://127.0.0.1:9/theirs", "events": EVERY_EVENT, "enabled": "on"}
    client.force_login(other_prescriber.user)
    for name, method in [
        ("webhook_endpoint_detail", "get"),
        ("webhook_endpoint_update", "get"),
        ("webhook_endpoint_update", "post"),
        ("webhook_endpoint_rotate", "post"),
        ("webhook_endpoint_delete", "post"),
    ]:
        response = getattr(client, method)(reverse(name, args=[endpoint.pk]), data)
        assert response.status_code == 404, name
    resend = client.post(reverse("webhook_delivery_resend", args=[delivery.pk]))
    assert resend.status_code == 404
    assert "127.0.0.1:9/hooks" not in client.get(reverse("webhook_endpoint_list")).content.decode()
    # Clinic staff of the endpoint's own clinic draft orders; webhooks are its prescribers'.
    client.force_login(clinic_staff)
    assert client.get(reverse("webhook_endpoint_list")).status_code == 403
    assert client.post(reverse("webhook_endpoint_rotate", args=[endpoint.pk])).status_code == 403
    assert state() == before


def test_a_prescriber_of_both_clinics_acting_for_the_other_gets_404(
    client, prescriber, other_prescriber
):
    endpoint = an_endpoint(prescriber, "http://127.0.0.1:9/hooks")
    MembershipFactory(
        user=prescriber.user, clinic=clinic_of(other_prescriber), role=MembershipRole.PRESCRIBER
    )
    client.force_login(prescriber.user)
    client.post(reverse("clinic_switch"), {"clinic": clinic_of(other_prescriber).pk})
    assert client.get(reverse("webhook_endpoint_detail", args=[endpoint.pk])).status_code == 404


# --- The admin ----------------------------------------------------------------------------------


def test_staff_see_deliveries_with_their_attempts_and_never_a_secret(
    clock,
    client,
    prescriber,
    pharmacist,
    technician,
    order,
    receiver,
    django_capture_on_commit_callbacks,
):
    endpoint = an_endpoint(prescriber, receiver.url)
    dispatch(django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    verified_staff_login(client, technician)
    page = client.get(reverse("admin:pharmacy_webhookdelivery_change", args=[delivery.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert delivery.message_id in html and "204" in html
    endpoint_page = client.get(reverse("admin:pharmacy_webhookendpoint_change", args=[endpoint.pk]))
    assert endpoint_page.status_code == 200
    assert endpoint.secret not in endpoint_page.content.decode()
    assert "whsec_" not in endpoint_page.content.decode()


def test_a_pharmacist_sends_a_failed_delivery_again_from_the_admin(
    clock, client, prescriber, pharmacist, order
):
    an_endpoint(prescriber, "http://127.0.0.1:9/hooks")
    webhook_events_publish()
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=S.FAILED, last_error="HTTP 500")
    verified_staff_login(client, pharmacist)
    response = client.post(
        reverse("admin:pharmacy_webhookdelivery_changelist"),
        {"action": "send_again", ACTION_CHECKBOX_NAME: [delivery.pk]},
    )
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error, delivery.resent_at) == (
        S.PENDING,
        "",
        timezone.now(),
    )
    assert admin.site.is_registered(WebhookEndpoint) and admin.site.is_registered(WebhookDelivery)


def test_the_turned_off_email_still_goes_when_its_endpoint_was_removed_since(
    clock, prescriber, prescriber_client, order
):
    endpoint = an_endpoint(prescriber, "http://127.0.0.1:9/hooks")
    webhook_events_publish()
    delivery = WebhookDelivery.objects.get()
    emails = endpoint_turn_off_failing(endpoint=endpoint, now=timezone.now())
    assert [e.recipient for e in emails] == [prescriber.user.email]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error) == (
        S.FAILED,
        "Not sent: the endpoint was turned off. Turned off by the pharmacy's portal: every "
        "delivery failed for 24 hours.",
    )
    # Off: sending it again is refused until the endpoint is turned on.
    response = prescriber_client.post(reverse("webhook_delivery_resend", args=[delivery.pk]))
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Turn the endpoint on again first: it receives nothing while off."
    ]
    endpoint_delete(actor=prescriber.user, endpoint=endpoint)

    assert outbox.delivery_send(delivery_id=emails[0].pk) is True
    (message,) = mail.outbox
    assert message.body.startswith(
        "A webhook endpoint of your clinic was turned off (and has been removed since): every "
        "message the portal sent to it failed for 24 hours."
    )
    assert "http://portal.test/clinic/webhooks/\n" in message.body
