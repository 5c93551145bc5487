"""Ingredient lots, compounding batches with their QC, dispenses from batches, and recalls."""

from django.conf import settings
from django.db import models

from core.history import HistoricalRecords
from core.models import StatusEvent
from core.numbers import quantity_text
from orders.models import FormulationVersion, Ingredient


class LotStatus(models.TextChoices):
    QUARANTINE = "quarantine", "Quarantine"
    RELEASED = "released", "Released"
    REJECTED = "rejected", "Rejected"
    RECALLED = "recalled", "Recalled"


class IngredientLot(models.Model):
    """A received lot of an ingredient; usable in batches once released."""

    # Indexed by one_record_per_lot, which starts with it.
    ingredient = models.ForeignKey(
        Ingredient, on_delete=models.PROTECT, related_name="lots", db_index=False
    )
    manufacturer = models.CharField(max_length=120)
    lot_number = models.CharField(max_length=60)
    expires_on = models.DateField()
    quantity_received = models.DecimalField(max_digits=12, decimal_places=3)
    certificate_of_analysis = models.CharField(
        max_length=200, help_text="Reference of the supplier's certificate of analysis."
    )
    status = models.CharField(
        max_length=12, choices=LotStatus.choices, default=LotStatus.QUARANTINE
    )
    status_changed_at = models.DateTimeField(null=True, blank=True)
    received_on = models.DateField()
    received_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["ingredient__name", "expires_on"]
        constraints = [
            models.UniqueConstraint(
                fields=["ingredient", "manufacturer", "lot_number"], name="one_record_per_lot"
            )
        ]

    def __str__(self):
        return f"{self.ingredient} lot {self.lot_number}"


class IngredientLotEvent(StatusEvent):
    subject_field = "lot"

    lot = models.ForeignKey(IngredientLot, on_delete=models.PROTECT, related_name="events")
    from_status = models.CharField(max_length=12, choices=LotStatus.choices, blank=True)
    to_status = models.CharField(max_length=12, choices=LotStatus.choices)

    class Meta(StatusEvent.Meta):
        pass


class BatchStatus(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    AWAITING_QC = "awaiting_qc", "Awaiting QC"
    RELEASED = "released", "Released"
    REJECTED = "rejected", "Rejected"
    QUARANTINED = "quarantined", "Quarantined"
    RECALLED = "recalled", "Recalled"


# Still being made or checked: the batch's record may change, and it is not released.
UNRELEASED_BATCH_STATUSES = (BatchStatus.IN_PROGRESS, BatchStatus.AWAITING_QC)


class Batch(models.Model):
    """A compounding record: what was made, from which lots, by whom, its QC and its BUD."""

    lot_number = models.CharField("pharmacy lot number", max_length=30, unique=True)
    formulation_version = models.ForeignKey(
        FormulationVersion, on_delete=models.PROTECT, related_name="batches"
    )
    status = models.CharField(
        max_length=12, choices=BatchStatus.choices, default=BatchStatus.IN_PROGRESS
    )
    status_changed_at = models.DateTimeField(null=True, blank=True)
    compounded_on = models.DateField()
    compounded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    planned_units = models.DecimalField(max_digits=10, decimal_places=2)
    actual_units = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    # Never below zero: dispensing updates it with F() under a row lock (see dispensing).
    units_remaining = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    deviations = models.TextField(blank=True)
    bud_shortened_to = models.DateField(
        "BUD shortened to", null=True, blank=True,
        help_text="A pharmacist may shorten the beyond-use date, never lengthen it.",
    )  # fmt: skip
    beyond_use_date = models.DateField(null=True, blank=True)
    bud_explanation = models.CharField(max_length=500, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    released_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        verbose_name_plural = "batches"
        ordering = ["-compounded_on", "-pk"]
        indexes = [models.Index(fields=["status", "beyond_use_date"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(units_remaining__gte=0), name="batch_units_not_negative"
            )
        ]

    def __str__(self):
        return self.lot_number

    @property
    def formulation(self):
        return self.formulation_version.formulation


class BatchIngredient(models.Model):
    """An ingredient lot used in a batch, and how much of it."""

    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="ingredients")
    lot = models.ForeignKey(IngredientLot, on_delete=models.PROTECT, related_name="uses")
    amount = models.DecimalField(max_digits=12, decimal_places=4)

    class Meta:
        ordering = ["batch", "pk"]

    def __str__(self):
        return f"{self.lot}: {quantity_text(self.amount)} {self.lot.ingredient.unit}"


class QcResult(models.Model):
    # Indexed by one_result_per_check, which starts with it.
    batch = models.ForeignKey(
        Batch, on_delete=models.PROTECT, related_name="qc_results", db_index=False
    )
    check_name = models.CharField(max_length=200)
    passed = models.BooleanField()
    notes = models.TextField(blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["batch", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "check_name"], name="one_result_per_check")
        ]

    def __str__(self):
        return f"{self.check_name}: {'pass' if self.passed else 'fail'}"


class BatchEvent(StatusEvent):
    subject_field = "batch"

    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="events")
    from_status = models.CharField(max_length=12, choices=BatchStatus.choices, blank=True)
    to_status = models.CharField(max_length=12, choices=BatchStatus.choices)

    class Meta(StatusEvent.Meta):
        pass


