"""Demo compounding records for `seed_demo`: ingredients and lots, an approved master
formulation record for every product of the catalogue, and released batches of four of them,
all made through the services (so the demo obeys the same rules as real work). Every lot and
supplier here is invented."""

import datetime
from base64 import b32decode
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import F
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.models import User
from orders.bud import BudCategory
from orders.models import (
    DiaryEntry,
    Formulation,
    Ingredient,
    Order,
    OrderEvent,
    OrderKind,
    Patient,
    PatientAccess,
    Prescription,
    TimeTaken,
)
from orders.models import OrderStatus as S
from orders.reminder_rules import DiaryFrequency
from orders.services import order_cancel, order_start_review

from . import batches, formulations
from .dispensing import dispense_allocate
from .fulfilment import order_hold, order_move
from .labels import label_barcodes
from .models import Dispense, IngredientLot, PrintStation

NALTREXONE = "naltrexone HCl"
FILLER = "microcrystalline cellulose"
VEHICLE = "oral suspending vehicle (preserved)"
GLYCERIN = "glycerin"
METHYLPARABEN = "methylparaben"
WATER = "purified water"
CREAM_BASE = "oil-in-water cream base (preserved)"
# name: (kind, unit). Every supplier, lot and base here is invented.
INGREDIENTS = {
    NALTREXONE: ("active", "mg"),
    FILLER: ("excipient", "mg"),
    VEHICLE: ("excipient", "mL"),
    GLYCERIN: ("excipient", "mL"),
    METHYLPARABEN: ("excipient", "mg"),
    WATER: ("excipient", "mL"),
    CREAM_BASE: ("excipient", "mL"),
}
LOTS = [
    # ingredient, manufacturer, lot number, expiry in days from today
    (NALTREXONE, "Example Bulk Pharma", "NX-2291", 130),
    (FILLER, "Example Excipients", "MCC-4410", 700),
    (VEHICLE, "Example Vehicles", "OSV-118", 400),
]
CAPSULE_CHECKS = ["Capsule weight within 10 % of target", "Appearance", "Label check"]
LIQUID_CHECKS = ["Volume within 5 % of target", "Appearance and odour", "Label check"]
CREAM_CHECKS = ["Weight within 5 % of target", "Appearance and uniformity", "Label check"]
OPIOID_WARNING = "Do not take with opioid pain or cough medicines"
ROOM_OR_REFRIGERATOR = BudCategory.NONAQUEOUS_SOLID.storage
CAPSULE_FILL_MG = Decimal("150")  # naltrexone made up with the filler to one fill weight


@dataclass(frozen=True)
class DemoProduct:
    """The approved master formulation record the demo gives one product of the catalogue,
    and the batch it compounds and releases by it (none when planned_units is None)."""

    name: str
    bud_category: BudCategory
    recipe: tuple[tuple[str, str], ...]  # (ingredient, amount per unit)
    qc_checks: list[str]
    container: str
    compounding_instructions: str
    storage: str = ROOM_OR_REFRIGERATOR
    antimicrobial_preservative: bool = False
    water_activity: Decimal | None = None
    planned_units: str | None = None


def capsule(strength: str, planned_units: str | None = None) -> DemoProduct:
    """Naltrexone with microcrystalline cellulose (never calcium carbonate, never slow-release,
    LDN Research Trust) in a size 3 capsule."""
    return DemoProduct(
        name=f"Naltrexone HCl {strength} mg capsule",
        bud_category=BudCategory.NONAQUEOUS_SOLID,
        recipe=((NALTREXONE, strength), (FILLER, f"{CAPSULE_FILL_MG - Decimal(strength)}")),
        qc_checks=CAPSULE_CHECKS,
        container="Amber child-resistant vial",
        compounding_instructions="Weigh, triturate with geometric dilution, fill, check.",
        planned_units=planned_units,
    )


