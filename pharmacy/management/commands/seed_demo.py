"""Demo data for trying the portal: two clinics, their prescribers, staff and a few patients.

Every person here is invented. Running the command again changes nothing that exists.
"""

import dataclasses
import datetime
import uuid
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core.models import User
from orders.checks import Catalogue, check_new_prescription, finding_key
from orders.dosing import DosageForm, Regimen, quantity_needed
from orders.forms import REASON_FOR_COMPOUNDING
from orders.models import OrderStatus, Patient, Sex, ShipTo, TitrationProtocol
from orders.order_input import parse_schedule
from orders.protocols import protocol_save
from orders.services import order_submit, patient_create
from pharmacy.demo import (
    DEMO_TOTP_DEVICE_NAME,
    DEMO_TOTP_SECRET,
    advance_order,
    demo_totp_device,
    seed_compounding,
    seed_diary,
)
from prescribers.models import (
    Clinic,
    Credentials,
    Licence,
    Membership,
    MembershipRole,
    MembershipStatus,
    Prescriber,
    PrescriberStatus,
)

CLINICS = {
    "demo": {
        "name": "Maple Grove Integrative Clinic",
        "address_line1": "100 Demo Avenue",
        "city": "Springfield",
        "state": "IL",
        "postal_code": "62701",
        "phone": "+12175550100",
        "label_email": "labels@maplegrove.demo.test",
    },
    "other": {
        "name": "Lakeside Family Medicine",
        "address_line1": "200 Example Road",
        "city": "Madison",
        "state": "WI",
        "postal_code": "53703",
        "phone": "+16085550123",
        "label_email": "labels@lakeside.demo.test",
    },
}

PRESCRIBERS = [
    # email, clinic, first, last, credentials, NPI (valid check digit), licence
    ("prescriber@demo.test", "demo", "Avery", "Demo", Credentials.MD, "1234567893", "036-100001"),
    ("other.prescriber@demo.test", "other", "Jordan", "Sample", Credentials.NP, "1245319599", "NP-20002"),
    ("locum@demo.test", "demo", "Riley", "Locum", Credentials.PA, "1457396780", "PA-30003"),
]  # fmt: skip
# Prescribers who also order for another clinic (the switch at the top of every page).
ALSO_PRESCRIBES_AT = [("locum@demo.test", "other")]
# Clinic staff (a nurse): adds patients and drafts orders for the clinic's prescribers to sign.
CLINIC_STAFF = [("nurse@demo.test", "demo", "Noor", "Nurse")]
# The demo's licences are active for a long while yet.
DEMO_LICENCES_EXPIRE = datetime.date(2036, 12, 31)

STAFF = [
    # email, first, last, group, superuser
    ("pharmacist@demo.test", "Pat", "Pharmacist", "Pharmacist", False),
    ("technician@demo.test", "Toby", "Technician", "Technician", False),
    ("admin@demo.test", "Ada", "Admin", None, True),
]

PATIENTS = [
    # clinic, first, last, born, sex, takes opioids, current medications
    ("demo", "Rowan", "Testpatient", datetime.date(1978, 4, 12), Sex.FEMALE, False, "Levothyroxine 50 mcg daily"),
    ("demo", "Casey", "Example", datetime.date(1965, 9, 30), Sex.MALE, True, "Tramadol 50 mg as needed for back pain"),
    ("demo", "Morgan", "Placeholder", datetime.date(1990, 1, 5), Sex.FEMALE, False, ""),
    ("demo", "Quinn", "Fictional", datetime.date(1952, 11, 20), Sex.MALE, True, "Oxycodone 5 mg every 6 hours\nLisinopril 10 mg daily"),
    ("demo", "Riley", "Madeup", datetime.date(1985, 6, 17), Sex.UNSPECIFIED, False, "Vitamin D 2000 IU daily"),
    ("other", "Sam", "Otherclinic", datetime.date(1970, 3, 3), Sex.FEMALE, False, ""),
    ("other", "Drew", "Elsewhere", datetime.date(1988, 8, 8), Sex.MALE, False, "Non-opioid pain reliever (ibuprofen) as needed"),
]  # fmt: skip


ORDERS = [
    # clinic, patient's last name, dosage form, concentration, schedule, refills, diagnosis,
    # where the order goes next (see pharmacy.demo.advance_order)
    ("demo", "Testpatient", "capsule", None, "1.5 x 14, 3 x 14, 4.5 x 30", 2, "M79.7", None),
    ("demo", "Placeholder", "oral_liquid", "1", "4.5 x 30", 3, "G35.A", "on_hold"),
    (
        "demo",
        "Madeup",
        "capsule",
        None,
        "0.5 x 14, 1 x 14, 1.5 x 14, 2 x 30",
        1,
        "L63.9",
        "cancelled",
    ),
    ("other", "Otherclinic", "capsule", None, "1.5 x 14, 3 x 30", 2, "M79.7", "shipped"),
    ("other", "Elsewhere", "oral_liquid", "1", "1 x 7, 2 x 21", 1, "L40.0", "ready"),
]

