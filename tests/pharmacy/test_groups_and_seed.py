import io
from base64 import b32decode, b32encode

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.models import User
from orders.models import Patient, PatientAccess
from pharmacy.demo import DEMO_TOTP_DEVICE_NAME, DEMO_TOTP_SECRET
from prescribers.models import Clinic, Membership, Prescriber, PrescriberStatus
from tests.factories import clinic_of
from tests.signing_in import sign_in

pytestmark = pytest.mark.django_db


def permissions(group_name):
    group = Group.objects.get(name=group_name)
    return {
        f"{p.content_type.app_label}.{p.codename}"
        for p in group.permissions.select_related("content_type")
    }


def test_staff_groups_exist_with_their_permissions():
    assert permissions("Pharmacist") == {
        "core.view_user", "prescribers.view_clinic", "prescribers.change_clinic",
        "prescribers.view_prescriber", "prescribers.change_prescriber",
        "prescribers.decide_prescriber", "prescribers.view_prescriberevent",
        "orders.view_patient", "orders.add_patient", "orders.change_patient",
        "orders.view_formulation", "orders.change_formulation", "orders.view_prescription",
        "orders.view_order", "orders.view_orderevent",
        *catalogue("view", "add", "change", models=[
            "ingredient", "formulationversion", "formulationingredient"]),
        *compounding("view", "add", "change", models=[
            "ingredientlot", "batch", "batchingredient", "qcresult"]),
        *compounding("view", models=["ingredientlotevent", "batchevent", "dispense",
                                     "recallnotice"]),
        "pharmacy.view_recall", "pharmacy.add_recall",
        "core.view_accessevent",  # who saw a patient's record (read-only for everyone)
        "pharmacy.view_delivery", "pharmacy.change_delivery",  # the outbox: retry failed emails
        "prescribers.view_membership",  # who belongs to each clinic
        "prescribers.view_licence", "prescribers.add_licence", "prescribers.change_licence",
        *compounding("view", "add", "change", models=["printstation"]),  # label printers
        # Clinics' webhooks: read, and a failed delivery sent again.
        *compounding("view", models=["webhookendpoint", "webhookdelivery", "webhookattempt"]),
        "pharmacy.change_webhookdelivery",
    }  # fmt: skip
    assert permissions("Technician") == {
        "prescribers.view_clinic", "prescribers.view_prescriber", "orders.view_patient",
        "orders.view_formulation", "orders.view_prescription", "orders.view_order",
        "orders.view_orderevent",
        *catalogue("view", models=["ingredient", "formulationversion", "formulationingredient"]),
        *compounding("view", models=["ingredientlotevent", "batchevent", "dispense",
                                     "recallnotice"]),
        *compounding("view", "add", "change", models=["ingredientlot", "batch",
                                                      "batchingredient", "qcresult"]),
        "pharmacy.view_delivery", "prescribers.view_membership", "prescribers.view_licence",
        "pharmacy.view_printstation",
        *compounding("view", models=["webhookendpoint", "webhookdelivery", "webhookattempt"]),
    }  # fmt: skip


def compounding(*verbs, models):
    return {f"pharmacy.{verb}_{model}" for model in models for verb in verbs}


def catalogue(*verbs, models):
    """The catalogue's master formulation records and ingredients (the orders app's models)."""
    return {f"orders.{verb}_{model}" for model in models for verb in verbs}


def counts():
    return {
        "users": User.objects.count(),
        "clinics": Clinic.objects.count(),
        "prescribers": Prescriber.objects.count(),
        "memberships": Membership.objects.count(),
        "patients": Patient.objects.count(),
    }


def test_seed_demo_is_idempotent(settings, client):
    settings.DEBUG = True
    before = counts()  # the author of the catalogue's records (tests/conftest.py)
    output = io.StringIO()
    call_command("seed_demo", stdout=output)
    first = counts()
    call_command("seed_demo", stdout=io.StringIO())

    added = {name: first[name] - before[name] for name in first}
    assert first == counts()
    # Seven people of the clinics and the pharmacy, and one patient's own account (the diary's).
    assert added == {
        "users": 8, "clinics": 2, "prescribers": 3, "memberships": 5, "patients": 7,
    }  # fmt: skip
    assert PatientAccess.objects.live().get().user.email == "patient@demo.test"
    demo = Prescriber.objects.get(user__email="prescriber@demo.test")
    assert demo.status == PrescriberStatus.APPROVED
    assert Patient.objects.filter(clinic=clinic_of(demo), takes_opioids=True).count() == 2
    pharmacist = User.objects.get(email="pharmacist@demo.test")
    assert pharmacist.is_staff and not pharmacist.is_superuser
    assert list(pharmacist.groups.values_list("name", flat=True)) == ["Pharmacist"]
    assert User.objects.get(email="admin@demo.test").is_superuser
    for email in (
        "prescriber@demo.test",
        "other.prescriber@demo.test",
        "locum@demo.test",
        "nurse@demo.test",
        "pharmacist@demo.test",
        "technician@demo.test",
        "admin@demo.test",
    ):
        assert email in output.getvalue()


