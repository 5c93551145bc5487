"""Sign-in lockout (django-axes, counted three ways as OWASP advises): 5 failures of an email from
one address lock that email there; 10 from any addresses lock the email everywhere; 100 from one
address lock the address for every email (a clinic's staff share one address); each for 15
minutes after the last failure. A success resets its email's count; the admin login counts
too."""

import datetime
import logging

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import SESSION_KEY
from django.test import RequestFactory
from django.urls import reverse

from core.auth import client_ip
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

LOGIN_URL = reverse("login")
ADMIN_LOGIN_URL = reverse("admin:login")
LOCKED_HEADING = "Sign-in paused"
PAUSED = "signing in is paused for 15 minutes"


def attempt(client, email, password, ip="192.0.2.10", url=LOGIN_URL, **headers):
    return client.post(url, {"username": email, "password": password}, REMOTE_ADDR=ip, **headers)


def signed_in(client):
    return SESSION_KEY in client.session


def is_lockout_page(response):
    page = response.content.decode()
    return response.status_code == 429 and LOCKED_HEADING in page and PAUSED in page


def test_five_failures_lock_the_email_from_that_address(client, prescriber, password):
    email = prescriber.user.email
    spellings = [email, email.upper(), f"  {email}", email.title(), email]
    for spelling in spellings[:4]:
        refused = attempt(client, spelling, "wrong-password-1")
        assert refused.status_code == 200  # the login form, with its message
        assert refused.context["form"].non_field_errors()

    fifth = attempt(client, spellings[4], "wrong-password-1")
    assert is_lockout_page(fifth)

    # The right password from that address: still locked.
    assert is_lockout_page(attempt(client, email, password))
    assert not signed_in(client)
    # From another address (the same person on their phone) it signs in.
    assert attempt(client, email, password, ip="198.51.100.77").status_code == 302
    assert signed_in(client)


def test_ten_failures_from_many_addresses_lock_the_email_everywhere(client, prescriber, password):
    email = prescriber.user.email
    for number in range(9):
        refused = attempt(client, email, "wrong-password-1", ip=f"192.0.2.{number}")
        assert refused.status_code == 200
    assert is_lockout_page(attempt(client, email, "wrong-password-1", ip="192.0.2.9"))

    # The right password, from an address that never failed: still locked.
    assert is_lockout_page(attempt(client, email, password, ip="198.51.100.77"))
    assert not signed_in(client)


def test_four_failures_do_not_lock(client, prescriber, password):
    for _ in range(4):
        attempt(client, prescriber.user.email, "wrong-password-1")
    response = attempt(client, prescriber.user.email, password)
    assert response.status_code == 302
    assert signed_in(client)


def test_one_persons_failures_do_not_lock_the_rest_of_the_clinic(client, prescriber, password):
    """Everyone at a clinic signs in from its one internet address: one person's lockout
    leaves the others able to sign in."""
    for _ in range(5):
        last = attempt(client, "mistyping.nurse@example.test", "wrong-password-1", ip="203.0.113.9")
    assert is_lockout_page(last)

    assert attempt(client, prescriber.user.email, password, ip="203.0.113.9").status_code == 302
    assert signed_in(client)


def test_a_hundred_failures_lock_the_address_for_every_email(client, prescriber, password):
    for number in range(99):
        refused = attempt(client, f"guess{number}@example.test", "x", ip="203.0.113.9")
        assert refused.status_code == 200
    assert is_lockout_page(attempt(client, "guess99@example.test", "x", ip="203.0.113.9"))

    assert is_lockout_page(attempt(client, prescriber.user.email, password, ip="203.0.113.9"))
    assert not signed_in(client)
    # The email itself failed nowhere: from another address it signs in.
    assert attempt(client, prescriber.user.email, password, ip="203.0.113.10").status_code == 302
    assert signed_in(client)


def test_a_success_clears_its_email_only(client, prescriber, password):
    for number in range(4):
        attempt(client, f"other{number}@example.test", "wrong-password-1", ip="203.0.113.9")
    attempt(client, prescriber.user.email, "wrong-password-1", ip="203.0.113.9")

    assert attempt(client, prescriber.user.email, password, ip="203.0.113.9").status_code == 302

    rows = AccessAttempt.objects.order_by("username").values_list("username", flat=True)
    assert list(rows) == [f"other{number}@example.test" for number in range(4)]


def test_the_lockout_ends_after_15_minutes(client, clock, prescriber, password):
    for _ in range(5):
        attempt(client, prescriber.user.email, "wrong-password-1")

    clock.shift(datetime.timedelta(minutes=14, seconds=59))
    assert is_lockout_page(attempt(client, prescriber.user.email, password))
    assert not signed_in(client)

    # A try while locked out did not prolong it: 15 minutes after the last failure, it is over.
    clock.shift(datetime.timedelta(seconds=2))
    assert attempt(client, prescriber.user.email, password).status_code == 302
    assert signed_in(client)


def test_a_success_resets_the_count(client, prescriber, password):
    for _ in range(4):
        attempt(client, prescriber.user.email, "wrong-password-1")
    assert attempt(client, prescriber.user.email, password).status_code == 302
    assert AccessAttempt.objects.count() == 0
    client.post(reverse("logout"))

    for _ in range(4):
        refused = attempt(client, prescriber.user.email, "wrong-password-1")
    assert refused.status_code == 200
    assert attempt(client, prescriber.user.email, password).status_code == 302
    assert signed_in(client)