PRODUCTS = [
    capsule("0.5"),
    capsule("1"),
    capsule("1.5", planned_units="200"),
    capsule("2"),
    capsule("2.5"),
    capsule("3", planned_units="200"),
    capsule("3.5"),
    capsule("4"),
    capsule("4.5", planned_units="300"),
    DemoProduct(
        name="Naltrexone HCl 1 mg/mL oral liquid",
        bud_category=BudCategory.AQUEOUS_PRESERVED,
        recipe=((NALTREXONE, "1"), (VEHICLE, "1")),
        qc_checks=LIQUID_CHECKS,
        container="Amber bottle with oral syringe",
        compounding_instructions="Dissolve in part of the vehicle, make up to volume, mix, check.",
        antimicrobial_preservative=True,  # the vehicle is preserved
        planned_units="1000",
    ),
    # Drops: aqueous and preserved, like the oral liquid. Naltrexone HCl is a salt that
    # dissolves in water and hardly in oils, so an oil base (nonaqueous, 90 days) would be a
    # suspension whose few drops a dose cannot be relied on to hold the same amount.
    DemoProduct(
        name="Naltrexone HCl 1 mg/mL sublingual drops",
        bud_category=BudCategory.AQUEOUS_PRESERVED,
        recipe=((NALTREXONE, "1"), (METHYLPARABEN, "1"), (GLYCERIN, "0.2"), (WATER, "0.8")),
        qc_checks=LIQUID_CHECKS,
        container="Amber glass dropper bottle",
        compounding_instructions=(
            "Dissolve the methylparaben in warm purified water, cool, dissolve the naltrexone,"
            " add the glycerin, make up to volume with purified water, mix, check."
        ),
        storage=f"{ROOM_OR_REFRIGERATOR}; protect from light",
        antimicrobial_preservative=True,  # methylparaben
    ),
    # Cream: an oil-in-water cream is aqueous (aw well above 0.6); its base is preserved.
    DemoProduct(
        name="Naltrexone HCl 0.5 mg/mL topical cream",
        bud_category=BudCategory.AQUEOUS_PRESERVED,
        recipe=((NALTREXONE, "0.5"), (WATER, "0.05"), (CREAM_BASE, "0.95")),
        qc_checks=CREAM_CHECKS,
        container="Airless pump dispenser",
        compounding_instructions=(
            "Dissolve the naltrexone in the purified water, incorporate into the cream base by"
            " geometric dilution, mix until uniform, fill the pumps, check."
        ),
        storage=f"{ROOM_OR_REFRIGERATOR}; do not freeze",
        antimicrobial_preservative=True,  # the cream base is preserved
    ),
]


# The pharmacy's printers: a thermal label printer at the dispensing bench, and the office
# printer for sheets of labels.
PRINT_STATIONS = (
    ("Dispensing bench (thermal, ZPL)", PrintStation.OutputFormat.ZPL, 203),
    ("Office printer (PDF label sheets)", PrintStation.OutputFormat.PDF, 300),
)


