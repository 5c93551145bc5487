"""In a real browser, under the enforced Content-Security-Policy: Chromium refuses inline code
(and the watch in conftest.py sees it), and the admin's own JavaScript (select all, the
autocomplete, the add-another popup, the calendar) and the order form's live dose check work
without a single violation."""

import datetime
import io
import re

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from orders.models import Ingredient, Order
from pharmacy.models import IngredientLot
from tests.e2e.signing_in import admin_sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SUPERUSER = "admin@demo.test"
PRESCRIBER = "prescriber@demo.test"


def test_the_browser_refuses_inline_code_and_the_watch_reports_it(live_server, page, csp_watch):
    page.goto(f"{live_server.url}/accounts/login/")
    page.evaluate(
        """() => {
        document.body.insertAdjacentHTML("beforeend", '<p id="probe" style="color: red">x</p>');
        const script = document.createElement("script");
        script.textContent = "window.inlineScriptRan = true";
        document.body.append(script);
    }"""
    )
    # Refused: the style attribute is not applied, the inline script does not run.
    assert page.locator("#probe").evaluate("p => getComputedStyle(p).color") != "rgb(255, 0, 0)"
    assert page.evaluate("window.inlineScriptRan") is None

    violations = csp_watch.collect()
    seen = sorted(
        (source, directive)
        for violation in violations
        for source, directive in re.findall(
            r"^(console|securitypolicyviolation).*?(style-src-attr|script-src-elem|"
            r"style-src|script-src)",
            violation,
        )
    )
    assert seen == [
        ("console", "script-src"),
        ("console", "style-src"),
        ("securitypolicyviolation", "script-src-elem"),
        ("securitypolicyviolation", "style-src-attr"),
    ], violations
    violations.clear()  # provoked on purpose: this test passes


def test_admin_javascript_works_under_the_policy(live_server, settings, page):
    call_command("seed_demo", force=True, stdout=io.StringIO())
    base = live_server.url
    admin_sign_in(page, base, SUPERUSER, settings.DEMO_PASSWORD)

    # The changelist's "select all" and its counter (actions.js).
    page.goto(f"{base}/admin/orders/order/")
    count = Order.objects.count()
    expect(page.locator("input.action-select")).to_have_count(count)
    page.locator("#action-toggle").check()
    for checkbox in page.locator("input.action-select").all():
        expect(checkbox).to_be_checked()
    expect(page.locator(".action-counter")).to_have_text(f"{count} of {count} selected")

    # A change form: the ingredient chosen through the autocomplete (select2, fetching from the
    # admin), then a new one added in the add-another popup (related-object lookups).
    page.goto(f"{base}/admin/pharmacy/ingredientlot/add/")
    page.locator('[aria-labelledby="select2-id_ingredient-container"]').click()
    page.locator(".select2-search__field").fill("Naltrexone")
    page.locator(".select2-results__option", has_text="Naltrexone").click()
    naltrexone = Ingredient.objects.get(name__startswith="Naltrexone")
    expect(page.locator("#id_ingredient")).to_have_value(str(naltrexone.pk))
    with page.expect_popup() as opened:
        page.locator("#add_id_ingredient").click()
    popup = opened.value
    popup.locator("#id_name").fill("Lactose monohydrate")
    popup.locator("#id_kind").select_option("excipient")
    popup.locator("#id_unit").fill("mg")
    # Listening before the click: the popup may save, answer and close before click() returns.
    with popup.expect_event("close"):
        popup.get_by_role("button", name="Save", exact=True).click()
    lactose = Ingredient.objects.get(name="Lactose monohydrate")
    expect(page.locator("#id_ingredient")).to_have_value(str(lactose.pk))
    expect(page.locator("#select2-id_ingredient-container")).to_have_text("Lactose monohydrate")

    # The calendar of a date field (calendar.js, DateTimeShortcuts.js): the 15th, next month.
    page.locator("#calendarlink0").click()
    page.locator("#calendarbox0 .calendarnav-next").click()
    page.locator("#calendarin0").get_by_role("link", name="15", exact=True).click()
    next_month = (timezone.localdate().replace(day=1) + datetime.timedelta(days=31)).replace(day=15)
    expect(page.locator("#id_expires_on")).to_have_value(next_month.isoformat())

    page.locator("#id_manufacturer").fill("Example Excipients")
    page.locator("#id_lot_number").fill("LAC-0042")
    page.locator("#id_quantity_received").fill("2500")
    page.locator("#id_certificate_of_analysis").fill("COA-LAC-0042")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("ul.messagelist")).to_contain_text("was added successfully")
    lot = IngredientLot.objects.get(lot_number="LAC-0042")
    assert (lot.ingredient, lot.expires_on, lot.status) == (lactose, next_month, "quarantine")

    # The lot's page and its field history (the portal's copy of the history list).
    page.goto(f"{base}/admin/pharmacy/ingredientlot/{lot.pk}/history/")
    expect(page.locator("#change-history tbody tr")).to_have_count(1)


def test_order_form_live_dose_check_works_under_the_policy(live_server, settings, page):
    call_command("seed_demo", force=True, stdout=io.StringIO())
    page.goto(f"{live_server.url}/accounts/login/")
    page.locator('[name="username"]').fill(PRESCRIBER)
    page.locator('[name="password"]').fill(settings.DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Patients", exact=True).click()
    page.get_by_role("link", name="Madeup, Riley").click()  # their one order was cancelled
    page.get_by_role("link", name="New LDN order").click()

    page.get_by_role("button", name="Build steps").click()
    expect(page.locator("#steps-preview tbody tr")).to_have_count(3)
    expect(page.locator('[name="quantity"]')).to_have_value("58")
    page.locator('[name="diagnosis_codes"]').fill("M79.7")
    expect(page.locator("#findings")).to_have_text("No problems found.")
    page.locator('[name="dosage_form"]').select_option("oral_liquid")
    page.locator('[name="steps"]').fill("1.5 x 7, 3 x 7, 4.5 x 7, 5 x 14")
    expect(page.locator("#findings .alert-warning")).to_contain_text(
        "Daily dose 5 mg in step 4 is above the usual maximum"
    )
    page.get_by_label("Daily dose 5 mg in step 4 is above the usual maximum", exact=False).check()
    page.get_by_role("button", name="Submit order").click()
    expect(page.get_by_role("alert")).to_contain_text("submitted.")
