"""Concurrency on PostgreSQL: row locks and unique constraints decide, not timing."""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import RequestFactory
from sesame.utils import get_token

from orders.patient_access import INVITATION_SCOPE, patient_access_invite, patient_link_accept
from prescribers import services
from prescribers.models import Clinic, Prescriber, PrescriberEvent, PrescriberStatus
from tests.factories import (
    ClinicFactory,
    LicenceFactory,
    PatientFactory,
    PrescriberFactory,
    StaffFactory,
    clinic_of,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def run_together(*calls):
    """Run the calls in threads released at the same moment; return each result or error."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait()
            results[index] = call()
        except Exception as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_two_pharmacists_approving_at_once_make_one_decision(postgresql):
    first, second = StaffFactory(group="Pharmacist"), StaffFactory(group="Pharmacist")
    applicant = PrescriberFactory(status=PrescriberStatus.PENDING)

    results = run_together(
        lambda: services.prescriber_approve(prescriber=applicant, actor=first),
        lambda: services.prescriber_decline(prescriber=applicant, actor=second, reason="No"),
    )

    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1
    assert isinstance(errors[0], ValidationError)
    assert errors[0].code == "invalid_transition"
    assert PrescriberEvent.objects.filter(prescriber=applicant).count() == 1
    applicant.refresh_from_db()
    event = PrescriberEvent.objects.get(prescriber=applicant)
    assert applicant.status == event.to_status


def test_two_applications_with_one_npi_make_one_prescriber(postgresql):
    def application(email):
        prescriber = PrescriberFactory.build(
            npi="1234567893", user=None, first_name="Sam", last_name="Racer"
        )
        clinic, licence = ClinicFactory.build(), LicenceFactory.build(prescriber=None)
        return lambda: services.prescriber_apply(
            prescriber=prescriber, licence=licence, clinic=clinic, email=email
        )

    results = run_together(application("first@example.test"), application("second@example.test"))

    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1
    assert errors[0].message_dict == {
        "npi": ["A prescriber with this NPI has already applied or has an account."]
    }
    assert Prescriber.objects.filter(npi="1234567893").count() == 1
    assert Clinic.objects.count() == 1  # the loser's clinic was rolled back with it


def test_a_patients_link_confirmed_twice_at_once_signs_in_once(postgresql):
    prescriber = PrescriberFactory()
    patient = PatientFactory(clinic=clinic_of(prescriber), created_by=prescriber.user)
    access = patient_access_invite(patient=patient, email="wren@mail.test", actor=prescriber.user)
    token = get_token(access.user, scope=INVITATION_SCOPE)
    request = RequestFactory().post("/my/invitation/")

    def confirm():
        return patient_link_accept(
            request, token=token, invitation=True, date_of_birth=patient.date_of_birth,
            accept_terms=True,
        )  # fmt: skip

    results = run_together(confirm, confirm)

    assert sorted(type(result).__name__ for result in results) == ["LinkRefused", "PatientAccess"]
    access.refresh_from_db()
    assert access.status == "active"
