"""The live dose check, as the order form and the partner API both answer it: every rule on a
regimen for a patient of the clinic (their record and open orders as they are now, as the
submit will see them) or for facts typed in, with the directions, the quantity the schedule
needs, the products and what each refill dispenses."""

from core.numbers import quantity_text

from . import dosing
from .checks import Catalogue, check_new_prescription, finding_view, prescription_findings
from .dosing import PatientFacts, Regimen
from .models import Patient


def dose_check_answer(
    *, regimen: Regimen, diagnosis_codes: list[str], catalogue: Catalogue, today,
    patient: Patient | None = None, prescriber=None, facts: PatientFacts | None = None,
) -> dict:  # fmt: skip
    """The check's JSON answer: for `patient` (with `prescriber`, whose licence is checked)
    or, without a record, for `facts`."""
    if patient is not None:
        findings = check_new_prescription(
            patient=patient, prescriber=prescriber, regimen=regimen,
            diagnosis_codes=diagnosis_codes, catalogue=catalogue,
        ).findings  # fmt: skip
    else:
        findings = prescription_findings(
            regimen=regimen, patient=facts, diagnosis_codes=diagnosis_codes,
            catalogue=catalogue, today=today,
        )  # fmt: skip
    needed = dosing.quantity_needed(regimen)
    return {
        "ok": not dosing.has_errors(findings),
        "findings": [finding_view(finding) for finding in findings],
        "products": [
            {"name": p.name, "bud_days": p.bud_days, "bud_category": p.bud_label}
            for p in catalogue.products_of(regimen)
        ],
        "directions": dosing.directions(regimen),
        "quantity_needed": None if needed is None else quantity_text(needed),
        "days_in_schedule": sum(max(step.days, 0) for step in regimen.steps),
        "capsule_lines": [
            {"strength_mg": quantity_text(strength), "quantity": count}
            for strength, count in dosing.capsule_lines(regimen)
        ],
        "refill_plan": refill_plan(regimen),
    }


def refill_plan(regimen: Regimen) -> str:
    """What each refill of a titration dispenses: the maintenance dose for the days' supply."""
    if (
        len(regimen.steps) < 2
        or min(regimen.days_supply, regimen.doses_per_day, regimen.refills) < 1
    ):
        return ""
    maintenance = dosing.maintenance_regimen(regimen)
    if maintenance.quantity is None:
        return ""
    unit = "capsule" if regimen.dosage_form == dosing.DosageForm.CAPSULE else "mL"
    dose = f"{quantity_text(maintenance.steps[0].dose_mg)} mg"
    return (
        f"Each refill continues at the maintenance dose ({dose}): "
        f"{dosing.units_text(maintenance.quantity, unit)} for {regimen.days_supply} days."
    )
