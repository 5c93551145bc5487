"""Webhooks to clinics' systems: the endpoints a clinic's prescribers register, and the messages
for them, each an outbox row (WebhookDelivery) written before anything is sent.

Where the messages come from. The order's own event table is the outbox: the orders layer writes
an OrderEvent in the same transaction as every change of an order (and cannot import the
pharmacy to do more), so webhook_events_publish reads the events not yet published, makes each
one's deliveries for the enabled endpoints of the order's clinic that chose its kind, and marks
the events published, in one transaction. The events are read with SKIP LOCKED, so two
publishers at once (beat's run and the outbox sweep's) share the work, and the unique keys make
a second delivery for the same endpoint and event impossible. An event committed late (its
transaction started before an earlier-numbered one) is still found: the publisher looks for
unpublished rows, not for rows past a mark. A recall notice is the pharmacy's own row: its
deliveries are made in the recall's transaction by webhook_recall_notices_publish, with no
event table in between.

Who queues them: nobody here. pharmacy/tasks.py (above this module: its workers call the
publisher) queues every due delivery once the transaction that made it has committed, on each
run of the publisher (every WEBHOOK_PUBLISH_EVERY seconds) and of the sweep; a delivery made in
a recall or sent again by a person goes on the next run. pharmacy/webhook_sending.py sends them.

What a message says: the order's id and number, its status, what happened and when; for a
hold the pharmacy's question, for a shipment the carrier and tracking number, for a label the
partner API's path to it, for a recall notice its id and the orders it reaches. Never a
patient's name, birth date, address or diagnosis."""

import base64
import datetime
import secrets
import uuid
from collections import defaultdict
from collections.abc import Iterable
from email.utils import make_msgid

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from core.models import User
from core.roles import is_pharmacist
from orders.models import Order, OrderEvent, OrderEventKind, OrderStatus
from prescribers.models import Clinic
from prescribers.selectors import clinic_prescribers, prescriber_of_clinic

from .models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    RecallNotice,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEventType,
)
from .models.webhooks import SECRET_PREFIX
from .selectors import recall_notice_orders
from .webhook_addresses import WebhookAddressRefused, webhook_target

E, S = WebhookEventType, DeliveryStatus

# The partner API's address of an order's latest label, which a label.ready message gives.
API_LABEL_PATH = "/api/v1/orders/{order_id}/label/"
# An order has a label the clinic may fetch once the pharmacist's final check is done.
LABELLED_STATUSES = frozenset({OrderStatus.READY, OrderStatus.SHIPPED, OrderStatus.DELIVERED})
# Events published per transaction: each batch's locks are held briefly.
PUBLISH_BATCH = 500
# A clinic's endpoints at most (each event is one message per endpoint): pharmacy policy.
MAX_ENDPOINTS_PER_CLINIC = 10
# Standard Webhooks: secrets of 24 to 64 random bytes; 32, as HMAC-SHA256's own size.
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_message_id() -> str:
    """The webhook-id of a delivery, the same on every attempt (Standard Webhooks: msg_...)."""
    return f"msg_{uuid.uuid4().hex}"


def _timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- What a message says ------------------------------------------------------------------------


def order_event_types(event: OrderEvent, *, labelled_before: bool = False) -> list[str]:
    """The kinds of message an order's event makes: every move of its status; a hold and a
    shipment also as themselves; a label rendered once the order is checked (or the final check
    of an order whose label was rendered before it, `labelled_before`) as label ready."""
    moved = event.from_status != event.to_status
    kinds = [E.ORDER_STATUS_CHANGED] if moved else []
    if event.kind == OrderEventKind.HELD:
        kinds.append(E.ORDER_ON_HOLD)
    if event.kind == OrderEventKind.SHIPPED:
        kinds.append(E.ORDER_SHIPPED)
    rendered = event.kind == OrderEventKind.LABEL_RENDERED
    if (rendered and event.to_status in LABELLED_STATUSES) or (
        moved and event.to_status == OrderStatus.READY and labelled_before
    ):
        kinds.append(E.ORDER_LABEL_READY)
    return kinds