def seed_compounding(*, pharmacist, technician, author) -> int:
    """Create the records once; returns how many batches it released (0 when already there)."""
    if IngredientLot.objects.filter(lot_number=LOTS[0][2]).exists():  # seeded before
        return 0
    today = timezone.localdate()
    ingredients = {
        name: Ingredient.objects.get_or_create(name=name, defaults={"kind": kind, "unit": unit})[0]
        for name, (kind, unit) in INGREDIENTS.items()
    }
    lots = {}
    for name, manufacturer, lot_number, days in LOTS:
        lot = batches.lot_receive(
            ingredient=ingredients[name],
            manufacturer=manufacturer,
            lot_number=lot_number,
            expires_on=today + datetime.timedelta(days=days),
            quantity_received=Decimal("50000"),
            certificate_of_analysis=f"COA-{lot_number}",
            actor=technician,
        )
        lots[name] = batches.lot_release(lot=lot, actor=pharmacist)
    for name, output_format, dpi in PRINT_STATIONS:
        PrintStation.objects.get_or_create(
            name=name, defaults={"output_format": output_format, "dpi": dpi}
        )
    released = 0
    for product in PRODUCTS:
        version = formulations.formulation_version_draft(
            formulation=Formulation.objects.get(name=product.name),
            actor=author,
            bud_category=product.bud_category,
            water_activity=product.water_activity,
            antimicrobial_preservative=product.antimicrobial_preservative,
            storage=product.storage,
            container=product.container,
            compounding_instructions=product.compounding_instructions,
            qc_checks=product.qc_checks,
            auxiliary_labels=[OPIOID_WARNING],
            ingredients=[(ingredients[name], Decimal(amount)) for name, amount in product.recipe],
        )
        version = formulations.formulation_version_approve(version=version, actor=pharmacist)
        if product.planned_units is not None:
            release_batch(product, version, lots=lots, technician=technician, pharmacist=pharmacist)
            released += 1
    return released


def release_batch(product: DemoProduct, version, *, lots, technician, pharmacist) -> None:
    """One batch of the product compounded today by the technician, QC passed, released."""
    planned = Decimal(product.planned_units)
    batch = batches.batch_start(
        formulation_version=version, planned_units=planned, actor=technician
    )
    for ingredient, amount in product.recipe:
        batches.batch_add_ingredient(
            batch=batch, lot=lots[ingredient], amount=Decimal(amount) * planned, actor=technician
        )
    batches.batch_submit_for_qc(batch=batch, actor=technician, actual_units=planned)
    for check in product.qc_checks:
        batches.batch_record_qc(batch=batch, check_name=check, passed=True, actor=technician)
    batches.batch_release(batch=batch, actor=pharmacist)


# DEMO ONLY: the authenticator-app key of every demo staff account. It is published (README,
# seed output), so it protects nothing; real staff enrol their own random key at first sign-in.
DEMO_TOTP_SECRET = "LDNDEMOLDNDEMOLDNDEMOLDNDEMOLDND"  # base32 ("LDN DEMO" ...), 20 bytes
DEMO_TOTP_DEVICE_NAME = "Demo authenticator (published demo key)"


