"""The outbox: every email the portal sends is first a row, written in the same transaction as
the change that causes it, label PDFs kept by version, and print jobs for the print stations."""

from django.conf import settings
from django.db import models

from orders.models import Order


class DeliveryKind(models.TextChoices):
    LABEL_READY = "label_ready", "Label ready"
    ON_HOLD = "on_hold", "Order on hold"
    REJECTED = "rejected", "Order rejected"
    SHIPPED = "shipped", "Order shipped"
    RECALL_NOTICE = "recall_notice", "Recall notice"
    # Made with Django's mail API elsewhere (password resets, prescribers' decisions).
    ACCOUNT = "account", "Account email"
    # To the clinic's prescribers: a webhook endpoint of theirs was turned off after failing.
    WEBHOOK_DISABLED = "webhook_disabled", "Webhook endpoint turned off"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class Delivery(models.Model):
    """One email to one recipient about one thing. The unique key makes a second row for the
    same (kind, thing, recipient) impossible, so a change made twice mails once."""

    kind = models.CharField(max_length=20, choices=DeliveryKind.choices)
    recipient = models.EmailField()
    # What it is about: "order:12", "recall_notice:5" or "webhook_endpoint:3:<when it was turned
    # off>" (the foreign keys below say which), or "message:<uuid>" for an account email.
    subject_key = models.CharField(max_length=50)
    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, null=True, blank=True, related_name="deliveries"
    )
    recall_notice = models.ForeignKey(
        "pharmacy.RecallNotice", on_delete=models.PROTECT, null=True, blank=True,
        related_name="deliveries",
    )  # fmt: skip
    # The endpoint an email about a turned-off webhook endpoint names (gone if it was deleted
    # since: the email then says so).
    webhook_endpoint = models.ForeignKey(
        "pharmacy.WebhookEndpoint",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField(max_length=200, blank=True)
    # An account email as it was made (subject, body, sender, alternatives): kept until it is
    # sent, then only its subject. Other kinds are composed when they are sent.
    message = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "subject_key", "recipient"], name="one_delivery_per_kind_subject"
            )
        ]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self):
        return f"{self.get_kind_display()} to {self.recipient}"


class LabelDocument(models.Model):
    """A rendered label PDF of an order. Re-rendering makes a new version; old ones are kept."""

    # Indexed by one_label_per_version, which starts with it.
    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, related_name="labels", db_index=False
    )
    version = models.PositiveSmallIntegerField()
    file = models.FileField(upload_to="labels/%Y/%m/")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["order", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["order", "version"], name="one_label_per_version")
        ]

    def __str__(self):
        return f"Label of {self.order} v{self.version}"

    @property
    def access_description(self) -> str:
        """How the access audit names the label (core/audit.py): no query for the order."""
        return f"Label v{self.version} of order {Order.number_of(self.order_id)}"


class PrintStation(models.Model):
    """A printer the pharmacy prints labels on: an office printer taking PDFs, or a thermal
    label printer taking ZPL II at its resolution. Retired stations are made inactive, not
    deleted, so the print jobs sent to them keep their station."""

    class OutputFormat(models.TextChoices):
        PDF = "pdf", "PDF"
        ZPL = "zpl", "ZPL II (thermal label printer)"

    class Dpi(models.IntegerChoices):
        DPI_203 = 203, "203 dpi (8 dots/mm)"
        DPI_300 = 300, "300 dpi (12 dots/mm)"

    name = models.CharField(max_length=100, unique=True)
    output_format = models.CharField(
        max_length=3, choices=OutputFormat.choices, default=OutputFormat.PDF
    )
    dpi = models.PositiveSmallIntegerField(
        choices=Dpi.choices, default=Dpi.DPI_203, help_text="The printer's resolution, for ZPL."
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class PrintJob(models.Model):
    """The labels of one or many orders rendered in the background for a print station (a PDF
    when it has none), with its progress."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Rendering"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    order_ids = models.JSONField()
    total = models.PositiveIntegerField()
    done = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    station = models.ForeignKey(
        PrintStation, on_delete=models.PROTECT, null=True, blank=True, related_name="print_jobs"
    )
    file = models.FileField(upload_to="print-jobs/%Y/%m/", blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"Labels of {self.total} orders ({self.get_status_display().lower()})"

    @property
    def percent(self) -> int:
        return 100 * self.done // self.total if self.total else 100

    @property
    def file_extension(self) -> str:
        """What the rendered file is, "pdf" or "zpl" ("" before it is rendered): said by its
        name, as the station's format may have changed since."""
        return self.file.name.rpartition(".")[2].lower() if self.file else ""
