"""Every page of the portal, as each person who uses it sees it, in Chromium at 390 x 844 (and
360 px): no sideways scrolling, and no WCAG 2.1 AA violation under axe-core (served locally, the
Content-Security-Policy enforced). The list of pages is checked against the URL resolver, so a
page added to the portal is either visited here or named as one without a page of its own."""

import datetime

import pytest
from django.urls import get_resolver
from playwright.sync_api import Page, expect
from sesame.utils import get_query_string

from core.second_factor import recovery_codes_issue
from orders.models import DiaryEntry, Order, OrderStatus
from orders.patient_access import INVITATION_SCOPE, patient_access_invite
from orders.protocols import protocol_save
from orders.services import order_start_review, order_submit
from pharmacy.fulfilment import order_hold
from pharmacy.models import WebhookAttempt, WebhookDelivery, WebhookEventType
from pharmacy.recalls import batch_recall
from pharmacy.webhooks import endpoint_create, webhook_events_publish
from prescribers.models import MembershipRole
from tests.e2e.test_ordering import sign_in, sign_out
from tests.e2e.test_prescriber_pages_on_a_phone import fits_and_passes_axe
from tests.factories import (
    TEST_PASSWORD,
    TITRATION,
    MembershipFactory,
    PatientFactory,
    PrescriberFactory,
    StaffFactory,
    TOTPDeviceFactory,
    clinic_of,
    submit_order,
)
from tests.orders.test_inbox import filled

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

# Portal URLs without a page of their own: answers to a form's POST (they redirect to a page
# visited here), JSON for the order form's checks, a PDF, the health check and metrics.
NOT_PAGES = {
    "logout", "clinic_switch", "order_cancel", "order_answer", "membership_end",
    "membership_accept", "dose_check", "protocol_delete", "favicon",
    "medication_screen", "order_label", "health", "health_detail", "metrics",
    "password_reset_confirm", "account_activate",
    "password_change_done", "password_reset_complete", "webhook_endpoint_rotate",
    "webhook_endpoint_delete", "webhook_delivery_resend", "api_key_revoke",
    "patient_refill", "patient_revoke",
    # The partner API's documents: JSON, and Swagger UI's page (tests/e2e/test_partner_api.py).
    "api_problem", "api_schema", "api_docs",
}  # fmt: skip


