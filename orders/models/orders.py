"""Patients of a clinic. Prescriptions and orders join them in a later slice."""

import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from phonenumber_field.modelfields import PhoneNumberField

from core.history import HistoricalRecords
from core.models import PostalAddress, StatusEvent
from core.numbers import quantity_text
from prescribers.models import Clinic

from ..dosing import DOSAGE_FORM_CHOICES, DosageForm, units_text
from .catalogue import Formulation

EARLIEST_DATE_OF_BIRTH = datetime.date(1900, 1, 1)


def validate_date_of_birth(value: datetime.date) -> None:
    if value > timezone.localdate():
        raise ValidationError("The date of birth cannot be in the future.", code="dob_future")
    if value < EARLIEST_DATE_OF_BIRTH:
        raise ValidationError(
            "The date of birth is before 1900; please check the year.", code="dob_too_early"
        )


class Sex(models.TextChoices):
    FEMALE = "F", "Female"
    MALE = "M", "Male"
    UNSPECIFIED = "X", "Other or not stated"


class PatientQuerySet(models.QuerySet):
    def of_clinic(self, clinic_id: int):
        return self.filter(clinic_id=clinic_id)

    def likely_duplicates(
        self, *, clinic_id: int, first_name: str, last_name: str, date_of_birth: datetime.date
    ):
        return self.filter(
            clinic_id=clinic_id,
            first_name__iexact=first_name.strip(),
            last_name__iexact=last_name.strip(),
            date_of_birth=date_of_birth,
        )


