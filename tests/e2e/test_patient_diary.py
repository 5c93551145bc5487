"""In a real browser: a prescriber invites a patient; the patient opens the emailed link on a
phone, confirms their date of birth, keeps a diary and asks for a refill; the prescriber sees
the diary's chart (its points checked against the entries) and signs the refill the patient asked
for. Every patient page fits a phone and passes axe-core."""

import datetime
import re
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import Page, expect

from orders.models import DiaryEntry, Formulation, Order, OrderKind, OrderStatus
from pharmacy.dispensing import dispense_allocate
from pharmacy.models import Dispense
from tests.e2e.test_ordering import a_prescriber_and_patient, sign_in
from tests.e2e.test_prescriber_pages_on_a_phone import fits_and_passes_axe
from tests.factories import (
    TEST_PASSWORD,
    TWO_STRENGTHS,
    BatchFactory,
    FormulationVersionFactory,
    StaffFactory,
    submit_order,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PATIENT_EMAIL = "quinn.browser@mail.test"
# Three days of the diary, newest last: (days ago, score, sleep, side effects ticked).
ENTRIES = [(2, 7, 4, ["Vivid dreams"]), (1, 6, 5, ["Vivid dreams", "Headache"]), (0, 5, 7, [])]


def dispensed_weeks_ago(prescriber, patient) -> Order:
    """1.5 mg for 14 days then 3 mg for 30, dispensed 40 days ago: the 3 mg bottle is in use
    and the refill is due (from day 36)."""
    order = submit_order(prescriber, patient, TWO_STRENGTHS)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.VERIFIED)
    today = timezone.localdate()
    for strength in ("1.5", "3"):
        formulation = Formulation.objects.get(dosage_form="capsule", strength_mg=Decimal(strength))
        BatchFactory(
            formulation_version=FormulationVersionFactory(formulation=formulation),
            compounded_on=today - datetime.timedelta(days=45),
            beyond_use_date=today + datetime.timedelta(days=120),
        )
    dispense_allocate(order=order, actor=StaffFactory(group="Technician"))
    Dispense.objects.filter(order=order).update(
        dispensed_at=timezone.now() - datetime.timedelta(days=40)
    )
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.SHIPPED)
    return order


def test_a_patient_keeps_a_diary_asks_for_a_refill_and_the_prescriber_doses_from_it(
    live_server, settings, page: Page, new_context
):
    settings.PORTAL_BASE_URL = live_server.url  # the emailed link points at this server
    base = live_server.url
    prescriber, patient = a_prescriber_and_patient(conditions=["M79.7"])
    first_fill = dispensed_weeks_ago(prescriber, patient)

    # 1. The prescriber invites the patient from the patient's page.
    sign_in(page, base, prescriber.user.email)
    page.goto(f"{base}/patients/{patient.pk}/")
    page.get_by_role("link", name="Invite the patient").click()
    page.get_by_label("Patient's email").fill(PATIENT_EMAIL)
    page.get_by_label("Diary reminders").select_option("daily")
    mail.outbox.clear()
    page.get_by_role("button", name="Send the invitation").click()
    expect(page.locator("#access-status")).to_contain_text("not yet accepted")
    [invitation] = mail.outbox
    assert invitation.to == [PATIENT_EMAIL]
    assert patient.last_name not in invitation.body
    link = re.search(re.escape(base) + r"/my/invitation/\?sesame=\S+", invitation.body).group()

    # 2. The patient, on a phone, opens the link and confirms their date of birth.
    phone = new_context().new_page()
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(link)
    fits_and_passes_axe(phone, "the invitation's page")
    phone.get_by_label("Your date of birth").fill("1990-01-01")
    phone.get_by_label("I have read and accept the terms of use").check()
    phone.get_by_role("button", name="Continue").click()
    expect(phone.locator(".invalid-feedback")).to_contain_text("not the date of birth")
    phone.get_by_label("Your date of birth").fill(patient.date_of_birth.isoformat())
    phone.get_by_label("I have read and accept the terms of use").check()
    phone.get_by_role("button", name="Continue").click()
    expect(phone.get_by_role("heading", level=1)).to_have_text("My treatment")
    expect(phone.locator(".bottle-now")).to_have_count(1)
    expect(phone.locator(".bottle", has=phone.locator(".bottle-now"))).to_contain_text(
        "3 mg capsule"
    )
    expect(phone.locator("#pharmacy-phone")).to_have_text(settings.PHARMACY_PHONE)
    fits_and_passes_axe(phone, "the patient's home page")

    # 3. Three diary entries: two days ago, yesterday and today.
    today = timezone.localdate()
    for days_ago, score, sleep, effects in ENTRIES:
        phone.goto(f"{base}/my/diary/new/")
        phone.get_by_label("Day").fill((today - datetime.timedelta(days=days_ago)).isoformat())
        phone.locator("#id_score").get_by_text(str(score), exact=True).click()
        phone.locator("#id_sleep_quality").get_by_text(str(sleep), exact=True).click()
        for effect in effects:
            phone.get_by_label(effect).check()
        if days_ago == 0:
            fits_and_passes_axe(phone, "the diary's form")
        phone.get_by_role("button", name="Save", exact=True).click()
        expect(phone.locator(".alert-success")).to_contain_text("Diary entry saved")
    assert DiaryEntry.objects.filter(patient=patient).count() == 3

    # 4. The patient asks for a refill: a draft for the prescriber, never an order by itself.
    phone.get_by_role("button", name="Ask for a refill").click()
    expect(phone.locator("#refill-status")).to_contain_text("A refill is on its way")
    fits_and_passes_axe(phone, "the patient's home page after asking for a refill")
    refill = Order.objects.get(kind=OrderKind.REFILL)
    assert (refill.status, refill.signer, refill.prescription_id) == (
        OrderStatus.DRAFT, prescriber, first_fill.prescription_id,
    )  # fmt: skip

    # 5. The prescriber sees the chart: one point per entry, at its day and score.
    page.goto(f"{base}/patients/{patient.pk}/")
    points = page.locator("svg circle[data-day]")
    expect(points).to_have_count(3)
    drawn = sorted(
        (points.nth(i).get_attribute("data-day"), int(points.nth(i).get_attribute("data-score")))
        for i in range(3)
    )
    assert drawn == sorted(
        ((today - datetime.timedelta(days=days_ago)).isoformat(), score)
        for days_ago, score, _, _ in ENTRIES
    )

    expect(page.locator("#access-status")).to_contain_text("Active since")
    fits_and_passes_axe(page, "the patient's page with the diary")

    # 6. ... and signs the refill the patient asked for.
    page.goto(f"{base}/orders/to-sign/")
    page.get_by_label(f"Sign {refill.number}").check()
    page.get_by_label("Your password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign the chosen orders").click()
    expect(page.locator("#nothing-to-sign")).to_be_visible()
    refill.refresh_from_db()
    assert refill.status == OrderStatus.SUBMITTED
