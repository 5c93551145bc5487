"""Smoke test in a real browser: a prescriber applies, a pharmacist approves the application in
the admin, the prescriber sets a password from the emailed link, signs in and adds a patient."""

import datetime
import re

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from orders.models import Patient
from prescribers.models import Prescriber, PrescriberStatus
from tests.e2e.signing_in import admin_sign_in
from tests.factories import (
    TEST_PASSWORD,
    StaffFactory,
    TOTPDeviceFactory,
    application_form,
    clinic_of,
)

pytestmark = [
    pytest.mark.e2e,
    # The live server sees only committed data. A transactional test's flush also empties the
    # staff groups made by a data migration; serialized_rollback restores them first.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

APPLICANT_EMAIL = "robin.applicant@prairie.example.test"
APPLICATION = application_form(email=APPLICANT_EMAIL)
APPROVE_ACTION = "Approve selected applications (emails a set-password link)"
# 12+ characters, not a common password, nothing like the email address.
NEW_PASSWORD = "Lantern-orbit-meadow-42"
PATIENT = {
    "first_name": "Jordan",
    "last_name": "Rivers",
    "date_of_birth": "1979-02-14",  # an <input type=date> takes the ISO format
    "sex": "F",
    "phone": "(217) 555-0160",
    "address_line1": "5 Oak Lane",
    "city": "Springfield",
    "state": "IL",
    "postal_code": "62702",
    "allergies": "Penicillin",
    "current_medications": "Levothyroxine 50 mcg daily",
}


def fill_fields(page: Page, values: dict[str, str]) -> None:
    """Type into inputs and textareas, choose in selects, each found by its name attribute."""
    for name, value in values.items():
        field = page.locator(f'[name="{name}"]')
        if field.evaluate("element => element.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)


def test_prescriber_applies_is_approved_and_adds_a_patient(
    live_server, settings, page, new_context
):
    # The approval email links to PORTAL_BASE_URL: point it at this live server.
    settings.PORTAL_BASE_URL = live_server.url
    pharmacist = StaffFactory(group="Pharmacist")
    TOTPDeviceFactory(user=pharmacist)  # enrolled: the admin asks for the app's code

    # 1. An anonymous visitor applies.
    page.goto(f"{live_server.url}/apply/")
    fill_fields(page, APPLICATION)
    page.get_by_role("button", name="Send application").click()
    expect(page.get_by_role("heading", name="Application received")).to_be_visible()
    expect(page).to_have_url(f"{live_server.url}/apply/received/")

    applicant = Prescriber.objects.select_related("user").get()
    assert applicant.status == PrescriberStatus.PENDING
    assert applicant.user.email == APPLICANT_EMAIL
    assert not applicant.user.has_usable_password()
    assert clinic_of(applicant).name == APPLICATION["clinic-name"]
    assert mail.outbox == []

    # 2. A pharmacist approves the application in the admin, in a browser of their own.
    admin_page = new_context().new_page()
    admin_sign_in(admin_page, live_server.url, pharmacist.email, TEST_PASSWORD)
    admin_page.goto(f"{live_server.url}/admin/prescribers/prescriber/")
    admin_page.locator(f'input[name="_selected_action"][value="{applicant.pk}"]').check()
    admin_page.locator('select[name="action"]').select_option(label=APPROVE_ACTION)
    admin_page.get_by_role("button", name="Go", exact=True).click()
    expect(admin_page.locator(".messagelist .success")).to_have_text("1 prescriber approved.")

    applicant.refresh_from_db()
    assert applicant.status == PrescriberStatus.APPROVED
    # The task ran eagerly on commit, before the admin answered; locmem kept the message.
    assert [message.to for message in mail.outbox] == [[APPLICANT_EMAIL]]
    link = re.search(
        re.escape(live_server.url) + r"/accounts/activate/[\w-]+/[\w-]+/", mail.outbox[0].body
    )
    assert link, mail.outbox[0].body

    # 3. The prescriber, not signed in anywhere, sets a password from the link and signs in.
    portal = new_context().new_page()
    portal.goto(link.group())
    expect(portal.get_by_role("heading", name="Welcome: set your password")).to_be_visible()
    fill_fields(portal, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    portal.get_by_role("button", name="Set password").click()
    expect(portal.get_by_role("alert")).to_have_text(
        "Your password is set. Sign in with your email address."
    )
    expect(portal).to_have_url(f"{live_server.url}/accounts/login/")
    fill_fields(portal, {"username": APPLICANT_EMAIL, "password": NEW_PASSWORD})
    portal.get_by_role("button", name="Sign in").click()
    expect(portal.get_by_role("heading", name="Welcome, Robin Applicant")).to_be_visible()
    expect(portal).to_have_url(f"{live_server.url}/")
    # The clinic they work for, at the top of the page and on the dashboard.
    expect(portal.locator("#acting-clinic")).to_have_text(APPLICATION["clinic-name"])
    clinic = portal.get_by_role("main").get_by_text(APPLICATION["clinic-name"], exact=True)
    expect(clinic).to_be_visible()

    # 4. The prescriber adds a first patient.
    portal.get_by_role("link", name="Add a patient", exact=True).click()
    expect(portal.get_by_role("heading", name="Add a patient", exact=True)).to_be_visible()
    fill_fields(portal, PATIENT)
    # The opioid question has nothing preselected: it must be answered.
    portal.locator('input[name="takes_opioids"][value="no"]').check()
    portal.get_by_role("button", name="Save patient").click()
    expect(portal.get_by_role("heading", name="Jordan Rivers", level=1)).to_be_visible()
    expect(portal.get_by_role("alert")).to_have_text("Patient Jordan Rivers added.")
    expect(portal.locator(".opioid-alert")).to_have_count(0)

    patient = Patient.objects.get()
    expect(portal).to_have_url(f"{live_server.url}/patients/{patient.pk}/")
    assert patient.clinic_id == clinic_of(applicant).pk
    assert patient.created_by_id == applicant.user_id
    assert patient.takes_opioids is False
    assert patient.date_of_birth == datetime.date(1979, 2, 14)
    assert (patient.first_name, patient.last_name) == ("Jordan", "Rivers")