@pytest.mark.slow
def test_every_portal_page_fits_a_phone_and_passes_axe(live_server, page: Page):
    prescriber = PrescriberFactory(first_name="Rhea", last_name="Signer")
    clinic = clinic_of(prescriber)
    # The clinic's system hears of every order below (a public address: nothing is sent).
    endpoint = endpoint_create(
        actor=prescriber.user, clinic_id=clinic.pk, url="https://93.184.215.14/clinic-ehr/hooks",
        events=list(WebhookEventType.values), description="Clinic EHR",
    )  # fmt: skip
    nurse = MembershipFactory(clinic=clinic, role=MembershipRole.STAFF).user
    patient = PatientFactory(clinic=clinic, date_of_birth=datetime.date(1970, 5, 5))
    submitted = submit_order(prescriber, patient, TITRATION)
    other = PatientFactory(
        clinic=clinic, last_name="Second", date_of_birth=datetime.date(1975, 1, 1)
    )
    pharmacist = StaffFactory(group="Pharmacist")
    second = submit_order(prescriber, other, TITRATION)
    reviewed = order_start_review(order=second, actor=pharmacist)
    held = order_hold(order=reviewed, actor=pharmacist, question="Has the patient stopped opioids?")
    third = PatientFactory(
        clinic=clinic, last_name="Third", date_of_birth=datetime.date(1980, 2, 2)
    )
    draft = order_submit(
        actor=nurse, patient=third, regimen=TITRATION, diagnosis_codes=["M79.7"],
        reason_for_compounding="Strength not available commercially", ship_to="clinic",
        needed_by=None, acknowledged=[], idempotency_key=None, signer=prescriber,
    )  # fmt: skip
    assert draft.status == OrderStatus.DRAFT
    # A first fill dispensed 25 days ago: its refill is due, and its batch is recalled.
    shipped = filled(prescriber, "Fourth", days_ago=25)
    recall = batch_recall(batch=shipped.dispenses.get().batch, actor=pharmacist,
                          reason="Capsule weight out of range.")  # fmt: skip
    notice = recall.notices.get()
    protocol = protocol_save(
        actor=prescriber.user, clinic_id=clinic.pk, name="Standard 1.5 to 4.5 mg",
        dosage_form="capsule", concentration_mg_per_ml=None, steps="1.5 x 14, 3 x 14, 4.5 x 30",
        doses_per_day=1, time_of_day="bedtime", days_supply=58, refills=2,
    )  # fmt: skip
    webhook_events_publish()
    failed = endpoint.deliveries.order_by("pk").first()
    WebhookDelivery.objects.filter(pk=failed.pk).update(
        status="failed", attempts=2, last_error="HTTP 500"
    )
    WebhookAttempt.objects.bulk_create(
        WebhookAttempt(delivery=failed, attempted_at=failed.created_at, response_status=status,
                       error=error, duration_ms=41)
        for status, error in [(500, "HTTP 500"), (None, "TimeoutError: timed out")]
    )  # fmt: skip
    base = live_server.url
    visited: set[str] = set()

    def check(name: str, path: str, what: str = "") -> None:
        page.set_viewport_size({"width": 390, "height": 844})
        response = page.goto(base + path)
        assert response is not None and response.status < 500, (name, response)
        expect(page.locator("main")).to_be_visible()
        fits_and_passes_axe(page, what or name)
        visited.add(name)

    # Before signing in.
    for name, path in [
        ("login", "/accounts/login/"), ("password_reset", "/accounts/password_reset/"),
        ("password_reset_done", "/accounts/password_reset/done/"),
        ("prescriber_apply", "/apply/"), ("prescriber_apply_done", "/apply/received/"),
        ("patient_sign_in", "/my/sign-in/"), ("patient_terms", "/my/terms/"),
        ("patient_link", "/my/link/?sesame=expired"),
    ]:  # fmt: skip
        check(name, path)
    page.goto(base + "/apply/")
    page.locator("form button[type=submit]").last.click()  # every field empty: refused
    expect(page.locator(".invalid-feedback").first).to_be_visible()
    fits_and_passes_axe(page, "application, refused")

    # The prescriber.
    sign_in(page, base, prescriber.user.email)
    for name, path in [
        ("home", "/"), ("patient_list", "/patients/"), ("patient_create", "/patients/new/"),
        ("patient_detail", f"/patients/{patient.pk}/"),
        ("patient_update", f"/patients/{patient.pk}/edit/"),
        ("order_create", f"/patients/{patient.pk}/orders/new/"),
        ("order_list", "/orders/"), ("order_detail", f"/orders/{submitted.pk}/"),
        ("order_amend", f"/orders/{held.pk}/amend/"),
        ("prescription_refill", f"/prescriptions/{submitted.prescription_id}/refill/"),
        ("order_sign", "/orders/to-sign/"), ("clinic_team", "/clinic/team/"),
        ("recall_notice_list", "/recalls/"), ("protocol_list", "/clinic/protocols/"),
        ("protocol_update", f"/clinic/protocols/{protocol.pk}/"),
        ("recall_notice_detail", f"/recalls/{notice.pk}/"),
        ("webhook_endpoint_list", "/clinic/webhooks/"),
        ("webhook_endpoint_create", "/clinic/webhooks/new/"),
        ("webhook_endpoint_detail", f"/clinic/webhooks/{endpoint.pk}/"),
        ("webhook_endpoint_update", f"/clinic/webhooks/{endpoint.pk}/edit/"),
        ("api_key_list", "/clinic/api-keys/"),
        ("patient_invite", f"/patients/{patient.pk}/access/"),
        ("password_change", "/accounts/password_change/"),
        ("security", "/accounts/security/"), ("security_app", "/accounts/security/app/"),
    ]:  # fmt: skip
        check(name, path)
    check("order_detail", f"/orders/{held.pk}/", "order on hold, with the question")
    check("order_detail", f"/orders/{draft.pk}/", "draft awaiting the signature")
    check("order_list", "/orders/?status=draft&q=Third", "order list, filtered")
    check("patient_list", "/patients/?q=nobody-matches", "patient list, nothing found")
    # The dashboard leads with the recall, then the refill due; confirming clears the recall.
    page.goto(base + "/")
    expect(page.locator("#recall-notices")).to_contain_text("Recall of batch")
    expect(page.locator("#refills-due")).to_contain_text("Fourth")
    page.locator("#recall-notices a", has_text="Recall of batch").click()
    expect(page.locator("#recalled-dispenses")).to_contain_text(shipped.number)
    page.get_by_role("button", name="Our patients have been told").click()
    expect(page.locator("#recall-confirmation")).to_contain_text(prescriber.user.get_full_name())
    fits_and_passes_axe(page, "recall notice, confirmed")
    page.goto(base + "/")
    expect(page.locator("#refills-due")).to_be_visible()
    expect(page.locator("#recall-notices")).to_have_count(0)
    check("404", f"/orders/{Order.objects.order_by('-pk').first().pk + 1000}/", "not found")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    page.goto(base + "/clinic/team/")
    page.get_by_role("button", name="Send the invitation").click()  # empty: refused
    expect(page.locator(".invalid-feedback").first).to_be_visible()
    fits_and_passes_axe(page, "team page, refused invitation")
    sign_out(page, base, menu=True)

    # The clinic's nurse, who turned on an authenticator app: its code after the password (the
    # recovery codes' page, as shown once, too), their dashboard, order form and the pages a
    # nurse may not open.
    TOTPDeviceFactory(user=nurse)
    codes = recovery_codes_issue(actor=nurse)
    sign_in(page, base, nurse.email)
    expect(page).to_have_url(f"{base}/accounts/verify/?next=%2F")
    fits_and_passes_axe(page, "second factor")
    visited.add("second_factor_verify")
    page.get_by_label("Code from your authenticator app, or a recovery code").fill(codes[0])
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(".alert-warning").first).to_contain_text("recovery code; 9 left")
    page.goto(base + "/accounts/security/")
    page.get_by_label("Your password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Show new recovery codes").click()
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    fits_and_passes_axe(page, "new recovery codes")

    check("home", "/", "the nurse's dashboard")
    expect(page.locator("main")).not_to_contain_text("Awaiting your signature")
    check("order_create", f"/patients/{patient.pk}/orders/new/", "the nurse's order form")
    check("order_create", f"/patients/{patient.pk}/orders/new/?protocol={protocol.pk}",
          "the nurse's order form, from a protocol")  # fmt: skip
    check("protocol_list", "/clinic/protocols/", "the protocols, as the nurse reads them")
    check("403", "/orders/to-sign/", "forbidden")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "This page is not available to your account"
    )

    sign_out(page, base, menu=True)

    # The patient of the dispensed fill, invited: the invitation's page, then their own pages.
    mine = shipped.prescription.patient
    access = patient_access_invite(patient=mine, email="fourth@mail.test", actor=nurse)
    check("patient_invitation",
          f"/my/invitation/{get_query_string(access.user, INVITATION_SCOPE)}")  # fmt: skip
    page.get_by_label("Your date of birth").fill(mine.date_of_birth.isoformat())
    page.get_by_label("I have read and accept the terms of use").check()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My treatment")
    for name, path in [
        ("patient_home", "/my/"), ("diary_entry_create", "/my/diary/new/"),
        ("patient_settings", "/my/settings/"),
    ]:  # fmt: skip
        check(name, path)
    page.goto(base + "/my/diary/new/")
    page.locator("#id_score").get_by_text("4", exact=True).click()
    page.locator("#id_sleep_quality").get_by_text("6", exact=True).click()
    page.get_by_label("Other", exact=True).check()
    page.get_by_role("button", name="Save", exact=True).click()  # which other effect? refused
    expect(page.locator(".invalid-feedback").first).to_contain_text("other side effect")
    fits_and_passes_axe(page, "diary entry, refused")
    page.get_by_label("Other side effect").fill("dry mouth")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".alert-success")).to_contain_text("Diary entry saved")
    entry = DiaryEntry.objects.get(patient=mine)
    check("diary_entry_update", f"/my/diary/{entry.pk}/")

    named = {name for name in get_resolver().reverse_dict if isinstance(name, str)}
    # The partner API's routes answer keys, not people (tests/test_api_access_matrix.py).
    portal = {name for name in named if not name.startswith(("admin", "api-", "fhir-"))}
    assert portal - NOT_PAGES <= visited, sorted(portal - NOT_PAGES - visited)
