"""Demo compounding records for `seed_demo`: ingredients and lots, approved master formulation
records, and released batches, all made through the services (so the demo obeys the same rules
as real work). Every lot and supplier here is invented."""

import datetime
from base64 import b32decode
from decimal import Decimal

from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from . import batches, formulations
from .models import Formulation, FormulationVersion, Ingredient

NALTREXONE, FILLER, VEHICLE = (
    "naltrexone HCl",
    "microcrystalline cellulose",
    "oral suspending vehicle (preserved)",
)
CONTAINERS = {"capsule": "Amber child-resistant vial", "liquid": "Amber bottle with oral syringe"}
CAPSULE_CHECKS = ["Capsule weight within 10 % of target", "Appearance", "Label check"]
LIQUID_CHECKS = ["Volume within 5 % of target", "Appearance and odour", "Label check"]
# (formulation name, BUD category, checks, ingredients per unit, planned units)
PRODUCTS = [
    ("Naltrexone HCl 1.5 mg capsule", "nonaqueous_solid", CAPSULE_CHECKS,
     [(NALTREXONE, "1.5"), (FILLER, "148.5")], "200"),
    ("Naltrexone HCl 3 mg capsule", "nonaqueous_solid", CAPSULE_CHECKS,
     [(NALTREXONE, "3"), (FILLER, "147")], "200"),
    ("Naltrexone HCl 4.5 mg capsule", "nonaqueous_solid", CAPSULE_CHECKS,
     [(NALTREXONE, "4.5"), (FILLER, "145.5")], "300"),
    ("Naltrexone HCl 1 mg/mL oral liquid", "aqueous_preserved", LIQUID_CHECKS,
     [(NALTREXONE, "1"), (VEHICLE, "1")], "1000"),
]  # fmt: skip
LOTS = [
    # ingredient, kind, unit, manufacturer, lot number, expiry in days from today
    (NALTREXONE, "active", "mg", "Example Bulk Pharma", "NX-2291", 130),
    (FILLER, "excipient", "mg", "Example Excipients", "MCC-4410", 700),
    (VEHICLE, "excipient", "mL", "Example Vehicles", "OSV-118", 400),
]


def seed_compounding(*, pharmacist, technician, author) -> int:
    """Create the records once; returns how many batches it released (0 when already there)."""
    if FormulationVersion.objects.exists():
        return 0
    today = timezone.localdate()
    lots = {}
    for name, kind, unit, manufacturer, lot_number, days in LOTS:
        ingredient, _ = Ingredient.objects.get_or_create(
            name=name, defaults={"kind": kind, "unit": unit}
        )
        lot = batches.lot_receive(
            ingredient=ingredient, manufacturer=manufacturer, lot_number=lot_number,
            expires_on=today + datetime.timedelta(days=days), quantity_received=Decimal("50000"),
            certificate_of_analysis=f"COA-{lot_number}", actor=technician,
        )  # fmt: skip
        lots[name] = batches.lot_release(lot=lot, actor=pharmacist)
    released = 0
    for name, category, checks, recipe, planned in PRODUCTS:
        formulation = Formulation.objects.get(name=name)
        storage = "Store at room temperature or in a refrigerator"
        version = formulations.formulation_version_draft(
            formulation=formulation, actor=author, bud_category=category, storage=storage,
            container=CONTAINERS["capsule" if "capsule" in name else "liquid"],
            compounding_instructions="Weigh, triturate with geometric dilution, fill, check.",
            qc_checks=checks, auxiliary_labels=["Do not take with opioid pain or cough medicines"],
            ingredients=[(Ingredient.objects.get(name=i), Decimal(a)) for i, a in recipe],
        )  # fmt: skip
        version = formulations.formulation_version_approve(version=version, actor=pharmacist)
        batch = batches.batch_start(formulation_version=version, planned_units=Decimal(planned),
                                    actor=technician)  # fmt: skip
        for ingredient, amount in recipe:
            batches.batch_add_ingredient(
                batch=batch, lot=lots[ingredient], amount=Decimal(amount) * Decimal(planned),
                actor=technician,
            )  # fmt: skip
        batches.batch_submit_for_qc(batch=batch, actor=technician, actual_units=Decimal(planned))
        for check in checks:
            batches.batch_record_qc(batch=batch, check_name=check, passed=True, actor=technician)
        batches.batch_release(batch=batch, actor=pharmacist)
        released += 1
    return released


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
    from orders.models import OrderStatus as S
    from orders.services import order_cancel, order_hold, order_move, order_start_review

    from .dispensing import dispense_allocate

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
    order = order_move(order=order, to_status=S.READY, actor=pharmacist, inputs={})
    if to == "shipped":
        order_move(order=order, to_status=S.SHIPPED, actor=technician,
                   inputs={"carrier": "UPS", "tracking_number": "1Z999AA10123456784"})  # fmt: skip