class Patient(PostalAddress):
    """A patient of a clinic; the address is where orders ship unless sent to the clinic."""

    # Indexed by Meta's index on (clinic, last_name, first_name), which starts with it.
    clinic = models.ForeignKey(
        Clinic, on_delete=models.PROTECT, related_name="patients", db_index=False
    )
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    date_of_birth = models.DateField(validators=[validate_date_of_birth])
    sex = models.CharField(max_length=1, choices=Sex.choices)
    phone = PhoneNumberField()
    allergies = models.TextField(help_text='Drug and other allergies; write "NKDA" if none known.')
    current_medications = models.TextField(
        blank=True, help_text="Everything the patient takes now, one per line, with doses."
    )
    # Naltrexone is contraindicated with opioids: this is always answered, never left unknown.
    takes_opioids = models.BooleanField("currently takes opioids?")
    pregnant_or_breastfeeding = models.BooleanField("pregnant or breast-feeding", default=False)
    liver_disease = models.BooleanField("known liver disease", default=False)
    # The problem list: ICD-10-CM codes of the patient's conditions (Hashimoto's, transplant),
    # which the dose rules read for every prescription, not only the one that names them.
    conditions = models.JSONField("conditions (ICD-10-CM)", default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()
    objects = PatientQuerySet.as_manager()

    # What a prescriber fills in and may change, in the order the form asks for it.
    EDITABLE_FIELDS = (
        "first_name", "last_name", "date_of_birth", "sex", "phone", "address_line1",
        "address_line2", "city", "state", "postal_code", "allergies", "current_medications",
        "takes_opioids", "conditions", "pregnant_or_breastfeeding", "liver_disease",
    )  # fmt: skip

    class Meta:
        ordering = ["last_name", "first_name", "pk"]
        indexes = [
            models.Index(fields=["clinic", "last_name", "first_name"]),
            models.Index(fields=["clinic", "date_of_birth"]),
        ]

    def __str__(self):
        return f"{self.last_name}, {self.first_name}"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def age(self) -> int:
        today = timezone.localdate()
        born = self.date_of_birth
        return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


class TimeOfDay(models.TextChoices):
    # LDN is usually taken at bedtime; morning dosing is the usual fix for vivid dreams.
    BEDTIME = "bedtime", "At bedtime"
    MORNING = "morning", "In the morning"


class Prescription(models.Model):
    """What the prescriber wrote: the schedule, the quantity per product line, the refills."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="prescriptions")
    prescriber = models.ForeignKey(
        "prescribers.Prescriber", on_delete=models.PROTECT, related_name="prescriptions"
    )
    dosage_form = models.CharField(max_length=20, choices=DOSAGE_FORM_CHOICES)
    concentration_mg_per_ml = models.DecimalField(
        max_digits=6, decimal_places=3, null=True, blank=True
    )
    doses_per_day = models.PositiveSmallIntegerField()
    time_of_day = models.CharField(max_length=10, choices=TimeOfDay.choices)
    directions = models.TextField()
    days_supply = models.PositiveSmallIntegerField("days' supply")
    refills_authorized = models.PositiveSmallIntegerField()
    diagnosis_codes = models.JSONField(default=list)
    reason_for_compounding = models.TextField()
    # Given by the pharmacist's verification of the first fill; refills keep it.
    rx_number = models.CharField("Rx number", max_length=20, unique=True, null=True, blank=True)
    written_on = models.DateField()
    expires_on = models.DateField()
    # What the prescriber saw when submitting, and which warnings they confirmed.
    findings = models.JSONField(default=list)
    acknowledged_warnings = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"Prescription {self.pk} for {self.patient}"

    @property
    def dose_summary(self) -> str:
        """'1.5 -> 4.5 mg' for a titration, '4.5 mg' for one dose (from the steps, which list
        pages prefetch)."""
        doses = [quantity_text(step.dose_mg) for step in self.steps.all()]
        if not doses:
            return ""
        return f"{doses[0]} mg" if len(set(doses)) == 1 else f"{doses[0]} \u2192 {doses[-1]} mg"

    @property
    def drug_description(self) -> str:
        if self.dosage_form == DosageForm.CAPSULE:
            return "Naltrexone HCl capsules"
        concentration = quantity_text(self.concentration_mg_per_ml)
        return f"Naltrexone HCl {concentration} mg/mL {self.get_dosage_form_display().lower()}"


class PrescriptionStep(models.Model):
    # Indexed by one_step_per_position, which starts with it.
    prescription = models.ForeignKey(
        Prescription, on_delete=models.CASCADE, related_name="steps", db_index=False
    )
    position = models.PositiveSmallIntegerField()
    dose_mg = models.DecimalField(max_digits=6, decimal_places=3)
    days = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["prescription", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["prescription", "position"], name="one_step_per_position"
            )
        ]

    def __str__(self):
        return f"{quantity_text(self.dose_mg)} mg for {self.days} days"


class FillSchedule(models.TextChoices):
    """What a fill dispenses: the schedule as written (the first fill, or a refill that
    titrates again), or the maintenance dose (a refill continues the regimen, LDN Research
    Trust: it does not repeat the ramp-up)."""

    AS_WRITTEN = "as_written", "The whole schedule as written"
    MAINTENANCE = "maintenance", "The maintenance dose"


class PrescriptionLineQuerySet(models.QuerySet):
    def of_order(self, order: "Order"):
        """The lines the order dispenses: its prescription's lines of the order's schedule,
        each with `units`, what this order dispenses of it: the line's quantity, or the order's
        own (OrderQuantity: a part of a partial fill, the rest that follows it, a replacement).
        A line this order leaves to another order of the fill (0 units) is not one of its."""
        own = OrderQuantity.objects.filter(order_id=order.pk, line_id=OuterRef("pk"))
        return (
            self.filter(prescription_id=order.prescription_id, phase=order.schedule)
            .annotate(units=Coalesce(Subquery(own.values("units")[:1]), F("quantity")))
            .exclude(units=0)
        )


class PrescriptionLine(models.Model):
    """One product to dispense: for capsules one line per strength, each with its quantity. A
    titration has lines for the schedule as written and lines for a maintenance refill."""

    prescription = models.ForeignKey(Prescription, on_delete=models.CASCADE, related_name="lines")
    phase = models.CharField(
        max_length=12, choices=FillSchedule.choices, default=FillSchedule.AS_WRITTEN
    )
    position = models.PositiveSmallIntegerField()
    formulation = models.ForeignKey(Formulation, on_delete=models.PROTECT, related_name="+")
    quantity = models.DecimalField(max_digits=8, decimal_places=2)

    objects = PrescriptionLineQuerySet.as_manager()

    class Meta:
        ordering = ["prescription", "phase", "position"]

    def __str__(self):
        # An order's line (of_order) says what that order dispenses of it.
        units = getattr(self, "units", self.quantity)
        return f"{self.formulation}: {units_text(units, self.formulation.unit)}"


class OrderStatus(models.TextChoices):
    # Drafted by clinic staff for a prescriber of the clinic to sign: the pharmacy never sees
    # a draft; signing submits it.
    DRAFT = "draft", "Awaiting signature"
    SUBMITTED = "submitted", "Submitted"
    IN_REVIEW = "in_review", "In review"
    ON_HOLD = "on_hold", "On hold"
    VERIFIED = "verified", "Verified"
    REJECTED = "rejected", "Rejected"
    COMPOUNDING = "compounding", "Compounding and dispensing"
    READY = "ready", "Ready"
    SHIPPED = "shipped", "Shipped"
    DELIVERED = "delivered", "Delivered"
    CANCELLED = "cancelled", "Cancelled"

    @property
    def badge(self) -> str:
        """Bootstrap colour of this status, shared by the portal and the admin."""
        return {
            "draft": "warning",
            "submitted": "primary",
            "in_review": "info",
            "on_hold": "warning",
            "verified": "primary",
            "rejected": "danger",
            "compounding": "info",
            "ready": "success",
            "shipped": "success",
            "delivered": "secondary",
            "cancelled": "secondary",
        }[self.value]


class OrderKind(models.TextChoices):
    NEW = "new", "New prescription"
    REFILL = "refill", "Refill"
    # Parts of a fill that follow another order (Order.follows) with the same fill number: they
    # use no refill of their own.
    REMAINDER = "remainder", "Rest of a partial fill"
    REPLACEMENT = "replacement", "Replacement of a recalled fill"


class ShipTo(models.TextChoices):
    CLINIC = "clinic", "The clinic"
    PATIENT = "patient", "The patient's address"


# An order in these is still to be filled: awaiting its signature, or the pharmacy is working on
# it (not yet shipped, cancelled or rejected). A draft counts: it holds the prescription's one
# open refill, and an identical draft is a duplicate of a new order.
OPEN_STATUSES = (
    OrderStatus.DRAFT,
    OrderStatus.SUBMITTED,
    OrderStatus.IN_REVIEW,
    OrderStatus.ON_HOLD,
    OrderStatus.VERIFIED,
    OrderStatus.COMPOUNDING,
    OrderStatus.READY,
)
# Orders that did not use a fill: the prescriber cancelled them or the pharmacy rejected them.
UNFILLED_STATUSES = (OrderStatus.CANCELLED, OrderStatus.REJECTED)
# Waiting for a pharmacist's review.
REVIEW_STATUSES = (OrderStatus.SUBMITTED, OrderStatus.IN_REVIEW)
# Verified and not yet ready: units may be dispensed to the order.
DISPENSABLE_STATUSES = (OrderStatus.VERIFIED, OrderStatus.COMPOUNDING)


class OrderQuerySet(models.QuerySet):
    def of_clinic(self, clinic_id: int):
        return self.filter(clinic_id=clinic_id)

    def open(self):
        return self.filter(status__in=OPEN_STATUSES)

    def signed(self):
        """The orders the pharmacy sees: a draft is the clinic's until its prescriber signs."""
        return self.exclude(status=OrderStatus.DRAFT)

    def unsigned_prescription_ids(self):
        """The prescriptions whose first fill awaits the prescriber's signature (a subquery)."""
        return self.filter(kind=OrderKind.NEW, status=OrderStatus.DRAFT).values("prescription_id")

    def refills_used(self):
        """Refill orders that count against the refills authorized (the portal's count and
        the label's "Refill n of m" both come from here)."""
        return self.filter(kind=OrderKind.REFILL).exclude(status__in=UNFILLED_STATUSES)


ORDER_NUMBER_PREFIX = "LDN-"


class Order(models.Model):
    """A request to fill a prescription (the first fill or a refill)."""

    prescription = models.ForeignKey(Prescription, on_delete=models.PROTECT, related_name="orders")
    # Copied from the patient so that a clinic's order list needs no join. Indexed with the
    # time the order was placed (Meta.indexes), as it is read.
    clinic = models.ForeignKey(
        Clinic, on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    kind = models.CharField(max_length=12, choices=OrderKind.choices)
    # The order this one completes (the rest of a partial fill) or replaces (a fill of a
    # recalled batch): the same prescription and fill number.
    follows = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="followed_by"
    )
    fill_number = models.PositiveSmallIntegerField(help_text="0 for the first fill, then 1, 2, ...")
    ship_to = models.CharField(max_length=10, choices=ShipTo.choices)
    needed_by = models.DateField(null=True, blank=True)
    status = models.CharField(
        max_length=20, choices=OrderStatus.choices, default=OrderStatus.SUBMITTED
    )
    status_changed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The prescriber asked to sign a draft (who signed is on the timeline's signature event).
    # Indexed with the status (order_to_sign), as it is read.
    signer = models.ForeignKey(
        "prescribers.Prescriber",
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        db_index=False,
    )
    carrier = models.CharField(max_length=50, blank=True)
    tracking_number = models.CharField(max_length=100, blank=True)
    # The token of the form that made this order: a second submit of the same form finds it.
    idempotency_key = models.UUIDField(unique=True, null=True, blank=True, editable=False)
    schedule = models.CharField(
        "dispenses", max_length=12, choices=FillSchedule.choices, default=FillSchedule.AS_WRITTEN
    )
    # What the rules found when this order was placed (a refill: against the patient record as
    # it was then), and the warnings the prescriber confirmed for it, with their reasons.
    findings = models.JSONField(default=list, blank=True)
    acknowledged_warnings = models.JSONField(default=list, blank=True)

    history = HistoricalRecords()
    objects = OrderQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["clinic", "-created_at"]),
            models.Index(fields=["signer", "status"], name="order_to_sign"),
            models.Index(fields=["status", "created_at"]),
            # The admin's order list: oldest first, the order they came in.
            models.Index(fields=["created_at", "id"], name="order_arrival"),
            # The work queues' counts and oldest times, from the open orders alone.
            models.Index(
                fields=["status", "status_changed_at", "created_at"],
                name="open_order_queue",
                condition=models.Q(status__in=OPEN_STATUSES),
            ),
        ]
        constraints = [
            # One refill of a prescription at a time (the refill service also locks the
            # prescription row; this holds even against code that forgets to).
            models.UniqueConstraint(
                fields=["prescription"],
                condition=models.Q(kind="refill", status__in=OPEN_STATUSES),
                name="one_open_refill_per_prescription",
            ),
        ]

    def __str__(self):
        return self.number

    @property
    def number(self) -> str:
        return self.number_of(self.pk)

    @property
    def access_description(self) -> str:
        """How the access audit names the order (core/audit.py): its number only."""
        return f"Order {self.number}"

    @staticmethod
    def number_of(pk: int) -> str:
        """123 -> 'LDN-000123', without making an Order to ask."""
        return f"{ORDER_NUMBER_PREFIX}{pk:06d}"

    @staticmethod
    def pk_from_number(text: str) -> int | None:
        """'LDN-000123', 'ldn-123' or '123' -> 123; None when it is not an order number."""
        digits = text.strip().upper().removeprefix(ORDER_NUMBER_PREFIX)
        # ASCII digits only: "²" and "٣" are digits to str.isdigit() but not to int().
        return int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 12 else None

    @property
    def status_badge(self) -> str:
        return OrderStatus(self.status).badge

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def lines(self):
        return PrescriptionLine.objects.of_order(self)


