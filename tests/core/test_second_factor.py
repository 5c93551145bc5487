"""Staff pass a second factor (a code from an authenticator app, TOTP) before any admin page but
sign-in, sign-out and the second-factor pages; prescribers are never asked."""

import datetime
import re
from base64 import b32encode
from urllib.parse import urlencode

import pypdfium2
import pytest
import zxingcpp
from django.contrib.auth.views import redirect_to_login
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice
from weasyprint import HTML

from core.auth import PortalBackend
from core.second_factor import TOTP_DEVICE_PK
from orders.models import OrderEvent, OrderStatus
from tests.factories import TEST_PASSWORD, TOTPDeviceFactory
from tests.orders.test_workflow import submitted_order
from tests.signing_in import sign_in, totp_code, verified_staff_login, wrong_code

pytestmark = pytest.mark.django_db

INDEX = reverse("admin:index")
VERIFY = reverse("admin:otp_verify")
ENROL = reverse("admin:otp_enrol")
NOT_CORRECT = "This code is not correct."


def to(page: str, next_url: str) -> str:
    return f"{page}?{urlencode({'next': next_url})}"


def where_sent(client, url: str, *, post: bool = False) -> str:
    """Where an admin page sends the client: to the admin's sign-in page (has_permission said
    no), which sends a signed-in staff member on; returns that second address."""
    response = client.post(url, {}) if post else client.get(url)
    assert response.status_code == 302, url
    assert response["Location"] == redirect_to_login(url, reverse("admin:login")).url, url
    onward = client.get(response["Location"])
    assert onward.status_code == 302, url
    return onward["Location"]


def password_login(client, user) -> None:
    """Signs in with the password only, as the sign-in form does."""
    assert sign_in(client, user.email, TEST_PASSWORD)


def verified(client) -> bool:
    return client.get(INDEX).status_code == 200


def code_errors(response) -> list[str]:
    return response.context["form"].errors.get("code", [])


def pass_the_wait(device: TOTPDevice) -> None:
    """As if the throttling wait after the last wrong code were over."""
    device.refresh_from_db()
    if device.throttling_failure_timestamp is not None:
        earlier = device.throttling_failure_timestamp - datetime.timedelta(hours=1)
        TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_timestamp=earlier)


@pytest.fixture
def order(prescriber):
    return submitted_order(prescriber)


def admin_urls(order) -> list[str]:
    """Pages of the site, of model admins, and custom admin views (the portal's and
    django-otp's), and a URL the admin does not know."""
    return [
        INDEX,
        reverse("admin:orders_order_changelist"),
        reverse("admin:orders_order_change", args=[order.pk]),
        reverse("admin:orders_order_move", args=[order.pk, OrderStatus.IN_REVIEW]),
        reverse("admin:orders_order_dispense", args=[order.pk]),
        reverse("admin:orders_order_rerender_label", args=[order.pk]),
        reverse("admin:core_user_changelist"),
        reverse("admin:otp_totp_totpdevice_changelist"),
        reverse("admin:otp_totp_totpdevice_config", args=[1]),
        reverse("admin:password_change"),
        reverse("admin:app_list", args=["orders"]),
        reverse("admin:autocomplete"),
        "/admin/no/such/page/",
    ]


def test_staff_with_a_device_are_sent_to_verify_from_every_admin_page(client, pharmacist, order):
    TOTPDeviceFactory(user=pharmacist)
    password_login(client, pharmacist)
    for url in admin_urls(order):
        assert where_sent(client, url) == to(VERIFY, url)


def test_staff_without_a_device_are_sent_to_enrol_from_every_admin_page(client, technician, order):
    password_login(client, technician)
    for url in admin_urls(order):
        assert where_sent(client, url) == to(ENROL, url)


def test_an_unverified_pharmacist_cannot_move_an_order(client, pharmacist, order):
    TOTPDeviceFactory(user=pharmacist)
    password_login(client, pharmacist)
    url = reverse("admin:orders_order_move", args=[order.pk, OrderStatus.IN_REVIEW])
    assert where_sent(client, url, post=True) == to(VERIFY, url)
    order.refresh_from_db()
    assert order.status == OrderStatus.SUBMITTED
    assert list(OrderEvent.objects.filter(order=order).values_list("to_status", flat=True)) == [
        OrderStatus.SUBMITTED
    ]


def test_the_admin_sign_in_page_sends_an_unverified_staff_member_on(client, pharmacist):
    TOTPDeviceFactory(user=pharmacist)
    password_login(client, pharmacist)
    response = client.get(reverse("admin:login") + "?next=/admin/orders/order/")
    assert response["Location"] == to(VERIFY, "/admin/orders/order/")