def order_event_payload(event: OrderEvent, event_type: str) -> dict:
    """The message (Standard Webhooks' type, timestamp and data) of an order's event."""
    data = {
        "order_id": event.order_id,
        "order_number": Order.number_of(event.order_id),
        "status": event.to_status,
    }
    said = event.parameters
    if event_type == E.ORDER_STATUS_CHANGED:
        data["previous_status"] = event.from_status or None
    elif event_type == E.ORDER_ON_HOLD:
        data["question"] = said.get("question", event.note)
    elif event_type == E.ORDER_SHIPPED:
        data["carrier"] = said.get("carrier", "")
        data["tracking_number"] = said.get("tracking_number", "")
    elif event_type == E.ORDER_LABEL_READY:
        data["label_path"] = API_LABEL_PATH.format(order_id=event.order_id)
    return {"type": str(event_type), "timestamp": _timestamp(event.created_at), "data": data}


def recall_notice_payload(notice: RecallNotice, orders: Iterable[Order]) -> dict:
    return {
        "type": str(E.RECALL_NOTICE),
        "timestamp": _timestamp(notice.created_at),
        "data": {
            "notice_id": notice.pk,
            "orders": [{"order_id": o.pk, "order_number": o.number} for o in orders],
        },
    }


# --- Publishing ---------------------------------------------------------------------------------


def _enabled_endpoints(clinic_ids: Iterable[int]) -> dict[int, list[WebhookEndpoint]]:
    by_clinic: dict[int, list[WebhookEndpoint]] = defaultdict(list)
    endpoints = WebhookEndpoint.objects.filter(clinic_id__in=set(clinic_ids), enabled=True)
    for endpoint in endpoints.order_by("pk"):
        by_clinic[endpoint.clinic_id].append(endpoint)
    return by_clinic


def _labelled_before(events: list[OrderEvent]) -> set[int]:
    """The final checks among the events (moves to ready) of orders whose label was rendered
    before the check, by event id: no render follows those (the label exists)."""
    checks = [
        e for e in events if e.to_status == OrderStatus.READY and e.from_status != e.to_status
    ]
    if not checks:
        return set()
    first_render: dict[int, int] = {}
    rendered = OrderEvent.objects.filter(
        order_id__in={e.order_id for e in checks}, kind=OrderEventKind.LABEL_RENDERED
    ).values_list("order_id", "pk")
    for order_id, pk in rendered:
        first_render[order_id] = min(pk, first_render.get(order_id, pk))
    return {e.pk for e in checks if first_render.get(e.order_id, e.pk) < e.pk}


def _order_event_deliveries(events: list[OrderEvent], now: datetime.datetime) -> int:
    clinic_of = dict(
        Order.objects.filter(pk__in={e.order_id for e in events}).values_list("pk", "clinic_id")
    )
    endpoints = _enabled_endpoints(clinic_of.values())
    if not endpoints:
        return 0
    labelled = _labelled_before([e for e in events if endpoints.get(clinic_of[e.order_id])])
    rows = [
        WebhookDelivery(
            endpoint=endpoint,
            order_event=event,
            event_type=kind,
            message_id=new_message_id(),
            payload=order_event_payload(event, kind),
            next_attempt_at=now,
        )
        for event in events
        for endpoint in endpoints.get(clinic_of[event.order_id], ())
        # An endpoint hears of what happens from its making on.
        if endpoint.created_at <= event.created_at
        for kind in order_event_types(event, labelled_before=event.pk in labelled)
        if kind in endpoint.events
    ]
    WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def webhook_events_publish() -> int:
    """Publish the order events not published yet, PUBLISH_BATCH at a time: each batch's
    deliveries made and its events marked published in one transaction (the events locked with
    SKIP LOCKED, so that another publisher at the same time takes the others). Returns how many
    deliveries it made; pharmacy/tasks.py queues them after the commit."""
    made = 0
    while True:
        with transaction.atomic():
            events = list(
                OrderEvent.objects.select_for_update(skip_locked=True)
                .filter(published_at__isnull=True)
                .order_by("pk")[:PUBLISH_BATCH]
            )
            if not events:
                return made
            now = timezone.now()
            made += _order_event_deliveries(events, now)
            OrderEvent.objects.filter(pk__in=[e.pk for e in events]).update(published_at=now)
        if len(events) < PUBLISH_BATCH:
            return made