def test_the_lockout_page_is_the_same_for_an_account_and_for_no_account(client, prescriber):
    pages = []
    for email in (prescriber.user.email, "nobody-here@example.test"):
        for _ in range(5):
            last = attempt(client, email, "wrong-password-1")
        assert is_lockout_page(last)
        pages.append(last.content)
        AccessAttempt.objects.all().delete()

    assert pages[0] == pages[1]
    assert prescriber.user.email.encode() not in pages[0]
    assert b"nobody-here" not in pages[1]


def test_the_admin_login_is_locked_out_too(client, password):
    staff = StaffFactory(group="Pharmacist")
    for _ in range(4):
        refused = attempt(client, staff.email, "wrong-password-1", url=ADMIN_LOGIN_URL)
        assert refused.status_code == 200
    assert is_lockout_page(attempt(client, staff.email, "wrong-password-1", url=ADMIN_LOGIN_URL))

    # The count is one for both doors: the portal's login page refuses the email now.
    assert is_lockout_page(attempt(client, staff.email, password))
    assert is_lockout_page(attempt(client, staff.email, password, url=ADMIN_LOGIN_URL))
    assert not signed_in(client)


def test_a_forwarded_address_is_ignored_unless_behind_the_proxy(client, settings, prescriber):
    settings.BEHIND_PROXY = False
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 5  # which address counts, not how many it takes
    # Rotating X-Forwarded-For does not escape the lockout of the real address.
    for number in range(5):
        last = attempt(client, f"guess{number}@example.test", "wrong-password-1",
                       ip="203.0.113.5", HTTP_X_FORWARDED_FOR=f"10.9.9.{number}")  # fmt: skip
    assert is_lockout_page(last)
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.5"}


def test_behind_the_proxy_the_first_forwarded_hop_is_the_client(client, settings, prescriber):
    settings.BEHIND_PROXY = True
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 5  # which address counts, not how many it takes
    # Every request reaches the portal from the proxy's own address.
    for number in range(5):
        last = attempt(client, f"guess{number}@example.test", "wrong-password-1",
                       ip="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.23, 10.0.0.1")  # fmt: skip
    assert is_lockout_page(last)
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"198.51.100.23"}

    # Another client behind the same proxy is not locked out.
    other = attempt(client, prescriber.user.email, "correct-horse-battery-9", ip="10.0.0.2",
                    HTTP_X_FORWARDED_FOR="198.51.100.24")  # fmt: skip
    assert other.status_code == 302


@pytest.mark.parametrize(
    ("behind_proxy", "remote", "forwarded", "expected"),
    [
        (False, "192.0.2.1", "198.51.100.1", "192.0.2.1"),
        (True, "10.0.0.1", "198.51.100.1", "198.51.100.1"),
        (True, "10.0.0.1", " 198.51.100.1 , 10.0.0.7", "198.51.100.1"),
        (True, "10.0.0.1", "2001:db8::1", "2001:db8::1"),
        (True, "10.0.0.1", "", "10.0.0.1"),
        (True, "10.0.0.1", "not-an-address, 198.51.100.1", "10.0.0.1"),
        (True, "10.0.0.1", "'; DROP TABLE axes_accessattempt; --", "10.0.0.1"),
        (False, "", "", None),
    ],
)
def test_client_ip(settings, behind_proxy, remote, forwarded, expected):
    settings.BEHIND_PROXY = behind_proxy
    request = RequestFactory().post(LOGIN_URL, REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


def test_a_made_up_forwarded_header_is_a_failed_sign_in_not_an_error(client, settings):
    settings.BEHIND_PROXY = True
    response = attempt(client, "someone@example.test", "wrong-password-1", ip="10.0.0.1",
                       HTTP_X_FORWARDED_FOR="x" * 300)  # fmt: skip
    assert response.status_code == 200
    assert AccessAttempt.objects.get().ip_address == "10.0.0.1"


def test_no_email_address_or_password_in_logs_or_attempt_rows(client, caplog, prescriber):
    caplog.set_level(logging.DEBUG)
    for _ in range(5):
        client.post(
            LOGIN_URL + "?next=/orders/",
            {
                "username": prescriber.user.email,
                "password": "my-secret-guess-77",
                "csrfmiddlewaretoken": "token-value-123",
            },
            REMOTE_ADDR="192.0.2.44",
        )
    logged = caplog.text
    assert "AXES" in logged  # the lockout did log
    for secret in (prescriber.user.email, "my-secret-guess-77", "192.0.2.44", "token-value-123"):
        assert secret not in logged
    row = AccessAttempt.objects.get()
    assert row.failures_since_start == 5
    stored = row.get_data + row.post_data
    assert "next=/orders/" in stored
    for secret in (prescriber.user.email, "my-secret-guess-77", "token-value-123"):
        assert secret not in stored


def test_the_login_page_costs_no_query_and_a_failure_a_fixed_few(
    client, prescriber, django_assert_num_queries
):
    with django_assert_num_queries(0):
        assert client.get(LOGIN_URL).status_code == 200
    attempt(client, prescriber.user.email, "wrong-password-1")
    # The lockout counts (one query for the three), the user, the search for expired attempts
    # to delete, the attempt row (locked and updated, in a savepoint: 4) and the counts again.
    with django_assert_num_queries(8):
        attempt(client, prescriber.user.email, "wrong-password-1")