def test_demo_staff_have_an_authenticator_app_with_the_published_demo_key(settings, client):
    settings.DEBUG = True
    output = io.StringIO()
    call_command("seed_demo", stdout=output)
    call_command("seed_demo", stdout=io.StringIO())

    staff = ["pharmacist@demo.test", "technician@demo.test", "admin@demo.test"]
    devices = TOTPDevice.objects.select_related("user").order_by("user__email")
    assert [(d.user.email, d.confirmed, d.name) for d in devices] == [
        (email, True, DEMO_TOTP_DEVICE_NAME) for email in sorted(staff)
    ]
    assert {b32encode(d.bin_key).decode() for d in devices} == {DEMO_TOTP_SECRET}
    printed = output.getvalue()
    assert "DEMO ONLY" in printed
    assert DEMO_TOTP_SECRET in printed
    for device in devices:
        assert f"{device.user.email:32} {device.config_url}" in printed
        assert device.config_url.startswith("otpauth://totp/")

    # The code an app makes from the printed key opens the admin.
    assert sign_in(client, "pharmacist@demo.test", settings.DEMO_PASSWORD)
    code = f"{totp(b32decode(DEMO_TOTP_SECRET)):06d}"
    assert client.post(reverse("admin:otp_verify"), {"code": code})["Location"] == "/admin/"
    assert client.get(reverse("admin:index")).status_code == 200


def test_demo_prescribers_see_only_their_own_clinic(settings, client):
    settings.DEBUG = True
    call_command("seed_demo", stdout=io.StringIO())
    demo_patients = Patient.objects.filter(clinic__memberships__user__email="prescriber@demo.test")

    assert sign_in(client, "prescriber@demo.test", settings.DEMO_PASSWORD)
    listed = client.get(reverse("patient_list")).context["patients"]
    assert sorted(p.pk for p in listed) == sorted(p.pk for p in demo_patients)

    client.logout()
    assert sign_in(client, "other.prescriber@demo.test", settings.DEMO_PASSWORD)
    some_demo_patient = demo_patients.first()
    assert client.get(reverse("patient_detail", args=[some_demo_patient.pk])).status_code == 404
    assert len(client.get(reverse("patient_list")).context["patients"]) == 2

    # The locum prescribes at both clinics: one at a time, switched at the top of the page.
    client.logout()
    assert sign_in(client, "locum@demo.test", settings.DEMO_PASSWORD)
    lakeside = Clinic.objects.get(name="Lakeside Family Medicine")
    page = client.get(reverse("patient_list"))
    assert page.context["portal_membership"].clinic == lakeside  # the first by name
    assert {p.clinic for p in page.context["patients"]} == {lakeside}
    switched = client.post(reverse("clinic_switch"), {"clinic": clinic_of_demo_prescriber().pk})
    assert switched["Location"] == reverse("home")
    listed = client.get(reverse("patient_list")).context["patients"]
    assert sorted(p.pk for p in listed) == sorted(p.pk for p in demo_patients)

    # The nurse drafts for the clinic's prescribers: the same patients.
    client.logout()
    assert sign_in(client, "nurse@demo.test", settings.DEMO_PASSWORD)
    listed = client.get(reverse("patient_list")).context["patients"]
    assert sorted(p.pk for p in listed) == sorted(p.pk for p in demo_patients)


def clinic_of_demo_prescriber() -> Clinic:
    return clinic_of(Prescriber.objects.get(user__email="prescriber@demo.test"))


def test_seed_demo_refuses_without_debug(settings):
    settings.DEBUG = False
    before = counts()
    with pytest.raises(CommandError, match="DEBUG is off"):
        call_command("seed_demo")
    assert counts() == before
    assert (before["clinics"], before["prescribers"], before["patients"]) == (0, 0, 0)


def test_seed_demo_force_overrides(settings):
    settings.DEBUG = False
    call_command("seed_demo", "--force", stdout=io.StringIO())
    assert counts()["prescribers"] == 3