class Dispense(models.Model):
    """Units of one batch given to one line of an order."""

    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="dispenses")
    line = models.ForeignKey(
        "orders.PrescriptionLine", on_delete=models.PROTECT, related_name="dispenses"
    )
    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="dispenses")
    units = models.DecimalField(max_digits=10, decimal_places=2)
    dispensed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    dispensed_at = models.DateTimeField(auto_now_add=True)
    # What the technician's scanner read on the bottle (the batch's lot), when it was scanned.
    scanned_code = models.CharField(max_length=60, blank=True)

    class Meta:
        ordering = ["order", "pk"]
        constraints = [
            models.CheckConstraint(condition=models.Q(units__gt=0), name="dispense_units_positive")
        ]
        # The dashboard's demand: what was dispensed in the last days, not the whole history.
        indexes = [models.Index(fields=["dispensed_at"], name="dispense_by_time")]

    def __str__(self):
        return f"{self.units_text} from {self.batch} for {self.order}"

    @property
    def units_text(self) -> str:
        return quantity_text(self.units)


class Recall(models.Model):
    """A recall of a batch, or of an ingredient lot and every batch made from it."""

    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, null=True, blank=True,
                              related_name="recalls")  # fmt: skip
    ingredient_lot = models.ForeignKey(
        IngredientLot, on_delete=models.PROTECT, null=True, blank=True, related_name="recalls"
    )
    reason = models.TextField()
    initiated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    initiated_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-initiated_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                name="recall_of_batch_or_lot",
                condition=(
                    models.Q(batch__isnull=False, ingredient_lot__isnull=True)
                    | models.Q(batch__isnull=True, ingredient_lot__isnull=False)
                ),
            )
        ]

    def __str__(self):
        return f"Recall of {self.batch or self.ingredient_lot}"

    @property
    def description(self) -> str:
        """What is recalled, as the clinic reads it (select the batch's formulation or the
        lot's ingredient with it)."""
        if self.batch is not None:
            return f"batch {self.batch} ({self.batch.formulation_version.formulation})"
        return f"products made from {self.ingredient_lot}"


class RecallBatch(models.Model):
    """A batch that a recall moved to recalled, and the units it set aside in quarantine: those
    the batch still held (its count went to 0), and those pulled back from orders that had not
    shipped. Quarantined units are kept for the investigation and never dispensed. A batch is
    recalled once, so it has one such record."""

    recall = models.ForeignKey(Recall, on_delete=models.PROTECT, related_name="recalled_batches")
    batch = models.OneToOneField(Batch, on_delete=models.PROTECT, related_name="recall_quarantine")
    units_in_stock = models.DecimalField(max_digits=10, decimal_places=2)
    units_pulled = models.DecimalField(max_digits=10, decimal_places=2, default=0)

    class Meta:
        ordering = ["recall", "batch__lot_number"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(units_in_stock__gte=0, units_pulled__gte=0),
                name="recall_batch_units_not_negative",
            )
        ]

    def __str__(self):
        return f"{self.batch}: {quantity_text(self.units_quarantined)} quarantined"

    @property
    def units_quarantined(self):
        return self.units_in_stock + self.units_pulled


class PulledDispense(models.Model):
    """Units of a recalled batch pulled back from an order that had not shipped: the dispense
    as it was, kept for the trace (its Dispense row is gone, so the order is dispensed again
    from another batch)."""

    recalled_batch = models.ForeignKey(
        RecallBatch, on_delete=models.PROTECT, related_name="pulled_dispenses"
    )
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="+")
    line = models.ForeignKey("orders.PrescriptionLine", on_delete=models.PROTECT, related_name="+")
    units = models.DecimalField(max_digits=10, decimal_places=2)
    dispensed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    dispensed_at = models.DateTimeField()
    scanned_code = models.CharField(max_length=60, blank=True)
    pulled_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["recalled_batch", "order", "pk"]

    def __str__(self):
        return f"{quantity_text(self.units)} pulled back from {self.order}"


class RecallReplacement(models.Model):
    """The replacement order made for an order whose patient holds units of a recalled batch:
    one per recall and affected order, whoever asks for it and however often."""

    # Indexed by one_replacement_per_recall_and_order, which starts with it.
    recall = models.ForeignKey(
        Recall, on_delete=models.PROTECT, related_name="replacements", db_index=False
    )
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="+")
    replacement = models.OneToOneField("orders.Order", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["recall", "order"]
        constraints = [
            models.UniqueConstraint(
                fields=["recall", "order"], name="one_replacement_per_recall_and_order"
            )
        ]

    def __str__(self):
        return f"{self.replacement} replaces {self.order}"


class RecallNotice(models.Model):
    """A notice owed to one affected clinic; the notifications work sends it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"

    # Indexed by one_notice_per_clinic, which starts with it.
    recall = models.ForeignKey(
        Recall, on_delete=models.PROTECT, related_name="notices", db_index=False
    )
    clinic = models.ForeignKey("prescribers.Clinic", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    # A member of the clinic confirms in the portal that its patients were told; until then
    # the notice leads the clinic's dashboard.
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["recall", "clinic__name"]
        constraints = [
            models.UniqueConstraint(fields=["recall", "clinic"], name="one_notice_per_clinic"),
            models.CheckConstraint(
                name="recall_notice_acknowledged_by_someone_at_a_time",
                condition=models.Q(acknowledged_by__isnull=True, acknowledged_at__isnull=True)
                | models.Q(acknowledged_by__isnull=False, acknowledged_at__isnull=False),
            ),
        ]

    def __str__(self):
        return f"{self.recall} -> {self.clinic}"
