"""Webhooks to a clinic's own systems: the HTTPS endpoints its prescribers register, each message
to one of them as an outbox row (WebhookDelivery, written before anything is sent), and every
attempt to send it (WebhookAttempt)."""

from django.conf import settings
from django.db import models

from core.history import HistoricalRecords

from .notifications import DeliveryStatus


class WebhookEventType(models.TextChoices):
    """What a message announces (its "type", as the Standard Webhooks payload names it)."""

    ORDER_STATUS_CHANGED = "order.status_changed", "Order status changed"
    ORDER_LABEL_READY = "order.label_ready", "Label ready"
    ORDER_ON_HOLD = "order.on_hold", "Order on hold, with the pharmacy's question"
    ORDER_SHIPPED = "order.shipped", "Order shipped, with carrier and tracking number"
    RECALL_NOTICE = "recall.notice", "Recall notice"


# The Standard Webhooks secret prefix: the rest is the key, base64.
SECRET_PREFIX = "whsec_"


class WebhookEndpoint(models.Model):
    """An address of a clinic's system that receives the events it chose, signed with the
    endpoint's secret. The secret is kept as it is (an HMAC needs the key itself, a hash of it
    would not do), is shown to the clinic once when it is made, and never again; during a
    rotation the previous secret signs too, until previous_secret_expires_at."""

    # Indexed by webhook_endpoint_clinic, which starts with it.
    clinic = models.ForeignKey(
        "prescribers.Clinic",
        on_delete=models.PROTECT,
        related_name="webhook_endpoints",
        db_index=False,
    )
    url = models.URLField("URL", max_length=500)
    description = models.CharField(max_length=200, blank=True)
    # The WebhookEventType values it receives.
    events = models.JSONField(default=list)
    secret = models.CharField(max_length=100, editable=False)
    previous_secret = models.CharField(max_length=100, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    enabled = models.BooleanField("turned on", default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Since when every attempt to send to it has failed (None after a success).
    failing_since = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # Who changed the address, the events or turned it off; never the secrets.
    history = HistoricalRecords(
        excluded_fields=["secret", "previous_secret", "previous_secret_expires_at"]
    )

    class Meta:
        ordering = ["clinic", "created_at", "pk"]
        indexes = [models.Index(fields=["clinic", "created_at"], name="webhook_endpoint_clinic")]

    def __str__(self):
        return self.url

    @property
    def event_labels(self) -> list[str]:
        return [WebhookEventType(value).label for value in self.events]


class WebhookDelivery(models.Model):
    """One message to one endpoint about one event of an order or one recall notice, made once
    (the unique keys) and always sent with the same webhook-id (message_id), so that a receiver
    drops a repeat. The payload is what the clinic already knows: no patient's name, birth date,
    address or diagnosis."""

    # Indexed by webhook_delivery_endpoint, which starts with it.
    endpoint = models.ForeignKey(
        WebhookEndpoint,
        on_delete=models.CASCADE,
        related_name="deliveries",
        db_index=False,
    )
    order_event = models.ForeignKey(
        "orders.OrderEvent", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    recall_notice = models.ForeignKey(
        "pharmacy.RecallNotice",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="webhook_deliveries",
    )
    event_type = models.CharField(max_length=40, choices=WebhookEventType.choices)
    message_id = models.CharField("webhook-id", max_length=40, unique=True)
    payload = models.JSONField()
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    # When the next attempt may go; the publisher queues it then (queued_at says it did).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # A person asked for it to go again (after it failed): its 24 hours start again then.
    resent_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "order_event", "event_type"],
                condition=models.Q(order_event__isnull=False),
                name="one_webhook_per_endpoint_and_order_event",
            ),
            models.UniqueConstraint(
                fields=["endpoint", "recall_notice"],
                condition=models.Q(recall_notice__isnull=False),
                name="one_webhook_per_endpoint_and_recall_notice",
            ),
            models.CheckConstraint(
                name="webhook_about_an_order_event_or_a_recall_notice",
                condition=models.Q(order_event__isnull=False, recall_notice__isnull=True)
                | models.Q(order_event__isnull=True, recall_notice__isnull=False),
            ),
        ]
        indexes = [
            # The endpoint's page: its latest deliveries.
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_endpoint"),
            # The publisher and the sweep read the unsent rows alone.
            models.Index(
                fields=["status", "next_attempt_at"],
                condition=models.Q(status__in=[DeliveryStatus.PENDING, DeliveryStatus.SENDING]),
                name="webhook_delivery_unsent",
            ),
        ]

    def __str__(self):
        return f"{self.get_event_type_display()} to {self.endpoint}"


class WebhookAttempt(models.Model):
    """One try to send a delivery: when, the HTTP status or the error, and how long it took.
    An attempt whose worker stopped mid-send has neither (the sweep records it)."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    attempted_at = models.DateTimeField()
    response_status = models.PositiveSmallIntegerField("HTTP status", null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField("duration (ms)", null=True, blank=True)

    class Meta:
        ordering = ["attempted_at", "pk"]

    def __str__(self):
        return f"Attempt at {self.attempted_at:%Y-%m-%d %H:%M:%S}"

    @property
    def succeeded(self) -> bool:
        return self.response_status is not None and 200 <= self.response_status < 300