def webhook_recall_notices_publish(*, notices: Iterable[RecallNotice]) -> list[WebhookDelivery]:
    """The deliveries of recall notices, written in the transaction that makes the notices
    (pharmacy/recalls.py): one per notice and enabled endpoint of its clinic that chose recall
    notices, naming the clinic's orders the recall reaches. The publisher queues them on its
    next run.

    Why here and not through an event table: a notice is the pharmacy's own row, one per clinic
    (not per order, as the order's events are), made in the recall's transaction; writing its
    messages in that same transaction gives the outbox's guarantee directly (no notice without
    its messages, no message without its notice), with nothing more to publish later."""
    notices = list(notices)
    endpoints = _enabled_endpoints(notice.clinic_id for notice in notices)
    now = timezone.now()
    rows = []
    for notice in notices:
        chose = [e for e in endpoints.get(notice.clinic_id, ()) if E.RECALL_NOTICE in e.events]
        if not chose:
            continue
        payload = recall_notice_payload(notice, recall_notice_orders(notice))
        rows += [
            WebhookDelivery(
                endpoint=endpoint,
                recall_notice=notice,
                event_type=E.RECALL_NOTICE,
                message_id=new_message_id(),
                payload=payload,
                next_attempt_at=now,
            )
            for endpoint in chose
        ]
    return WebhookDelivery.objects.bulk_create(rows)


# --- Endpoints ----------------------------------------------------------------------------------


def _check_prescriber(actor: User, clinic_id: int) -> None:
    if prescriber_of_clinic(actor, clinic_id) is None:
        raise PermissionDenied("Only a prescriber of this clinic may change its webhooks.")


def _checked(*, url: str, description: str, events: Iterable[str]) -> dict:
    """The endpoint's fields, or ValidationError by field."""
    errors: dict[str, list[str]] = {}
    try:
        webhook_target(url)
    except WebhookAddressRefused as refused:
        errors["url"] = refused.messages
    chosen = [kind for kind in E.values if kind in set(events)]
    if not chosen or len(chosen) != len(set(events)):
        errors["events"] = ["Choose the events this endpoint receives."]
    description = (description or "").strip()
    if len(description) > 200:
        errors["description"] = ["Keep the description to 200 characters."]
    if errors:
        raise ValidationError(errors)
    return {"url": url, "description": description, "events": chosen}


def endpoint_create(
    *, actor: User, clinic_id: int, url: str, events: Iterable[str], description: str = ""
) -> WebhookEndpoint:
    """A new endpoint of the clinic, turned on, with a new secret (endpoint.secret: show it to
    the clinic now, once). Raises ValidationError by field: an address webhooks may not go to
    (pharmacy/webhook_addresses.py), no events chosen."""
    _check_prescriber(actor, clinic_id)
    fields = _checked(url=url, description=description, events=events)
    with transaction.atomic():
        # The clinic's row, locked: two requests at once cannot pass the limit together.
        Clinic.objects.select_for_update().get(pk=clinic_id)
        if WebhookEndpoint.objects.filter(clinic_id=clinic_id).count() >= MAX_ENDPOINTS_PER_CLINIC:
            raise ValidationError(
                {
                    "url": f"A clinic has at most {MAX_ENDPOINTS_PER_CLINIC} endpoints: remove one "
                    "it no longer uses first."
                }
            )
        endpoint = WebhookEndpoint(
            clinic_id=clinic_id, created_by=actor, secret=new_secret(), **fields
        )
        endpoint._history_user = actor
        endpoint.save()
    return endpoint


def endpoint_update(
    *,
    actor: User,
    endpoint: WebhookEndpoint,
    url: str,
    events: Iterable[str],
    description: str = "",
    enabled: bool = True,
) -> WebhookEndpoint:
    """Change the endpoint's address, events or description, or turn it off or on again.
    Turned off, it receives nothing (its unsent deliveries fail, for sending again later);
    turned on, its failures are forgotten."""
    _check_prescriber(actor, endpoint.clinic_id)
    fields = _checked(url=url, description=description, events=events)
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        for name, value in fields.items():
            setattr(locked, name, value)
        changed = list(fields)
        if locked.enabled and not enabled:
            changed += _turn_off(locked, "Turned off by a prescriber of the clinic.")
        elif enabled and not locked.enabled:
            locked.enabled, locked.disabled_reason, locked.disabled_at = True, "", None
            locked.failing_since = None
            changed += ["enabled", "disabled_reason", "disabled_at", "failing_since"]
        locked._history_user = actor
        locked.save(update_fields=changed)
    return locked


