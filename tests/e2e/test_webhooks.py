"""In a real browser, on a phone: a prescriber adds a webhook endpoint for the clinic's system
(an address inside a network is refused on its field first), copies its secret from the one page
that shows it, and finds it shown no more; the pages fit 360 px and pass axe-core."""

import pytest
from playwright.sync_api import Page, expect

from pharmacy.models import WebhookEndpoint
from tests.e2e.test_ordering import a_prescriber_and_patient, sign_in
from tests.e2e.test_prescriber_pages_on_a_phone import fits_and_passes_axe

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_a_prescriber_adds_an_endpoint_and_sees_its_secret_once(live_server, page: Page, settings):
    settings.WEBHOOK_ALLOWED_PRIVATE_HOSTS = frozenset()
    prescriber, _ = a_prescriber_and_patient()
    base = live_server.url
    page.set_viewport_size({"width": 360, "height": 780})
    sign_in(page, base, prescriber.user.email)
    page.get_by_role("button", name="Menu").click()
    page.get_by_role("link", name="Webhooks").click()
    expect(page.locator("#webhook-endpoints")).to_contain_text("No endpoints yet.")
    fits_and_passes_axe(page, "webhooks, none yet")
    page.get_by_role("link", name="Add an endpoint").click()

    form = page.locator("#webhook-endpoint-form")
    form.get_by_label("URL").fill("https://10.0.0.8/hooks")
    form.get_by_label("Recall notice").uncheck()
    form.get_by_role("button", name="Add the endpoint").click()
    expect(form.locator(".invalid-feedback")).to_contain_text("private or local address")
    fits_and_passes_axe(page, "webhook endpoint form, refused")
    assert not WebhookEndpoint.objects.exists()

    form.get_by_label("URL").fill("https://93.184.215.14/clinic-ehr/hooks")
    form.get_by_label("Description").fill("Clinic EHR")
    form.get_by_role("button", name="Add the endpoint").click()

    endpoint = WebhookEndpoint.objects.get()
    expect(page).to_have_url(f"{base}/clinic/webhooks/{endpoint.pk}/")
    expect(page.locator("#webhook-secret")).to_have_text(endpoint.secret)
    assert endpoint.events == [
        "order.status_changed",
        "order.label_ready",
        "order.on_hold",
        "order.shipped",
    ]
    fits_and_passes_axe(page, "webhook endpoint, its secret shown once")

    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text(endpoint.url)
    expect(page.locator("#webhook-secret")).to_have_count(0)
    assert endpoint.secret not in page.content()
    expect(page.locator("#webhook-deliveries")).to_contain_text("Nothing sent to this endpoint")
    fits_and_passes_axe(page, "webhook endpoint")

    page.get_by_role("link", name="All webhooks").click()
    expect(page.locator("#webhook-endpoints")).to_contain_text("Clinic EHR")
    fits_and_passes_axe(page, "webhooks, one endpoint")