def test_password_sign_in_then_a_right_code_opens_the_admin(client, pharmacist):
    device = TOTPDeviceFactory(user=pharmacist)
    response = client.post(
        reverse("admin:login") + "?next=/admin/orders/order/",
        {"username": pharmacist.email, "password": TEST_PASSWORD, "next": "/admin/orders/order/"},
    )
    assert response["Location"] == "/admin/orders/order/"
    assert where_sent(client, "/admin/orders/order/") == to(VERIFY, "/admin/orders/order/")
    page = client.get(to(VERIFY, "/admin/orders/order/"))
    assert page.status_code == 200
    assert 'autocomplete="one-time-code"' in page.content.decode()
    session_before = client.session.session_key

    response = client.post(VERIFY, {"code": totp_code(device), "next": "/admin/orders/order/"})

    assert (response.status_code, response["Location"]) == (302, "/admin/orders/order/")
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert client.session.session_key != session_before  # a new key for the verified session
    assert client.get("/admin/orders/order/").status_code == 200
    device.refresh_from_db()
    assert device.throttling_failure_count == 0
    assert device.last_used_at is not None


def test_a_wrong_code_does_not_verify(client, pharmacist):
    device = TOTPDeviceFactory(user=pharmacist)
    password_login(client, pharmacist)

    response = client.post(VERIFY, {"code": wrong_code(device), "next": INDEX})

    assert response.status_code == 200
    assert code_errors(response) == [f"{NOT_CORRECT} Wait 1 second before the next try."]
    assert DEVICE_ID_SESSION_KEY not in client.session
    assert where_sent(client, INDEX) == to(VERIFY, INDEX)
    device.refresh_from_db()
    assert device.throttling_failure_count == 1


FULL_WIDTH_DIGITS = "\uff11\uff12\uff13\uff14\uff15\uff16"


@pytest.mark.parametrize("typed", ["", "12345", "1234567", "abcdef", "12 34 5", FULL_WIDTH_DIGITS])
def test_a_malformed_code_is_refused_on_the_form_and_not_counted(client, pharmacist, typed):
    device = TOTPDeviceFactory(user=pharmacist)
    password_login(client, pharmacist)
    response = client.post(VERIFY, {"code": typed})
    assert response.status_code == 200
    assert code_errors(response) in (
        ["This field is required."],
        ["Enter the 6 digits your authenticator app shows, or one of your recovery codes."],
    )
    device.refresh_from_db()
    assert device.throttling_failure_count == 0
    assert not verified(client)


def test_a_code_with_a_space_as_apps_show_it_is_accepted(client, pharmacist):
    device = TOTPDeviceFactory(user=pharmacist)
    password_login(client, pharmacist)
    code = totp_code(device)
    response = client.post(VERIFY, {"code": f"{code[:3]} {code[3:]}"})
    assert response["Location"] == INDEX
    assert verified(client)


def test_wrong_codes_are_throttled_even_the_right_one_until_the_wait_is_over(client, pharmacist):
    device = TOTPDeviceFactory(user=pharmacist)
    password_login(client, pharmacist)
    client.post(VERIFY, {"code": wrong_code(device)})
    pass_the_wait(device)
    second = client.post(VERIFY, {"code": wrong_code(device)})
    assert code_errors(second) == [f"{NOT_CORRECT} Wait 2 seconds before the next try."]

    # Within the wait, the right code is not even checked, and the failures do not grow.
    refused = client.post(VERIFY, {"code": totp_code(device)})
    assert refused.status_code == 200
    [message] = code_errors(refused)
    assert re.fullmatch(
        r"Too many wrong codes: this code was not checked\. Wait [12] seconds? before the next "
        r"try\.",
        message,
    )
    device.refresh_from_db()
    assert device.throttling_failure_count == 2
    assert not verified(client)

    pass_the_wait(device)
    response = client.post(VERIFY, {"code": totp_code(device)})
    assert response["Location"] == INDEX
    device.refresh_from_db()
    assert (device.throttling_failure_count, device.throttling_failure_timestamp) == (0, None)
    assert verified(client)


