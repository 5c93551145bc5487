"""factory-boy factories. Every person they make is invented."""

import datetime
import itertools
import uuid
from decimal import Decimal

import factory
from django.contrib.auth.models import Group
from django.db.models import Max
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.models import User
from orders.checks import Catalogue, check_new_prescription, finding_key
from orders.dosing import DosageForm, Regimen, Step
from orders.models import (
    DiaryEntry,
    Formulation,
    FormulationVersion,
    FormulationVersionStatus,
    Ingredient,
    Patient,
    PatientAccess,
    Sex,
)
from orders.services import order_submit
from pharmacy.models import Batch, BatchStatus, IngredientLot, LotStatus
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
from prescribers.npi import npi_check_digit

TEST_PASSWORD = "correct-horse-battery-9"
_npi_serial = itertools.count(100000001)


def make_npi() -> str:
    first_nine = f"{next(_npi_serial):09d}"
    return first_nine + str(npi_check_digit(first_nine))


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.django.Password(TEST_PASSWORD)


class StaffFactory(UserFactory):
    is_staff = True

    @factory.post_generation
    def group(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.add(Group.objects.get(name=extracted))


class TOTPDeviceFactory(factory.django.DjangoModelFactory):
    """A confirmed authenticator app (random key) of a staff user."""

    class Meta:
        model = TOTPDevice

    user = factory.SubFactory(StaffFactory)
    name = "Authenticator app"
    confirmed = True


class ClinicFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Clinic

    name = factory.Sequence(lambda n: f"Test Clinic {n}")
    address_line1 = "10 Test Street"
    city = "Springfield"
    state = "IL"
    postal_code = "62701"
    phone = "+12175550142"
    label_email = factory.Sequence(lambda n: f"labels{n}@clinic.example.test")


class PrescriberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prescriber
        skip_postgeneration_save = True

    class Params:
        # The clinic the prescriber orders for: an active prescriber membership.
        clinic = factory.SubFactory(ClinicFactory)

    user = factory.SubFactory(UserFactory)
    first_name = factory.SelfAttribute("user.first_name")
    last_name = factory.SelfAttribute("user.last_name")
    credentials = Credentials.MD
    npi = factory.LazyFunction(make_npi)
    phone = "+12175550143"
    status = PrescriberStatus.APPROVED
    membership = factory.RelatedFactory(
        "tests.factories.MembershipFactory", factory_related_name="",
        user=factory.SelfAttribute("..user"), clinic=factory.SelfAttribute("..clinic"),
    )  # fmt: skip
    # An active licence in the state of the clinic (where its patients live, in these tests).
    licence = factory.RelatedFactory(
        "tests.factories.LicenceFactory", factory_related_name="prescriber",
        state=factory.SelfAttribute("..clinic.state"),
    )  # fmt: skip


class LicenceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Licence

    prescriber = factory.SubFactory(PrescriberFactory)
    state = "IL"
    number = factory.Sequence(lambda n: f"LIC-{n:05d}")
    expires_on = factory.LazyFunction(lambda: datetime.date.today() + datetime.timedelta(days=400))


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    clinic = factory.SubFactory(ClinicFactory)
    role = MembershipRole.PRESCRIBER
    status = MembershipStatus.ACTIVE


def clinic_of(prescriber: Prescriber) -> Clinic:
    """The one clinic a prescriber made by PrescriberFactory orders for."""
    return Clinic.objects.get(memberships__user=prescriber.user_id, memberships__role="prescriber")


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    clinic = factory.SubFactory(ClinicFactory)
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    date_of_birth = datetime.date(1980, 5, 17)
    sex = Sex.FEMALE
    phone = "+12175550144"
    address_line1 = "5 Sample Lane"
    city = "Springfield"
    state = "IL"
    postal_code = "62704"
    allergies = "NKDA"
    current_medications = ""
    takes_opioids = False
    created_by = factory.SubFactory(UserFactory)


class DiaryEntryFactory(factory.django.DjangoModelFactory):
    """A day of a patient's diary: the dose taken at bedtime, a middling score, no side
    effect (entered, here, by whoever made the patient record)."""

    class Meta:
        model = DiaryEntry

    patient = factory.SubFactory(PatientFactory)
    day = factory.Sequence(lambda n: datetime.date(2026, 12, 1) + datetime.timedelta(days=n))
    dose_taken = True
    dose_mg = Decimal("1.5")
    time_taken = "bedtime"
    score = 6
    sleep_quality = 7
    side_effects = factory.LazyFunction(list)
    created_by = factory.SelfAttribute("patient.created_by")


class PatientAccessFactory(factory.django.DjangoModelFactory):
    """A patient's access to the portal as the clinic's invitation and the patient's acceptance
    leave it: an account of their own with no name and no password (a patient signs in by
    emailed links), accepted when invited. accepted_at=None: invited, not accepted yet."""

    class Meta:
        model = PatientAccess

    patient = factory.SubFactory(PatientFactory)
    user = factory.SubFactory(
        UserFactory, first_name="", last_name="", password=factory.django.Password(None)
    )
    invited_by = factory.SelfAttribute("patient.created_by")
    invited_at = factory.LazyFunction(timezone.now)
    accepted_at = factory.SelfAttribute("invited_at")
    terms_accepted_at = factory.SelfAttribute("accepted_at")


# The common 1.5 -> 3 -> 4.5 mg capsule titration, 58 days, two refills: every rule accepts it.
TITRATION = Regimen(
    dosage_form=DosageForm.CAPSULE,
    steps=(Step(Decimal("1.5"), 14), Step(Decimal("3"), 14), Step(Decimal("4.5"), 30)),
    doses_per_day=1,
    quantity=Decimal("58"),
    days_supply=58,
    refills=2,
)
# Two bottles: 14 capsules of 1.5 mg, then 30 of 3 mg.
TWO_STRENGTHS = Regimen(
    dosage_form=DosageForm.CAPSULE,
    steps=(Step(Decimal("1.5"), 14), Step(Decimal("3"), 30)),
    doses_per_day=1,
    quantity=Decimal("44"),
    days_supply=44,
    refills=2,
)


def order_form(**overrides) -> dict[str, str]:
    """What a prescriber sends from the new-order page: a capsule titration (1.5, 3 and 4.5 mg)
    that every dose rule accepts, without the form's idempotency key."""
    return {
        "dosage_form": "capsule",
        "concentration_mg_per_ml": "",
        "steps": "1.5 x 14, 3 x 14, 4.5 x 30",
        "doses_per_day": "1",
        "time_of_day": "bedtime",
        "quantity": "58",
        "days_supply": "58",
        "refills": "2",
        "diagnosis_codes": "M79.7",
        "reason_for_compounding": "Strength not commercially available.",
        "ship_to": "clinic",
        "needed_by": "",
        **overrides,
    }


def application_form(**overrides) -> dict[str, str]:
    """What a prescriber types into the "apply for an account" page (clinic fields prefixed)."""
    return {
        "first_name": "Robin",
        "last_name": "Applicant",
        "credentials": "NP",
        "npi": "1234567893",
        "licence-state": "IL",
        "licence-number": "NP-77881",
        "licence-expires_on": (datetime.date.today() + datetime.timedelta(days=400)).isoformat(),
        "email": "Robin.Applicant@Clinic.example.test",
        "phone": "(217) 555-0181",
        "clinic-name": "Prairie Wellness",
        "clinic-address_line1": "12 Main Street",
        "clinic-address_line2": "",
        "clinic-city": "Peoria",
        "clinic-state": "IL",
        "clinic-postal_code": "61602",
        "clinic-phone": "309-555-0133",
        "clinic-label_email": "labels@prairie.example.test",
        **overrides,
    }


class IngredientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Ingredient
        django_get_or_create = ["name"]

    name = "naltrexone HCl"
    kind = Ingredient.Kind.ACTIVE
    unit = "mg"


class IngredientLotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IngredientLot

    ingredient = factory.SubFactory(IngredientFactory)
    manufacturer = "Example Bulk Chemicals"
    lot_number = factory.Sequence(lambda n: f"NX-{2200 + n}")
    expires_on = datetime.date(2028, 3, 31)
    quantity_received = Decimal("25000")
    certificate_of_analysis = factory.Sequence(lambda n: f"COA-{n:04d}")
    status = LotStatus.RELEASED
    received_on = datetime.date(2026, 1, 15)
    received_by = factory.SubFactory(UserFactory, is_staff=True)


class FormulationVersionFactory(factory.django.DjangoModelFactory):
    """An approved master formulation record of the 1.5 mg capsule unless told otherwise."""

    class Meta:
        model = FormulationVersion

    formulation = factory.LazyFunction(
        lambda: Formulation.objects.get(dosage_form="capsule", strength_mg=Decimal("1.5"))
    )
    status = FormulationVersionStatus.APPROVED
    bud_category = "nonaqueous_solid"
    storage = "Store at room temperature or in a refrigerator"
    container = "Amber plastic vial, child-resistant cap"
    compounding_instructions = "Geometric dilution with microcrystalline cellulose; fill size 3."
    qc_checks = ["Capsule weight within 10 % of target", "Appearance", "Label check"]
    auxiliary_labels = ["Do not take with opioid pain or cough medicines"]
    author = factory.SubFactory(UserFactory, is_staff=True)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        """The next version of the formulation; an approved one supersedes the approved one
        before it (every test starts with an approved record of each product: conftest)."""
        formulation = kwargs["formulation"]
        versions = FormulationVersion.objects.filter(formulation=formulation)
        if kwargs.get("status") == FormulationVersionStatus.APPROVED:
            versions.filter(status=FormulationVersionStatus.APPROVED).update(
                status=FormulationVersionStatus.SUPERSEDED
            )
        kwargs.setdefault("version", (versions.aggregate(last=Max("version"))["last"] or 0) + 1)
        return super()._create(model_class, *args, **kwargs)


# Every product of the catalogue as the tests find it: an approved master formulation record of
# each (a product without one cannot be ordered), with the BUD category its dosage form allows.
CATALOGUE_RECORDS = {
    "capsule": {"bud_category": "nonaqueous_solid"},
    "oral_liquid": {"bud_category": "aqueous_preserved", "antimicrobial_preservative": True},
    "sublingual_drops": {"bud_category": "aqueous_preserved", "antimicrobial_preservative": True},
    "topical_cream": {"bud_category": "aqueous_preserved", "antimicrobial_preservative": True},
}


def approve_the_catalogue() -> None:
    """An approved record for every product that has none (one INSERT for all of them)."""
    missing = Formulation.objects.exclude(versions__status=FormulationVersionStatus.APPROVED)
    formulations = list(missing)
    if not formulations:
        return
    author = UserFactory(is_staff=True)
    FormulationVersion.objects.bulk_create(
        FormulationVersionFactory.build(
            # Version 0: the record the tests start from, so that a test's own versions keep
            # their numbers from 1.
            formulation=formulation,
            version=0,
            author=author,
            **CATALOGUE_RECORDS[formulation.dosage_form],
        )
        for formulation in formulations
    )


class BatchFactory(factory.django.DjangoModelFactory):
    """A released batch with units on the shelf, unless told otherwise."""

    class Meta:
        model = Batch

    lot_number = factory.Sequence(lambda n: f"TEST-{n:05d}")
    formulation_version = factory.SubFactory(FormulationVersionFactory)
    status = BatchStatus.RELEASED
    compounded_on = datetime.date(2026, 11, 1)
    compounded_by = factory.SubFactory(UserFactory, is_staff=True)
    planned_units = Decimal("100")
    actual_units = Decimal("100")
    units_remaining = Decimal("100")
    beyond_use_date = datetime.date(2027, 4, 30)
    bud_explanation = "180 days (nonaqueous solid, USP <795>)"


def submit_order(prescriber, patient, regimen, *, idempotency_key=None, reviewed: bool = True):
    """A new order as a prescriber writes it: for the patient's M79.7 (fibromyalgia), to the
    clinic; `reviewed`: every warning the rules raise now is ticked, with a reason where one is
    needed (duplicate therapy, an early refill)."""
    acknowledged, reason = [], ""
    if reviewed:
        check = check_new_prescription(
            patient=patient,
            prescriber=prescriber,
            regimen=regimen,
            diagnosis_codes=["M79.7"],
            catalogue=Catalogue.load(),
        )
        acknowledged, reason = [finding_key(w) for w in check.warnings], "Reviewed by the test."
    return order_submit(
        actor=prescriber.user,
        patient=patient,
        regimen=regimen,
        diagnosis_codes=["M79.7"],
        reason_for_compounding="Strength not available commercially",
        ship_to="clinic",
        needed_by=None,
        acknowledged=acknowledged,
        reason=reason,
        idempotency_key=idempotency_key or uuid.uuid4(),
    )