def _turn_off(endpoint: WebhookEndpoint, reason: str) -> list[str]:
    """Turn the (locked) endpoint off: its unsent deliveries fail with the reason. Returns the
    fields it changed."""
    now = timezone.now()
    endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = False, reason, now
    WebhookDelivery.objects.filter(endpoint=endpoint, status=S.PENDING).update(
        status=S.FAILED, last_error=f"Not sent: the endpoint was turned off. {reason}"
    )
    return ["enabled", "disabled_reason", "disabled_at"]


def endpoint_rotate_secret(*, actor: User, endpoint: WebhookEndpoint) -> str:
    """A new secret for the endpoint, returned to be shown once. Messages carry signatures by
    the old and the new secret for WEBHOOK_SECRET_ROTATION_GRACE (the previous rotation's old
    secret, if still in its grace, is dropped now), then by the new one only."""
    _check_prescriber(actor, endpoint.clinic_id)
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        locked.previous_secret = locked.secret
        locked.previous_secret_expires_at = timezone.now() + settings.WEBHOOK_SECRET_ROTATION_GRACE
        locked.secret = new_secret()
        locked._history_user = actor
        locked.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
    return locked.secret


def endpoint_delete(*, actor: User, endpoint: WebhookEndpoint) -> None:
    """Remove the endpoint with its deliveries and their attempts."""
    _check_prescriber(actor, endpoint.clinic_id)
    with transaction.atomic():
        endpoint._history_user = actor
        endpoint.delete()


def endpoint_turn_off_failing(
    *, endpoint: WebhookEndpoint, now: datetime.datetime
) -> list[Delivery]:
    """Turn off an endpoint (locked by the caller) whose deliveries have all failed since
    endpoint.failing_since, and write one email to each prescriber of its clinic, in the caller's
    transaction. Returns the emails, for the caller to queue after commit (the outbox sweep sends
    them otherwise).

    The email rows are written here as notifications.delivery_enqueue writes them (the same
    unique key and Message-ID), not through it: the workers call this, and delivery_enqueue
    queues through pharmacy/tasks.py, which imports the workers' modules."""
    hours = round(settings.WEBHOOK_DISABLE_AFTER.total_seconds() / 3600)
    reason = f"Turned off by the pharmacy's portal: every delivery failed for {hours} hours."
    changed = _turn_off(endpoint, reason)
    endpoint.save(update_fields=changed)
    subject_key = f"webhook_endpoint:{endpoint.pk}:{int(now.timestamp())}"
    emails = []
    for prescriber in clinic_prescribers(endpoint.clinic_id).select_related("user"):
        email, _ = Delivery.objects.get_or_create(
            kind=DeliveryKind.WEBHOOK_DISABLED,
            subject_key=subject_key,
            recipient=prescriber.user.email,
            defaults={"webhook_endpoint": endpoint, "message_id": make_msgid(domain="ldn-portal")},
        )
        emails.append(email)
    return emails


# --- Deliveries ---------------------------------------------------------------------------------


def webhook_delivery_retry(*, delivery: WebhookDelivery, actor: User) -> bool:
    """A prescriber of the clinic (or a pharmacist, in the admin) sends a failed delivery
    again, with the same webhook-id: it goes on the publisher's next run. Refused while its
    endpoint is off. Returns False when it had not failed (sent, or on its way)."""
    endpoint = delivery.endpoint
    if not is_pharmacist(actor):
        _check_prescriber(actor, endpoint.clinic_id)
    if not endpoint.enabled:
        raise ValidationError("Turn the endpoint on again first: it receives nothing while off.")
    now = timezone.now()
    again = WebhookDelivery.objects.filter(pk=delivery.pk, status=S.FAILED).update(
        status=S.PENDING, next_attempt_at=now, queued_at=None, resent_at=now, last_error=""
    )
    return bool(again)
