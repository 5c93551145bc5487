"""In a real browser: a prescriber builds a titration schedule, sees the live dose check fill in
the directions and quantity, acknowledges a warning and orders; the product's beyond-use date
limits the days' supply as they type; a refused submit keeps its refusal next to the warning;
going Back and sending the form again warns of the identical order; the patient form warns at
once when "no opioids" contradicts the medication list."""

import io

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from orders.models import Order, Patient
from tests.factories import TEST_PASSWORD, PatientFactory, PrescriberFactory, clinic_of

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def sign_in(page: Page, base_url: str, email: str, password: str = TEST_PASSWORD) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.locator('[name="username"]').fill(email)
    page.locator('[name="password"]').fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()


def sign_out(page: Page, base_url: str, *, menu: bool = False) -> None:
    """Sign out and wait for the sign-in page: a page opened while the sign-out is still on its
    way would find the session alive (the sign-in page sends a signed-in person home)."""
    if menu:  # on a phone, the menu holds "Sign out"
        page.get_by_role("button", name="Menu").click()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{base_url}/accounts/login/")


def a_prescriber_and_patient(**patient_fields):
    prescriber = PrescriberFactory()
    patient = PatientFactory(
        clinic=clinic_of(prescriber),
        first_name="Quinn",
        last_name="Browser",
        takes_opioids=False,
        current_medications="",
        **patient_fields,
    )
    return prescriber, patient


