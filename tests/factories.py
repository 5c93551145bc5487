"""factory-boy factories. Every person they make is invented."""

import datetime
import itertools

import factory
from django.contrib.auth.models import Group

from orders.models import Patient, Sex
from pharmacy.models import User
from prescribers.models import Clinic, Credentials, Prescriber, PrescriberStatus
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

    user = factory.SubFactory(UserFactory)
    clinic = factory.SubFactory(ClinicFactory)
    first_name = factory.SelfAttribute("user.first_name")
    last_name = factory.SelfAttribute("user.last_name")
    credentials = Credentials.MD
    npi = factory.LazyFunction(make_npi)
    license_number = factory.Sequence(lambda n: f"LIC-{n:05d}")
    license_state = "IL"
    phone = "+12175550143"
    status = PrescriberStatus.APPROVED


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


def application_form(**overrides) -> dict[str, str]:
    """What a prescriber types into the "apply for an account" page (clinic fields prefixed)."""
    return {
        "first_name": "Robin",
        "last_name": "Applicant",
        "credentials": "NP",
        "npi": "1234567893",
        "license_number": "NP-77881",
        "license_state": "IL",
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
