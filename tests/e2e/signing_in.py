"""Staff sign in to the admin in the browser: password, then the code of their authenticator
app, typed on the second-factor page and computed from the device's key as the app would."""

from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from tests.signing_in import totp_code


def admin_sign_in(page: Page, base_url: str, email: str, password: str) -> None:
    page.goto(f"{base_url}/admin/")
    page.locator('[name="username"]').fill(email)
    page.locator('[name="password"]').fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base_url}/admin/otp/verify/?next=%2Fadmin%2F")
    expect(page.locator("#content")).to_contain_text("authenticator app shows for")
    device = TOTPDevice.objects.get(user__email=email, confirmed=True)
    page.locator('[name="code"]').fill(totp_code(device))
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(f"{base_url}/admin/")
