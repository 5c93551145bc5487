"""A prescriber of two clinics switches between them at the top of the page, in Chromium, and
sees each clinic's patients only; the switch fits a phone and passes axe-core."""

import pytest
from playwright.sync_api import expect

from tests.e2e.test_ordering import sign_in
from tests.e2e.test_prescriber_pages_on_a_phone import fits_and_passes_axe
from tests.factories import ClinicFactory, MembershipFactory, PatientFactory, PrescriberFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_a_prescriber_of_two_clinics_switches_between_them(live_server, page):
    alder, birch = (
        ClinicFactory(name="Alder Family Clinic"),
        ClinicFactory(name="Birch Dermatology"),
    )
    prescriber = PrescriberFactory(clinic=alder)
    MembershipFactory(user=prescriber.user, clinic=birch)
    PatientFactory(clinic=alder, first_name="Ash", last_name="Ashworth")
    beech = PatientFactory(clinic=birch, first_name="Bea", last_name="Beechwood")

    sign_in(page, live_server.url, prescriber.user.email)
    page.goto(f"{live_server.url}/patients/")
    patients = page.locator("main")
    expect(patients).to_contain_text("Ashworth")
    expect(patients).not_to_contain_text("Beechwood")
    expect(page.get_by_label("Working for")).to_have_value(str(alder.pk))

    page.get_by_label("Working for").select_option(label="Birch Dermatology")
    page.get_by_role("button", name="Switch").click()
    expect(page.get_by_role("alert").or_(page.locator(".alert"))).to_contain_text(
        "You are working for Birch Dermatology."
    )
    page.goto(f"{live_server.url}/patients/")
    expect(patients).to_contain_text("Beechwood")
    expect(patients).not_to_contain_text("Ashworth")
    expect(page.get_by_label("Working for")).to_have_value(str(birch.pk))
    page.goto(f"{live_server.url}/patients/{beech.pk}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Beechwood")

    # On a phone the switch sits in the menu, fits the screen and passes axe.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/")
    page.get_by_role("button", name="Menu").click()
    expect(page.get_by_label("Working for")).to_be_visible()
    fits_and_passes_axe(page, "dashboard with the clinic switch")