class OrderQuantity(models.Model):
    """What an order dispenses of a line when that is not the line's whole quantity: the part
    a partial fill gave, the rest that follows it, or what a replacement gives again. A line of
    the order without a row dispenses its whole quantity; a row of 0 units leaves the line to
    another order of the fill."""

    # Indexed by one_quantity_per_order_line, which starts with it.
    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="quantities", db_index=False
    )
    line = models.ForeignKey(PrescriptionLine, on_delete=models.PROTECT, related_name="+")
    units = models.DecimalField(max_digits=8, decimal_places=2)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "line"], name="one_quantity_per_order_line"),
            models.CheckConstraint(
                condition=models.Q(units__gte=0), name="order_quantity_not_negative"
            ),
        ]

    def __str__(self):
        return f"{self.order}: {quantity_text(self.units)} of line {self.line_id}"


class OrderEventKind(models.TextChoices):
    """What an event of an order's timeline records. A move of the status is one of the first
    kinds (its from and to say which); the last ones leave the status as it is."""

    STATUS_CHANGED = "status_changed", "Status changed"
    DRAFTED = "drafted", "Drafted for signature"
    SIGNED = "signed", "Signed by the prescriber"
    SUBMITTED = "submitted", "Prescription submitted"
    REFILL_REQUESTED = "refill_requested", "Refill requested"
    AMENDED = "amended", "Prescription amended"
    HELD = "held", "Question for the prescriber"
    ANSWERED = "answered", "Question answered"
    SHIPPED = "shipped", "Shipped"
    LABEL_RENDERED = "label_rendered", "Label rendered"
    EMAIL_SENT = "email_sent", "Email sent"
    PARTIAL_FILL = "partial_fill", "Partial fill"
    REPLACEMENT = "replacement", "Replacement ordered"
    # A recall took units of a recalled batch back from the order before it shipped: it is
    # dispensed again from another batch.
    RECALL_PULLED = "recall_pulled", "Recalled units taken back"


