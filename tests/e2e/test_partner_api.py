"""In a real browser: a prescriber makes an API key for the clinic's EHR (shown once, the page
fits a phone and passes axe), the EHR checks a dose and orders with it, the draft waits for the
prescriber's signature in the portal; the API's documentation page (Swagger UI, served by the
portal itself) works under the Content-Security-Policy."""

import json

import pytest
from playwright.sync_api import Page, expect

from orders.models import Order, OrderStatus
from prescribers.models import ApiKey
from tests.e2e.test_ordering import a_prescriber_and_patient, sign_in
from tests.e2e.test_prescriber_pages_on_a_phone import fits_and_passes_axe
from tests.orders.test_api import ORDER

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_a_key_made_in_the_portal_orders_a_draft_the_prescriber_signs(live_server, page: Page):
    prescriber, patient = a_prescriber_and_patient()
    base = live_server.url
    sign_in(page, base, prescriber.user.email)
    page.get_by_role("link", name="API keys").click()
    expect(page.locator("h1")).to_have_text(f"API keys of {patient.clinic}")
    page.get_by_label("Name").fill("Clinic EHR")
    page.get_by_role("button", name="Make the key").click()
    raw = page.get_by_label("Key", exact=True).input_value()
    key = ApiKey.objects.get()
    assert raw.startswith(f"{key.prefix}.") and key.name == "Clinic EHR"
    fits_and_passes_axe(page, "the API keys page with a new key")

    # The clinic's system, with the key: a dose check, then an order (a draft).
    api = page.context.request
    headers = {"Authorization": f"Api-Key {raw}", "Content-Type": "application/json"}
    check = api.post(f"{base}/api/v1/dose-check/", headers=headers,
                     data=json.dumps({**ORDER, "patient_id": patient.pk}))  # fmt: skip
    assert check.status == 200 and check.json()["ok"] is True
    sent = api.post(f"{base}/api/v1/orders/", headers={**headers, "Idempotency-Key": "e2e-1"},
                    data=json.dumps({**ORDER, "patient_id": patient.pk}))  # fmt: skip
    assert sent.status == 201, sent.text()
    order = Order.objects.get()
    assert (sent.json()["number"], order.status) == (order.number, OrderStatus.DRAFT)

    # The prescriber signs it in the portal.
    page.goto(f"{base}/orders/to-sign/")
    expect(page.locator("body")).to_contain_text(order.number)

    # Revoked: the key stops working at once.
    page.goto(f"{base}/clinic/api-keys/")
    page.get_by_role("button", name="Revoke Clinic EHR").click()
    expect(page.locator("#api-keys")).to_contain_text("Revoked")
    assert api.get(f"{base}/api/v1/orders/", headers=headers).status == 401


def test_the_api_documentation_works_under_the_content_security_policy(live_server, page: Page):
    page.goto(f"{live_server.url}/api/v1/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("partner API")
    expect(page.get_by_text("/api/v1/orders/").first).to_be_visible()
    page.get_by_role("button", name="Authorize").first.click()
    expect(page.locator(".swagger-ui .modal-ux")).to_contain_text("ApiKey")