def demo_totp_device(*, user) -> TOTPDevice:
    """The staff member's confirmed second-factor device: the demo key, unless they already
    have one (then it is left alone)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(
            user=user, name=DEMO_TOTP_DEVICE_NAME, key=b32decode(DEMO_TOTP_SECRET).hex(),
            confirmed=True,
        )  # fmt: skip
    return device


def advance_order(*, order, to: str, prescriber, pharmacist, technician, password: str) -> None:
    """Take a demo order through the workflow with the same services and roles as real work:
    "on_hold", "cancelled", "ready" or "shipped"."""
    if to == "cancelled":
        order_cancel(order=order, actor=prescriber, reason="Patient chose to wait.")
        return
    order = order_start_review(order=order, actor=pharmacist)
    if to == "on_hold":
        order_hold(order=order, actor=pharmacist,
                   question="Has the patient stopped all opioid cough syrups?")  # fmt: skip
        return
    order = order_move(order=order, to_status=S.VERIFIED, actor=pharmacist,
                       inputs={"password": password})  # fmt: skip
    dispense_allocate(order=order, actor=technician)
    order = order_move(order=order, to_status=S.READY, actor=pharmacist,
                       inputs={"labels": "\n".join(label_barcodes(order))})  # fmt: skip
    if to == "shipped":
        order_move(order=order, to_status=S.SHIPPED, actor=technician,
                   inputs={"carrier": "UPS", "tracking_number": "1Z999AA10123456784"})  # fmt: skip


# Three weeks of an invented diary (pain 0-10, sleep 0-10, side effects) from the first day of
# a dispensed titration taken at bedtime: vivid dreams on most nights of the first week (so the
# patient page suggests morning dosing), the pain easing slowly, two days without an entry
# (None) and one dose forgotten (the day in DIARY_DOSE_FORGOTTEN).
DIARY_DAYS = [
    # (pain, sleep, side effects)
    (7, 4, ["vivid_dreams"]),
    (7, 4, ["vivid_dreams"]),
    (8, 3, ["vivid_dreams", "insomnia"]),
    (7, 5, ["headache"]),
    (6, 4, ["vivid_dreams"]),
    (7, 5, ["vivid_dreams"]),
    (6, 6, []),
    (6, 6, []),
    (6, 7, []),
    (5, 6, []),
    None,
    (6, 7, []),
    (5, 7, []),
    (5, 7, []),
    (5, 6, ["vivid_dreams"]),
    (4, 7, []),
    (5, 7, []),
    None,
    (4, 8, []),
    (4, 7, []),
    (4, 8, []),
]
DIARY_DOSE_FORGOTTEN = 9


# The demo patient's own account (an invented address): they sign in by an emailed link.
DEMO_PATIENT_EMAIL = "patient@demo.test"


def seed_patient_access(*, patient: Patient, invited_by) -> PatientAccess:
    """The patient's access to the portal, accepted, for the address DEMO_PATIENT_EMAIL."""
    access = PatientAccess.objects.filter(patient=patient).select_related("user").first()
    if access is not None:
        return access
    user = User.objects.create_user(email=DEMO_PATIENT_EMAIL)  # no password: links only
    now = timezone.now()
    return PatientAccess.objects.create(
        patient=patient, user=user, invited_by=invited_by, invited_at=now, accepted_at=now,
        terms_accepted_at=now, diary_frequency=DiaryFrequency.DAILY.value,
    )  # fmt: skip


def seed_diary(*, patient: Patient) -> int:
    """The demo diary of the patient's dispensed first fill, once (0 when the patient has
    entries already, or no dispensed fill), written by the patient's own account. The fill was
    dispensed as the demo was seeded: it is moved back so that the diary's three weeks fall
    within it (placed, dispensed and its events as many days earlier). Returns the entries
    made."""
    order = (
        Order.objects.filter(prescription__patient=patient, kind=OrderKind.NEW)
        .filter(dispenses__isnull=False)
        .select_related("prescription")
        .first()
    )
    if order is None or DiaryEntry.objects.filter(patient=patient).exists():
        return 0
    author = seed_patient_access(patient=patient, invited_by=order.created_by).user
    back = datetime.timedelta(days=len(DIARY_DAYS))
    Prescription.objects.filter(pk=order.prescription_id).update(
        created_at=F("created_at") - back,
        written_on=F("written_on") - back,
        expires_on=F("expires_on") - back,
    )
    Order.objects.filter(pk=order.pk).update(
        created_at=F("created_at") - back, status_changed_at=F("status_changed_at") - back
    )
    OrderEvent.objects.filter(order=order).update(created_at=F("created_at") - back)
    Dispense.objects.filter(order=order).update(dispensed_at=F("dispensed_at") - back)
    first_day = timezone.localdate() - back
    doses = [step.dose_mg for step in order.prescription.steps.all() for _ in range(step.days)]
    entries = []
    for n, kept in enumerate(DIARY_DAYS):
        if kept is None:
            continue
        pain, sleep, side_effects = kept
        taken = n != DIARY_DOSE_FORGOTTEN
        entries.append(
            DiaryEntry(
                patient=patient,
                day=first_day + datetime.timedelta(days=n),
                dose_taken=taken,
                dose_mg=doses[min(n, len(doses) - 1)] if taken else None,
                time_taken=TimeTaken.BEDTIME if taken else "",
                score=pain,
                sleep_quality=sleep,
                side_effects=side_effects,
                created_by=author,
            )
        )
    DiaryEntry.objects.bulk_create(entries)
    return len(entries)