# The patient whose first fill (dispensed) has three weeks of diary (pharmacy.demo.seed_diary).
DIARY = ("other", "Otherclinic")

PROTOCOLS = [
    # clinic, name, schedule, days' supply, refills (capsules at bedtime, once a day)
    ("demo", "Standard 1.5 → 4.5 mg", "1.5 x 14, 3 x 14, 4.5 x 30", 58, 2),
    ("demo", "Sensitive 0.5 mg steps", "0.5 x 14, 1 x 14, 1.5 x 14, 2 x 14", 56, 1),
]


class Command(BaseCommand):
    help = "Create the demo clinics, prescribers, staff and patients (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--force",
            action="store_true",
            help="Seed even though DEBUG is off (never in production).",
        )

    def handle(self, *args, force: bool = False, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "DEBUG is off: refusing to add demo accounts. Use --force to insist."
            )
        password = settings.DEMO_PASSWORD
        with transaction.atomic():
            clinics = {key: self._clinic(fields) for key, fields in CLINICS.items()}
            by_email = {
                row[0]: self._prescriber(*row, clinics=clinics, password=password)
                for row in PRESCRIBERS
            }
            for email, clinic_key in ALSO_PRESCRIBES_AT:
                self._membership(by_email[email], clinics[clinic_key])
            for email, clinic_key, first, last in CLINIC_STAFF:
                nurse, _ = self._user(email, first, last, password)
                Membership.objects.get_or_create(
                    user=nurse, clinic=clinics[clinic_key],
                    defaults={"role": MembershipRole.STAFF, "status": MembershipStatus.ACTIVE},
                )  # fmt: skip
            # The patients and orders of each clinic are its first prescriber's.
            prescribers = {}
            for email, clinic_key, *_ in PRESCRIBERS:
                prescribers.setdefault(clinic_key, by_email[email])
            staff = {row[0]: self._staff(*row, password=password) for row in STAFF}
            devices = {email: demo_totp_device(user=user) for email, user in staff.items()}
            released = seed_compounding(
                pharmacist=staff["pharmacist@demo.test"],
                technician=staff["technician@demo.test"],
                author=staff["admin@demo.test"],
            )
            created = sum(
                self._patient(*row, prescribers=prescribers, clinics=clinics) for row in PATIENTS
            )
            for row in ORDERS:
                self._order(*row, prescribers=prescribers, clinics=clinics, staff=staff)
            seed_diary(patient=Patient.objects.get(clinic=clinics[DIARY[0]], last_name=DIARY[1]))
            for clinic_key, name, steps, days_supply, refills in PROTOCOLS:
                clinic = clinics[clinic_key]
                if not TitrationProtocol.objects.filter(clinic=clinic, name=name).exists():
                    protocol_save(
                        actor=prescribers[clinic_key].user, clinic_id=clinic.pk, name=name,
                        dosage_form=DosageForm.CAPSULE, concentration_mg_per_ml=None, steps=steps,
                        doses_per_day=1, time_of_day="bedtime", days_supply=days_supply,
                        refills=refills,
                    )  # fmt: skip
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready ({created} new patients, {released} new released batches)."
            )
        )
        self.stdout.write(
            f"Sign in at {settings.PORTAL_BASE_URL}/accounts/login/ with the password {password!r}:"
        )
        for email, *_ in PRESCRIBERS:
            self.stdout.write(f"  {email:32} prescriber")
        for email, *_ in CLINIC_STAFF:
            self.stdout.write(f"  {email:32} clinic staff (drafts for a prescriber to sign)")
        for email, _first, _last, group, superuser in STAFF:
            self.stdout.write(f"  {email:32} {'superuser' if superuser else group.lower()} (admin)")
        self.stdout.write(
            "The admin also asks staff for a code from an authenticator app (any TOTP app).\n"
            "DEMO ONLY: the demo staff share this published key, which protects nothing; real\n"
            "staff set up their own random key at their first sign-in. Type the key into the\n"
            f"app (time-based, 6 digits, 30 s): {DEMO_TOTP_SECRET}\n"
            "or open one of these otpauth:// links on the phone (or make a QR code of it):"
        )
        for email, device in devices.items():
            if device.name == DEMO_TOTP_DEVICE_NAME:
                self.stdout.write(f"  {email:32} {device.config_url}")
            else:
                self.stdout.write(f"  {email:32} has an authenticator app of their own")

    def _clinic(self, fields) -> Clinic:
        clinic, _ = Clinic.objects.get_or_create(name=fields["name"], defaults=fields)
        return clinic

    def _user(self, email, first, last, password, **flags) -> tuple[User, bool]:
        user, created = User.objects.get_or_create(
            email=email, defaults={"first_name": first, "last_name": last, **flags}
        )
        if created:
            user.set_password(password)
            user.save(update_fields=["password"])
        return user, created

    def _prescriber(
        self, email, clinic_key, first, last, credentials, npi, licence, *, clinics, password
    ) -> Prescriber:
        user, _ = self._user(email, first, last, password)
        prescriber, _ = Prescriber.objects.get_or_create(
            user=user,
            defaults={
                "first_name": first,
                "last_name": last,
                "credentials": credentials,
                "npi": npi,
                "phone": clinics[clinic_key].phone,
                "status": PrescriberStatus.APPROVED,
            },
        )
        Licence.objects.get_or_create(
            prescriber=prescriber, state=clinics[clinic_key].state,
            defaults={"number": licence, "expires_on": DEMO_LICENCES_EXPIRE},
        )  # fmt: skip
        self._membership(prescriber, clinics[clinic_key])
        return prescriber

    def _membership(self, prescriber: Prescriber, clinic: Clinic) -> None:
        # Prescribing for the clinic's patients needs a licence in its state.
        Licence.objects.get_or_create(
            prescriber=prescriber, state=clinic.state,
            defaults={"number": f"{clinic.state}-{prescriber.npi[-5:]}",
                      "expires_on": DEMO_LICENCES_EXPIRE},
        )  # fmt: skip
        Membership.objects.get_or_create(
            user=prescriber.user, clinic=clinic,
            defaults={"role": MembershipRole.PRESCRIBER, "status": MembershipStatus.ACTIVE},
        )  # fmt: skip

    def _staff(self, email, first, last, group, superuser, *, password) -> User:
        user, _ = self._user(email, first, last, password, is_staff=True, is_superuser=superuser)
        if group:
            user.groups.add(Group.objects.get(name=group))
        return user

    def _patient(
        self, clinic_key, first, last, born, sex, opioids, medications, *, prescribers, clinics
    ) -> bool:
        prescriber, clinic = prescribers[clinic_key], clinics[clinic_key]
        if Patient.objects.likely_duplicates(
            clinic_id=clinic.pk, first_name=first, last_name=last, date_of_birth=born
        ).exists():
            return False
        patient_create(
            clinic=clinic,
            actor=prescriber.user,
            first_name=first,
            last_name=last,
            date_of_birth=born,
            sex=sex,
            phone="+12175550199",
            address_line1="1 Sample Street",
            address_line2="",
            city=clinic.city,
            state=clinic.state,
            postal_code=clinic.postal_code,
            allergies="NKDA",
            current_medications=medications,
            takes_opioids=opioids,
        )
        return True

    def _order(self, clinic_key, last_name, dosage_form, concentration, schedule, refills, code,
               then, *, prescribers, clinics, staff) -> None:  # fmt: skip
        prescriber = prescribers[clinic_key]
        patient = Patient.objects.get(clinic=clinics[clinic_key], last_name=last_name)
        steps = parse_schedule(schedule)
        regimen = Regimen(
            dosage_form=DosageForm(dosage_form), steps=steps, doses_per_day=1, quantity=None,
            days_supply=sum(step.days for step in steps), refills=refills,
            concentration_mg_per_ml=Decimal(concentration) if concentration else None,
        )  # fmt: skip
        regimen = dataclasses.replace(regimen, quantity=quantity_needed(regimen))
        check = check_new_prescription(
            patient=patient, prescriber=prescriber, regimen=regimen, diagnosis_codes=[code],
            catalogue=Catalogue.load(),
        )  # fmt: skip
        # The same key each run: a second seed finds the orders the first one made.
        key = uuid.uuid5(uuid.NAMESPACE_URL, f"seed-demo/{last_name}")
        order = order_submit(
            actor=prescriber.user, patient=patient, regimen=regimen, diagnosis_codes=[code],
            reason_for_compounding=REASON_FOR_COMPOUNDING, ship_to=ShipTo.CLINIC, needed_by=None,
            acknowledged=[finding_key(f) for f in check.warnings], idempotency_key=key,
            reason="Demo order.",
        )  # fmt: skip
        if then and order.status == OrderStatus.SUBMITTED:  # first run only
            advance_order(
                order=order, to=then, prescriber=prescriber.user,
                pharmacist=staff["pharmacist@demo.test"], technician=staff["technician@demo.test"],
                password=settings.DEMO_PASSWORD,
            )  # fmt: skip
