"""The one place that runs every prescription rule. The order form, the live check endpoint and
the submit service all call prescription_findings, so what the prescriber sees while typing is
exactly what the server enforces."""

import dataclasses
import datetime
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property

from django.conf import settings
from django.db import connection
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from pharmacy.models import DosageForm, Formulation

from . import dosing, icd10
from .dosing import Finding, PatientFacts, Regimen, Severity

CATALOGUE_SOURCE = "The pharmacy's catalogue of formulations"
# How long a process uses the catalogue it read before reading it again (seconds). A change
# made in the admin is seen at once by the process that made it and within this time by the
# others (every order is still verified by a pharmacist).
CATALOGUE_MAX_AGE = 30.0


def current_policy() -> dosing.DosingPolicy:
    """The dose rules' defaults, with any overrides from settings.LDN_DOSING_POLICY."""
    return dosing.policy_with(settings.LDN_DOSING_POLICY)


@dataclass(frozen=True)
class Catalogue:
    """What the pharmacy makes: capsule strengths, and concentrations of the other forms."""

    formulations: tuple[Formulation, ...]

    @classmethod
    def load(cls) -> "Catalogue":
        """The active formulations, read from the database now."""
        return cls(tuple(Formulation.objects.active()))

    @classmethod
    def current(cls) -> "Catalogue":
        """The catalogue for a prescriber's page: this process's copy while it is younger than
        CATALOGUE_MAX_AGE and no formulation was saved here since. Inside a transaction it is
        read from the database (the transaction may have changed it, or may be rolled back)."""
        if connection.in_atomic_block:
            return cls.load()
        cached = _catalogue_cache.get("current")
        now = time.monotonic()
        if cached is None or now - cached[0] > CATALOGUE_MAX_AGE:
            cached = (now, cls.load())
            _catalogue_cache["current"] = cached
        return cached[1]

    @staticmethod
    def forget() -> None:
        """Read the catalogue from the database next time (a formulation changed)."""
        _catalogue_cache.clear()

    @cached_property
    def capsule_strengths_mg(self) -> frozenset[Decimal]:
        return frozenset(
            f.strength_mg.normalize() for f in self.formulations if f.dosage_form == "capsule"
        )

    def dosage_forms(self) -> list[tuple[str, str]]:
        made = {f.dosage_form for f in self.formulations}
        return [(value, label) for value, label in DosageForm.choices if value in made]

    def concentrations(self, dosage_form: str) -> list[Decimal]:
        return sorted(
            f.concentration_mg_per_ml.normalize()
            for f in self.formulations
            if f.dosage_form == dosage_form and f.concentration_mg_per_ml is not None
        )

    def capsule(self, strength_mg: Decimal) -> Formulation | None:
        return next(
            (
                f
                for f in self.formulations
                if f.dosage_form == "capsule" and f.strength_mg == strength_mg
            ),
            None,
        )

    def product(self, dosage_form: str, concentration: Decimal | None) -> Formulation | None:
        """The liquid, drops or cream at this concentration, if the pharmacy makes it."""
        return next(
            (
                f
                for f in self.formulations
                if f.dosage_form == dosage_form
                and concentration is not None
                and f.concentration_mg_per_ml == concentration
            ),
            None,
        )

    def check(self, regimen: Regimen) -> list[Finding]:
        if regimen.dosage_form == dosing.DosageForm.CAPSULE:
            if self.capsule_strengths_mg:
                return []
            return [_not_made("dosage_form", "The pharmacy makes no capsules at the moment.")]
        if not self.concentrations(regimen.dosage_form):
            label = DosageForm(regimen.dosage_form).label.lower()
            return [_not_made("dosage_form", f"The pharmacy does not make {label}.")]
        if regimen.concentration_mg_per_ml is None:
            return []  # the dose rules ask for the concentration
        if self.product(regimen.dosage_form, regimen.concentration_mg_per_ml) is None:
            made = ", ".join(f"{c:f} mg/mL" for c in self.concentrations(regimen.dosage_form))
            return [
                _not_made(
                    "concentration_mg_per_ml",
                    f"The pharmacy does not make {regimen.concentration_mg_per_ml:f} mg/mL; "
                    f"it makes {made}.",
                )
            ]
        return []


_catalogue_cache: dict[str, tuple[float, Catalogue]] = {}


@receiver(post_save, sender=Formulation, dispatch_uid="orders.checks.catalogue_changed")
@receiver(post_delete, sender=Formulation, dispatch_uid="orders.checks.catalogue_deleted")
def _catalogue_changed(**kwargs) -> None:
    Catalogue.forget()


def _not_made(field: str, message: str) -> Finding:
    return Finding(
        code="catalogue.not_made", severity=Severity.ERROR, field=field, message=message,
        source=CATALOGUE_SOURCE,
    )  # fmt: skip


def patient_facts(patient, diagnosis_codes: Iterable[str] = ()) -> PatientFacts:
    return PatientFacts(
        date_of_birth=patient.date_of_birth,
        takes_opioids=patient.takes_opioids,
        medications=patient.current_medications,
        pregnant_or_breastfeeding=patient.pregnant_or_breastfeeding,
        liver_disease=patient.liver_disease,
        diagnosis_codes=tuple(diagnosis_codes),
    )


def prescription_findings(
    *,
    regimen: Regimen,
    patient: PatientFacts,
    diagnosis_codes: Iterable[str],
    catalogue: Catalogue,
    today: datetime.date,
) -> list[Finding]:
    regimen = dataclasses.replace(regimen, capsule_strengths_mg=catalogue.capsule_strengths_mg)
    return [
        *catalogue.check(regimen),
        *dosing.check_prescription(regimen, patient, today=today, policy=current_policy()),
        *icd10.check_diagnosis_codes(diagnosis_codes),
    ]


def finding_key(finding: Finding) -> str:
    """Identifies one finding, for the prescriber's tick next to each warning."""
    return f"{finding.code}@{finding.field}"