def test_prescriber_builds_a_schedule_and_orders(live_server, page):
    prescriber, patient = a_prescriber_and_patient()
    sign_in(page, live_server.url, prescriber.user.email)
    page.goto(f"{live_server.url}/patients/{patient.pk}/")
    page.get_by_role("link", name="New LDN order").click()

    # 1.5 -> 3 -> 4.5 mg, 14 days a step, then 30 days at 4.5 mg, as capsules.
    expect(page.locator("#bud-limit")).to_have_text(
        "Beyond-use limit: 180 days (nonaqueous solid); the days' supply cannot be longer."
    )
    page.locator('[name="refills"]').fill("2")
    page.get_by_role("button", name="Build steps").click()
    expect(page.locator('[name="steps"]')).to_have_value("1.5 x 14, 3 x 14, 4.5 x 30")
    expect(page.locator("#directions")).to_have_text(
        "Take 1 capsule (1.5 mg) at bedtime for 14 days, then 1 capsule (3 mg) at bedtime for "
        "14 days, then 1 capsule (4.5 mg) at bedtime for 30 days."
    )
    expect(page.locator('[name="quantity"]')).to_have_value("58")
    expect(page.locator('[name="days_supply"]')).to_have_value("58")
    expect(page.locator("#refill-plan")).to_have_text(
        "Each refill continues at the maintenance dose (4.5 mg): 58 capsules for 58 days."
    )
    page.locator('[name="diagnosis_codes"]').fill("M79.7")
    expect(page.locator("#findings")).to_have_text("No problems found.")

    # A 5 mg step: above the usual 4.5 mg maximum, a warning to acknowledge, that names its
    # field. No 5 mg capsule, so the 1 mg/mL oral liquid.
    page.locator('[name="dosage_form"]').select_option("oral_liquid")
    page.locator('[name="steps"]').fill("1.5 x 7, 3 x 7, 4.5 x 7, 5 x 14")
    warning = page.locator("#findings .alert-warning")
    expect(warning).to_contain_text(
        "Schedule, step 4 dose: Daily dose 5 mg in step 4 is above the usual maximum"
    )
    expect(page.locator('[name="quantity"]')).to_have_value("133")
    expect(page.locator("#findings .alert-danger")).to_have_count(0)
    page.get_by_label("Daily dose 5 mg in step 4 is above the usual maximum", exact=False).check()
    page.get_by_role("button", name="Submit order").click()

    order = Order.objects.get()
    expect(page).to_have_url(f"{live_server.url}/orders/{order.pk}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text(order.number)
    expect(page.locator("#timeline")).to_contain_text("Submitted")
    expect(page.locator("#acknowledged")).to_contain_text("Daily dose 5 mg in step 4")
    prescription = order.prescription
    assert (prescription.dosage_form, prescription.days_supply) == ("oral_liquid", 35)
    assert [line.quantity for line in order.lines()] == [133]
    assert [w["key"] for w in prescription.acknowledged_warnings] == [
        "dose.above_usual@steps.3.dose_mg"
    ]

    page.get_by_role("link", name="Orders", exact=True).click()
    expect(page.locator("tbody")).to_contain_text(order.number)


def test_the_days_supply_never_outlasts_the_products_beyond_use_date(live_server, page):
    prescriber, patient = a_prescriber_and_patient()
    sign_in(page, live_server.url, prescriber.user.email)
    page.goto(f"{live_server.url}/patients/{patient.pk}/orders/new/")

    # The 58-day titration as the oral liquid (35 days at most: aqueous, preserved).
    page.locator('[name="dosage_form"]').select_option("oral_liquid")
    expect(page.locator("#bud-limit")).to_have_text(
        "Beyond-use limit: 35 days (aqueous, preserved); the days' supply cannot be longer."
    )
    page.get_by_role("button", name="Build steps").click()
    page.locator('[name="diagnosis_codes"]').fill("M79.7")
    refusal = (
        "Days' supply 58 days is longer than the beyond-use date of Naltrexone HCl 1 mg/mL oral "
        "liquid: 35 days (aqueous, preserved). Order at most 35 days; refills continue the supply."
    )
    expect(page.locator('#findings [data-code="days_supply.beyond_bud"]')).to_have_text(
        f"{refusal}Source: USP <795> (2023 revision)"
    )
    page.get_by_role("button", name="Submit order").click()  # the server says the same
    expect(page.locator("#id_days_supply ~ .invalid-feedback")).to_contain_text(refusal)
    assert Order.objects.count() == 0

    # Within the limit: 35 days, and refills continue at 4.5 mg.
    page.locator('[name="steps"]').fill("1.5 x 7, 3 x 7, 4.5 x 21")
    expect(page.locator('[name="days_supply"]')).to_have_value("35")
    expect(page.locator("#findings")).to_have_text("No problems found.")
    page.get_by_role("button", name="Submit order").click()
    expect(page.get_by_role("alert")).to_contain_text("submitted.")
    assert Order.objects.get().prescription.days_supply == 35


def test_a_refused_submit_stays_next_to_the_warning_and_back_warns_of_the_same_order(
    live_server, page
):
    prescriber, patient = a_prescriber_and_patient()
    sign_in(page, live_server.url, prescriber.user.email)
    page.goto(f"{live_server.url}/patients/{patient.pk}/orders/new/")
    page.locator('[name="steps"]').fill("0.5 x 14, 1 x 14, 1.5 x 30")
    page.locator('[name="doses_per_day"]').fill("2")  # a split dose: a warning
    page.locator('[name="diagnosis_codes"]').fill("M79.7")
    expect(page.locator("#findings .alert-warning").first).to_contain_text("Doses per day:")

    page.get_by_role("button", name="Submit order").click()  # no tick

    refusal = page.locator("#acknowledge-refusal")
    expect(refusal).to_contain_text("Tick each warning to confirm you have reviewed it")
    page.wait_for_timeout(1500)  # the live check has run again by now: the refusal stays
    expect(page.locator("#findings .alert-warning").first).to_be_visible()
    expect(refusal).to_contain_text("Tick each warning to confirm you have reviewed it")
    assert Order.objects.count() == 0

    for box in page.locator('#acknowledgements input[name="acknowledge"]').all():
        box.check()
    page.get_by_role("button", name="Submit order").click()
    order = Order.objects.get()
    expect(page).to_have_url(f"{live_server.url}/orders/{order.pk}/")
    expect(page.locator("#order-lines")).to_contain_text(
        "Naltrexone HCl 0.5 mg capsule: 28 capsules"
    )

    # Back, and send the form again: whether the browser kept the page (the same form) or
    # loaded it again (a new form, filled in again), the prescriber is told that the same
    # order for this patient was just placed, and nothing new is ordered.
    page.go_back()
    page.get_by_role("button", name="Submit order").click()
    expect(
        page.get_by_text("An identical order for this patient was already placed")
    ).to_contain_text(order.number)
    assert Order.objects.count() == 1

    # A new form with the same order, filled in again: the warning needs a tick and a reason.
    page.goto(f"{live_server.url}/patients/{patient.pk}/orders/new/")
    page.locator('[name="steps"]').fill("0.5 x 14, 1 x 14, 1.5 x 30")
    page.locator('[name="doses_per_day"]').fill("2")
    page.locator('[name="diagnosis_codes"]').fill("M79.7")
    expect(page.locator("#findings")).to_contain_text(
        f"The patient's open orders: An identical order for this patient was already placed "
        f"({order.number}"
    )
    for box in page.locator('#acknowledgements input[name="acknowledge"]').all():
        box.check()
    page.get_by_role("button", name="Submit order").click()
    expect(page.locator("#acknowledge-refusal")).to_contain_text("Write the reason")
    assert Order.objects.count() == 1


def test_the_patient_form_warns_at_once_when_no_opioids_contradicts_the_list(live_server, page):
    prescriber, patient = a_prescriber_and_patient()
    sign_in(page, live_server.url, prescriber.user.email)
    page.goto(f"{live_server.url}/patients/{patient.pk}/edit/")
    note = page.locator("#opioid-contradiction")
    expect(note).to_be_hidden()

    page.locator('[name="current_medications"]').fill("Metformin 500 mg\nPercocet10/325 prn")

    expect(note).to_be_visible()
    expect(note).to_have_text(
        "The current medications name an opioid (Percocet10/325 prn: oxycodone), but the answer "
        'here is "No". Answer "Yes" if the patient takes it, or remove it from the list if they '
        "have stopped."
    )
    page.get_by_role("button", name="Save patient").click()  # the server refuses it too
    expect(page.locator("#error_1_id_takes_opioids, .invalid-feedback").first).to_contain_text(
        "name an opioid (Percocet10/325 prn: oxycodone)"
    )
    patient.refresh_from_db()
    assert patient.current_medications == ""

    page.get_by_label("Yes").check()
    expect(note).to_be_hidden()
    page.get_by_role("button", name="Save patient").click()
    expect(page.locator(".opioid-alert")).to_contain_text("Currently takes opioids.")
    saved = Patient.objects.get(pk=patient.pk)
    assert (saved.takes_opioids, saved.current_medications) == (
        True,
        "Metformin 500 mg\r\nPercocet10/325 prn",
    )


def test_demo_prescriber_orders_for_a_demo_patient(live_server, page, settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=io.StringIO())
    sign_in(page, live_server.url, "prescriber@demo.test", settings.DEMO_PASSWORD)
    page.get_by_role("link", name="Orders", exact=True).click()
    expect(page.locator("tbody tr")).to_have_count(3)  # the seeded orders of this clinic

    page.get_by_role("link", name="Patients", exact=True).click()
    page.get_by_role("link", name="Testpatient, Rowan").click()
    page.get_by_role("link", name="New LDN order").click()
    page.get_by_role("button", name="Build steps").click()
    page.locator('[name="diagnosis_codes"]').fill("M79.7")
    # The demo patient's first order, the same titration, is still open: duplicate therapy.
    expect(page.locator("#findings .alert-warning")).to_contain_text(
        "An identical order for this patient was already placed"
    )
    page.get_by_label("An identical order for this patient", exact=False).check()
    expect(page.locator('[name="reason"]')).to_be_visible()
    page.locator('[name="reason"]').fill("Second prescription for the other bottle size.")
    page.get_by_role("button", name="Submit order").click()

    expect(page.get_by_role("alert")).to_contain_text("submitted.")
    order = Order.objects.latest("pk")
    assert order.prescription.patient.last_name == "Testpatient"
    assert [int(line.quantity) for line in order.lines()] == [14, 14, 30]
    assert order.prescription.acknowledged_warnings[0]["reason"] == (
        "Second prescription for the other bottle size."
    )
