"""In a real browser: a staff member without an authenticator app signs in, sets one up from the
QR code page (a wrong code first), lands in the admin, and is asked for a code at the next
sign-in."""

from base64 import b32decode

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from tests.factories import TEST_PASSWORD, StaffFactory
from tests.signing_in import totp_code

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_a_technician_sets_up_the_app_at_first_sign_in(live_server, page):
    technician = StaffFactory(group="Technician")
    base = live_server.url

    page.goto(f"{base}/accounts/login/")
    page.locator('[name="username"]').fill(technician.email)
    page.locator('[name="password"]').fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/admin/otp/enrol/?next=%2Fadmin%2F")
    expect(page.get_by_role("heading", name="Set up your authenticator app")).to_be_visible()
    expect(page.locator("#totp-qr-code svg")).to_be_visible()
    # What the person types into the app: the key as the page shows it.
    key = b32decode(page.locator("#totp-secret").inner_text().replace(" ", ""))

    page.locator('[name="code"]').fill(f"{(totp(key) + 1) % 1_000_000:06d}")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator(".errorlist")).to_have_text(
        "This code is not correct. Wait 1 second before the next try."
    )
    assert not TOTPDevice.objects.get(user=technician).confirmed

    page.wait_for_timeout(1100)  # the throttling wait after a wrong code
    page.locator('[name="code"]').fill(f"{totp(key):06d}")
    page.get_by_role("button", name="Confirm").click()
    # The recovery codes, shown once, for a lost phone.
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    page.get_by_role("link", name="I have saved them").click()
    expect(page).to_have_url(f"{base}/admin/")
    expect(page.get_by_role("heading", name="Pharmacy operations")).to_be_visible()
    device = TOTPDevice.objects.get(user=technician)
    assert device.confirmed and device.bin_key == key

    # Signed out and in again: the code is asked for, the key is not shown again.
    page.locator("#logout-form button").click()
    page.goto(f"{base}/admin/")
    page.locator('[name="username"]').fill(technician.email)
    page.locator('[name="password"]').fill(TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/admin/otp/verify/?next=%2Fadmin%2F")
    expect(page.locator("#totp-secret")).to_have_count(0)
    page.locator('[name="code"]').fill(totp_code(device))
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(f"{base}/admin/")