def test_the_wait_doubles_with_each_wrong_code(client, pharmacist, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 10
    device = TOTPDeviceFactory(user=pharmacist)
    password_login(client, pharmacist)
    waits = []
    for _ in range(4):
        pass_the_wait(device)
        [message] = code_errors(client.post(VERIFY, {"code": wrong_code(device)}))
        waits.append(int(re.search(r"Wait (\d+) second", message).group(1)))
    assert waits == [10, 20, 40, 80]


def test_a_code_is_accepted_once(client, pharmacist):
    device = TOTPDeviceFactory(user=pharmacist)
    password_login(client, pharmacist)
    code = totp_code(device)
    assert client.post(VERIFY, {"code": code})["Location"] == INDEX

    other = client.__class__()
    password_login(other, pharmacist)
    replayed = other.post(VERIFY, {"code": code})
    assert code_errors(replayed)[0].startswith(NOT_CORRECT)
    assert not verified(other)


def test_another_users_device_never_verifies(client, pharmacist, technician):
    TOTPDeviceFactory(user=pharmacist)
    theirs = TOTPDeviceFactory(user=technician)
    password_login(client, pharmacist)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = theirs.persistent_id
    session.save()
    assert where_sent(client, INDEX) == to(VERIFY, INDEX)
    assert DEVICE_ID_SESSION_KEY not in client.session
    response = client.post(VERIFY, {"code": totp_code(theirs)})
    assert code_errors(response)[0].startswith(NOT_CORRECT)


def qr_code_text(svg: str) -> str:
    """Reads the page's inline SVG QR code back, as a phone's camera would."""
    pdf = HTML(string=f"<html><body>{svg}</body></html>").write_pdf()
    image = pypdfium2.PdfDocument(pdf)[0].render(scale=4).to_pil()
    [result] = zxingcpp.read_barcodes(image)
    assert result.format == zxingcpp.BarcodeFormat.QRCode
    return result.text


def test_enrolment_on_first_sign_in(client, technician):
    password_login(client, technician)
    assert where_sent(client, INDEX) == to(ENROL, INDEX)
    assert client.get(to(VERIFY, INDEX))["Location"] == to(ENROL, INDEX)  # no device yet

    page = client.get(to(ENROL, INDEX))
    html = page.content.decode()
    device = TOTPDevice.objects.get(user=technician)
    assert device.confirmed is False
    secret = b32encode(device.bin_key).decode()
    shown = re.search(r'<code id="totp-secret">([A-Z2-7 ]+)</code>', html).group(1)
    assert shown.replace(" ", "") == secret
    svg = re.search(r'<div id="totp-qr-code">\s*(<svg.*?</svg>)', html, re.S).group(1)
    assert qr_code_text(svg) == (
        f"otpauth://totp/Demo%20Compounding%20Pharmacy%3A{technician.email.replace('@', '%40')}"
        f"?secret={secret}&algorithm=SHA1&digits=6&period=30&issuer=Demo%20Compounding%20Pharmacy"
    )
    assert "<script" not in html.split("</head>")[1] and "data:" not in html
    assert client.get(ENROL).context["secret"] == page.context["secret"]  # the same key again
    assert TOTPDevice.objects.filter(user=technician).count() == 1

    wrong = client.post(ENROL, {"code": wrong_code(device), "next": INDEX})
    assert wrong.status_code == 200
    assert code_errors(wrong) == [f"{NOT_CORRECT} Wait 1 second before the next try."]
    device.refresh_from_db()
    assert device.confirmed is False
    assert not verified(client)

    pass_the_wait(device)
    response = client.post(ENROL, {"code": totp_code(device), "next": INDEX})
    # Set up: the recovery codes, shown once, then on to where they were going.
    codes = response.context["codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(re.fullmatch(r"[a-z2-7]{8}", code) for code in codes)
    assert f'href="{INDEX}"' in response.content.decode()
    device.refresh_from_db()
    assert device.confirmed is True
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert verified(client)
    # Enrolled: the page offers no new key, and the device is asked for from now on.
    assert client.get(ENROL)["Location"] == to(VERIFY, INDEX)
    client.logout()
    password_login(client, technician)
    assert where_sent(client, INDEX) == to(VERIFY, INDEX)

    # The phone is lost: a recovery code signs in once, then never again.
    assert client.post(VERIFY, {"code": codes[3].upper(), "next": INDEX})["Location"] == INDEX
    assert verified(client)
    client.logout()
    password_login(client, technician)
    again = client.post(VERIFY, {"code": codes[3], "next": INDEX})
    assert code_errors(again) == [f"{NOT_CORRECT} Wait 1 second before the next try."]
    assert not verified(client)


def test_enrolment_is_refused_once_a_device_is_confirmed(client, pharmacist):
    """A stolen password alone cannot add a second authenticator app."""
    device = TOTPDeviceFactory(user=pharmacist)
    password_login(client, pharmacist)
    assert client.get(ENROL)["Location"] == to(VERIFY, INDEX)
    response = client.post(ENROL, {"code": "123456"})
    assert response["Location"] == to(VERIFY, INDEX)
    assert list(TOTPDevice.objects.filter(user=pharmacist)) == [device]
    assert not verified(client)


def test_deleting_the_device_ends_verification(client, pharmacist):
    device = verified_staff_login(client, pharmacist)
    assert verified(client)
    device.delete()
    assert where_sent(client, INDEX) == to(ENROL, INDEX)
    assert DEVICE_ID_SESSION_KEY not in client.session


def test_unconfirming_or_replacing_the_device_ends_verification(client, pharmacist):
    device = verified_staff_login(client, pharmacist)
    TOTPDevice.objects.filter(pk=device.pk).update(confirmed=False)
    assert where_sent(client, INDEX) == to(ENROL, INDEX)

    device = verified_staff_login(client, pharmacist)
    device.delete()
    TOTPDeviceFactory(user=pharmacist)  # a new app: the old session's device is gone
    assert where_sent(client, INDEX) == to(VERIFY, INDEX)


def test_a_prescriber_is_never_asked(client, prescriber):
    password_login(client, prescriber.user)
    assert client.get(reverse("home")).status_code == 200
    assert client.get(reverse("patient_list")).status_code == 200
    assert client.get(reverse("order_list")).status_code == 200
    # Not staff: the admin answers with its sign-in page, never a second-factor page.
    for url in (INDEX, VERIFY, ENROL):
        response = client.get(url)
        assert response["Location"] == f"{reverse('admin:login')}?next={url}", url
    assert not TOTPDevice.objects.exists()


def test_an_inactive_staff_account_gets_no_second_factor_page(client, pharmacist):
    TOTPDeviceFactory(user=pharmacist)
    password_login(client, pharmacist)
    pharmacist.is_active = False
    pharmacist.save(update_fields=["is_active"])
    assert client.get(VERIFY)["Location"] == f"{reverse('admin:login')}?next={VERIFY}"


def test_an_unverified_staff_member_can_sign_out(client, pharmacist):
    TOTPDeviceFactory(user=pharmacist)
    password_login(client, pharmacist)
    page = client.get(VERIFY).content.decode()
    assert f'action="{reverse("admin:logout")}"' in page
    response = client.post(reverse("admin:logout"))
    assert (response.status_code, response["Location"]) == (302, reverse("login"))
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    "next_url", ["https://elsewhere.example/admin/", "//elsewhere.example/", "javascript:x()"]
)
def test_after_the_code_only_a_page_of_this_site_is_next(client, pharmacist, next_url):
    device = TOTPDeviceFactory(user=pharmacist)
    password_login(client, pharmacist)
    response = client.post(VERIFY, {"code": totp_code(device), "next": next_url})
    assert response["Location"] == INDEX


def test_a_verified_staff_member_is_not_asked_again(client, pharmacist):
    verified_staff_login(client, pharmacist)
    assert client.get(to(VERIFY, "/admin/orders/order/"))["Location"] == "/admin/orders/order/"
    assert client.get(reverse("admin:login"))["Location"] == INDEX


def test_the_device_comes_in_the_users_own_query(pharmacist, django_assert_num_queries):
    device = TOTPDeviceFactory(user=pharmacist)
    with django_assert_num_queries(1):
        user = PortalBackend().get_user(pharmacist.pk)
    assert getattr(user, TOTP_DEVICE_PK) == device.pk
    TOTPDevice.objects.filter(pk=device.pk).update(confirmed=False)
    assert getattr(PortalBackend().get_user(pharmacist.pk), TOTP_DEVICE_PK) is None


def test_the_second_factor_check_costs_no_query(client, pharmacist):
    """The device is read inside the user's query (session, user, then the page's own)."""
    verified_staff_login(client, pharmacist)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(reverse("admin:password_change")).status_code == 200
    session, user, *page = [query["sql"] for query in captured.captured_queries]
    assert 'FROM "django_session"' in session
    assert re.search(r'FROM "otp_totp_totpdevice" .* FROM "pharmacy_user"', user)
    assert not [sql for sql in page if "otp_totp" in sql]


def test_a_move_by_a_verified_pharmacist_still_works(client, pharmacist, order):
    verified_staff_login(client, pharmacist)
    url = reverse("admin:orders_order_move", args=[order.pk, OrderStatus.IN_REVIEW])
    assert client.post(url, {})["Location"] == reverse("admin:orders_order_change", args=[order.pk])
    order.refresh_from_db()
    assert order.status == OrderStatus.IN_REVIEW
