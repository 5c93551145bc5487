"""The pharmacy's catalogue and its master formulation records."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from core.history import HistoricalRecords
from core.numbers import quantity_text

from ..bud import BudCategory
from ..dosing import DOSAGE_FORM_CHOICES


class FormulationQuerySet(models.QuerySet):
    def active(self):
        return self.filter(is_active=True)


class Formulation(models.Model):
    """One product of the catalogue: a capsule strength, or a liquid, drops or cream at a
    concentration. Prescribers can order only what is here and active."""

    name = models.CharField(max_length=120, unique=True)
    dosage_form = models.CharField(max_length=20, choices=DOSAGE_FORM_CHOICES)
    strength_mg = models.DecimalField(
        "strength (mg per capsule)", max_digits=6, decimal_places=3, null=True, blank=True
    )
    concentration_mg_per_ml = models.DecimalField(
        "concentration (mg/mL)", max_digits=6, decimal_places=3, null=True, blank=True
    )
    unit = models.CharField(max_length=10, help_text="What the quantity counts: capsule or mL.")
    is_active = models.BooleanField(default=True)

    history = HistoricalRecords(table_name="pharmacy_historicalformulation")
    objects = FormulationQuerySet.as_manager()

    class Meta:
        # Made by the pharmacy app before the catalogue moved here; the table kept its name.
        db_table = "pharmacy_formulation"
        ordering = ["dosage_form", "strength_mg", "concentration_mg_per_ml"]
        constraints = [
            models.CheckConstraint(
                name="formulation_strength_or_concentration",
                condition=(
                    models.Q(
                        dosage_form="capsule",
                        strength_mg__gt=0,
                        concentration_mg_per_ml__isnull=True,
                    )
                    | (
                        ~models.Q(dosage_form="capsule")
                        & models.Q(strength_mg__isnull=True, concentration_mg_per_ml__gt=0)
                    )
                ),
            ),
        ]

    def __str__(self):
        return self.name


class Ingredient(models.Model):
    """A bulk drug substance or excipient (503A: from a supplier with a certificate of analysis)."""

    class Kind(models.TextChoices):
        ACTIVE = "active", "Active ingredient"
        EXCIPIENT = "excipient", "Excipient"

    name = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    unit = models.CharField(max_length=10, help_text="How amounts are measured: mg, g or mL.")

    class Meta:
        # Made by the pharmacy app before the catalogue moved here; the table kept its name.
        db_table = "pharmacy_ingredient"
        ordering = ["name"]

    def __str__(self):
        return self.name


class FormulationVersionStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    APPROVED = "approved", "Approved"
    SUPERSEDED = "superseded", "Superseded"


class FormulationVersion(models.Model):
    """A master formulation record. A change is a new version, approved by a pharmacist who did
    not write it; batches point at the version they were made by."""

    # Indexed by one_number_per_version, which starts with it.
    formulation = models.ForeignKey(
        Formulation, on_delete=models.PROTECT, related_name="versions", db_index=False
    )
    version = models.PositiveSmallIntegerField()
    status = models.CharField(
        max_length=10, choices=FormulationVersionStatus.choices,
        default=FormulationVersionStatus.DRAFT,
    )  # fmt: skip
    bud_category = models.CharField("BUD category (USP <795>)", max_length=30,
                                    choices=[(c.value, c.label) for c in BudCategory])  # fmt: skip
    water_activity = models.DecimalField(
        "water activity (aw)",
        max_digits=4,
        decimal_places=3,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
        help_text="Measured water activity (aw), if recorded: below 0.6 the preparation is"
        " nonaqueous (USP <795>).",
    )
    antimicrobial_preservative = models.BooleanField(
        "contains an antimicrobial preservative",
        default=False,
        help_text="Needed for the aqueous, preserved category (USP <795>).",
    )
    storage = models.CharField(max_length=200)
    container = models.CharField(max_length=200)
    compounding_instructions = models.TextField()
    qc_checks = models.JSONField(
        "QC checks", default=list, help_text="One check per line: each batch records pass or fail."
    )
    auxiliary_labels = models.JSONField(default=list, blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords(table_name="pharmacy_historicalformulationversion")

    class Meta:
        # Made by the pharmacy app before the catalogue moved here; the table kept its name.
        db_table = "pharmacy_formulationversion"
        ordering = ["formulation", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["formulation", "version"], name="one_number_per_version"
            ),
            # At most one approved version of a formulation at a time.
            models.UniqueConstraint(
                fields=["formulation"],
                condition=models.Q(status="approved"),
                name="one_approved_version",
            ),
        ]

    def __str__(self):
        return f"{self.formulation} v{self.version} ({self.get_status_display().lower()})"

    @property
    def bud(self) -> BudCategory:
        return BudCategory(self.bud_category)


class FormulationIngredient(models.Model):
    version = models.ForeignKey(
        FormulationVersion, on_delete=models.CASCADE, related_name="ingredients"
    )
    ingredient = models.ForeignKey(Ingredient, on_delete=models.PROTECT, related_name="+")
    amount_per_unit = models.DecimalField(max_digits=10, decimal_places=4)

    class Meta:
        # Made by the pharmacy app before the catalogue moved here; the table kept its name.
        db_table = "pharmacy_formulationingredient"
        ordering = ["version", "ingredient__name"]

    def __str__(self):
        return f"{self.ingredient} {quantity_text(self.amount_per_unit)} {self.ingredient.unit}"