# The kinds that leave the order's status as it is (from_status and to_status are that status).
STATUS_KEPT_KINDS = frozenset(
    {
        OrderEventKind.LABEL_RENDERED,
        OrderEventKind.EMAIL_SENT,
        OrderEventKind.PARTIAL_FILL,
        OrderEventKind.REPLACEMENT,
        OrderEventKind.RECALL_PULLED,
    }
)


class OrderEvent(StatusEvent):
    """The order's timeline, which the prescriber sees: a kind, and its details as structured
    parameters (Saleor's OrderEvent(type, parameters)); the note is what a person wrote."""

    subject_field = "order"

    # Indexed by order_event_by_order, which starts with it.
    order = models.ForeignKey(
        Order, on_delete=models.PROTECT, related_name="events", db_index=False
    )
    kind = models.CharField(
        max_length=20, choices=OrderEventKind.choices, default=OrderEventKind.STATUS_CHANGED
    )
    from_status = models.CharField(max_length=20, choices=OrderStatus.choices, blank=True)
    to_status = models.CharField(max_length=20, choices=OrderStatus.choices)
    # An electronic signature (a pharmacist's verification): who signed, and what it means.
    # The time is created_at; the password was re-entered to sign (21 CFR Part 11 style).
    signed_by = models.CharField(max_length=300, blank=True)
    signature_meaning = models.CharField(max_length=100, blank=True)
    # Structured details: the warnings a pharmacist confirmed when verifying, the question of a
    # hold, the version of a label, the kind and recipient of an email, ...
    parameters = models.JSONField(default=dict, blank=True)
    # The event table is the outbox of the clinics' webhooks: the pharmacy's publisher turns
    # each event into its deliveries and sets this, in one transaction (pharmacy/webhooks.py).
    published_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta(StatusEvent.Meta):
        indexes = [
            # The publisher reads the events not published yet, and only those.
            models.Index(
                fields=["id"],
                condition=models.Q(published_at__isnull=True),
                name="order_event_unpublished",
            ),
            # The dashboard's turnaround: the orders shipped in a time window, then when each
            # of them was submitted, both read from these indexes alone.
            models.Index(fields=["to_status", "created_at", "order"], name="order_event_by_status"),
            models.Index(fields=["order", "to_status", "created_at"], name="order_event_by_order"),
        ]

    @property
    def detail(self) -> str:
        """What the event says, from its parameters (events recorded before they had any say
        it in their note)."""
        said = self.parameters
        if self.kind == OrderEventKind.HELD and "question" in said:
            return said["question"]
        if self.kind == OrderEventKind.ANSWERED and "answer" in said:
            return said["answer"]
        if self.kind == OrderEventKind.AMENDED and "directions" in said:
            return f"{said['answer']} (prescription amended: {said['directions']})"
        if self.kind == OrderEventKind.SHIPPED and "carrier" in said:
            return f"Shipped with {said['carrier']}, tracking {said['tracking_number']}."
        if self.kind == OrderEventKind.EMAIL_SENT:
            return f"to {said['recipient']}"
        if "via" in said:  # sent by a clinic's system through the partner API
            return f"{self.note} (sent with {said['via']})"
        if said.get("by_patient"):  # the patient's "Ask for a refill" (orders/patient_access.py)
            return f"{self.note} (asked for by the patient on the portal)"
        return self.note

    @property
    def title(self) -> str:
        """The event's line on the timeline."""
        if self.kind == OrderEventKind.LABEL_RENDERED:
            return f"Label ready to download (version {self.parameters['version']})"
        if self.kind == OrderEventKind.EMAIL_SENT:
            return f"Emailed: {self.parameters['about']}"
        if self.kind == OrderEventKind.DRAFTED:
            return f"Drafted for {self.parameters['signer']} to sign"
        if self.kind == OrderEventKind.SIGNED:
            return f"Signed by {self.parameters['signer']} and submitted"
        if self.kind in (
            OrderEventKind.PARTIAL_FILL,
            OrderEventKind.REPLACEMENT,
            OrderEventKind.RECALL_PULLED,
        ):
            return self.get_kind_display()
        return self.get_to_status_display()
