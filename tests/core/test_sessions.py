"""Sessions: a new key at sign-in, dead on the server after sign-out, signed out after 15 minutes
without activity for staff and 30 for prescribers, and 12 hours after signing in in any case."""

import datetime

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.http import http_date

from core import sessions as portal_sessions
from tests.signing_in import sign_in, verified_staff_login

pytestmark = pytest.mark.django_db

MINUTE = datetime.timedelta(minutes=1)
COOKIE = django_settings.SESSION_COOKIE_NAME
PATIENTS = reverse("patient_list")
ADMIN_INDEX = reverse("admin:index")


def session_key(client):
    return client.cookies[COOKIE].value


def signed_out_with(response, client, message, next_path):
    """The request was sent to the login page, anonymous, and the page tells why."""
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={next_path}"
    assert SESSION_KEY not in client.session
    login_page = client.get(response["Location"])
    assert message in login_page.content.decode()
    return True


def test_signing_in_gives_a_new_session_key(client, prescriber, password):
    before = client.session  # an anonymous session, as a visit before signing in leaves
    before["visited"] = True
    before.save()
    anonymous_key = before.session_key
    assert session_key(client) == anonymous_key

    assert sign_in(client, prescriber.user.email, password)

    assert session_key(client) != anonymous_key
    assert not Session.objects.filter(session_key=anonymous_key).exists()
    assert client.session["visited"] is True  # the data moves to the new key


def test_signing_out_ends_the_session_on_the_server(client, prescriber, password):
    assert sign_in(client, prescriber.user.email, password)
    old_key = session_key(client)
    assert client.get(PATIENTS).status_code == 200

    client.post(reverse("logout"))

    assert not Session.objects.filter(session_key=old_key).exists()
    client.cookies[COOKIE] = old_key  # a copy of the cookie taken before signing out
    response = client.get(PATIENTS)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={PATIENTS}"


def test_prescriber_is_signed_out_after_30_minutes_without_activity(
    client, clock, prescriber, password
):
    assert sign_in(client, prescriber.user.email, password)
    key = session_key(client)

    clock.shift(29 * MINUTE + datetime.timedelta(seconds=59))
    assert client.get(PATIENTS).status_code == 200  # activity: the idle clock starts again

    clock.shift(29 * MINUTE + datetime.timedelta(seconds=59))
    assert client.get(PATIENTS).status_code == 200

    clock.shift(30 * MINUTE)
    response = client.get(PATIENTS)
    assert signed_out_with(
        response, client, "Signed out after 30 minutes without activity.", PATIENTS
    )
    assert not Session.objects.filter(session_key=key).exists()


def test_staff_are_signed_out_after_15_minutes_without_activity(client, clock, pharmacist):
    verified_staff_login(client, pharmacist)

    clock.shift(14 * MINUTE + datetime.timedelta(seconds=59))
    assert client.get(ADMIN_INDEX).status_code == 200

    clock.shift(15 * MINUTE)
    response = client.get(ADMIN_INDEX)
    assert signed_out_with(
        response, client, "Signed out after 15 minutes without activity.", ADMIN_INDEX
    )


def test_idle_limits_come_from_settings(client, clock, settings, prescriber):
    settings.SESSION_IDLE_TIMEOUT_PRESCRIBER = 90
    client.force_login(prescriber.user)
    clock.shift(datetime.timedelta(seconds=90))
    response = client.get(PATIENTS)
    assert signed_out_with(response, client, "Signed out after 90 seconds without activity.",
                           PATIENTS)  # fmt: skip


def test_everyone_is_signed_out_12_hours_after_signing_in(client, clock, prescriber, password):
    assert sign_in(client, prescriber.user.email, password)
    for _ in range(12 * 3 - 1):  # busy all day: a page every 20 minutes
        clock.shift(20 * MINUTE)
        assert client.get(PATIENTS).status_code == 200

    clock.shift(20 * MINUTE)  # 12 hours since signing in
    response = client.get(PATIENTS)
    assert signed_out_with(
        response, client, "Signed out 12 hours after signing in. Please sign in again.", PATIENTS
    )


def test_a_post_after_the_limit_goes_to_the_login_page(client, clock, prescriber, patient):
    client.force_login(prescriber.user)
    clock.shift(31 * MINUTE)
    response = client.post(reverse("patient_update", args=[patient.pk]), {"first_name": "X"})
    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    patient.refresh_from_db()
    assert patient.first_name != "X"


def test_a_session_from_before_the_limits_is_signed_out(client, prescriber):
    client.force_login(prescriber.user)
    session = client.session
    for key in (portal_sessions.SIGNED_IN_AT, portal_sessions.LAST_SEEN):
        del session[key]
    session.save()

    response = client.get(PATIENTS)
    assert signed_out_with(response, client, "Please sign in again.", PATIENTS)


def session_writes(queries):
    return [q["sql"] for q in queries if q["sql"].startswith('UPDATE "django_session"')]


def test_activity_is_written_at_most_once_a_minute(client, clock, settings, prescriber):
    settings.SESSION_IDLE_TIMEOUT_PRESCRIBER = 3600  # a sixtieth is a minute, the most it waits
    client.force_login(prescriber.user)
    signed_in_at = client.session[portal_sessions.LAST_SEEN]

    clock.shift(datetime.timedelta(seconds=59))
    with CaptureQueriesContext(connection) as queries:
        response = client.get(PATIENTS)
    assert session_writes(queries) == []
    assert COOKIE not in response.cookies  # nothing sent back either
    assert client.session[portal_sessions.LAST_SEEN] == signed_in_at

    clock.shift(datetime.timedelta(seconds=1))
    with CaptureQueriesContext(connection) as queries:
        client.get(PATIENTS)
    assert len(session_writes(queries)) == 1
    assert client.session[portal_sessions.LAST_SEEN] == signed_in_at + 60


def test_the_timeout_check_adds_no_query(client, settings, pharmacist):
    verified_staff_login(client, pharmacist)
    url = reverse("admin:orders_order_changelist")
    client.get(url)  # caches warmed
    with CaptureQueriesContext(connection) as checked:
        assert client.get(url).status_code == 200
    settings.MIDDLEWARE = [
        m for m in settings.MIDDLEWARE if m != "core.sessions.SessionTimeoutMiddleware"
    ]
    with CaptureQueriesContext(connection) as unchecked:
        assert client.get(url).status_code == 200
    assert len(checked) == len(unchecked)


def test_the_session_ends_at_a_time_fixed_at_sign_in(client, clock, prescriber, password):
    """The database row and the browser's cookie both end then (a few minutes after the 12
    hours, so that a request just after the limit hears why it was signed out); activity
    never pushes that end further."""
    response = client.post(
        reverse("login"), {"username": prescriber.user.email, "password": password}
    )
    end = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=12, minutes=5)
    assert response.cookies[COOKIE]["expires"] == http_date(end.timestamp())
    assert response.cookies[COOKIE]["max-age"] == 12 * 3600 + 5 * 60
    assert Session.objects.get(session_key=session_key(client)).expire_date == end

    clock.shift(2 * MINUTE)
    response = client.get(PATIENTS)  # an activity write: the session is saved again
    assert response.cookies[COOKIE]["expires"] == http_date(end.timestamp())
    assert Session.objects.get(session_key=session_key(client)).expire_date == end


def test_session_cookie_is_http_only(client, prescriber, password):
    response = client.post(
        reverse("login"), {"username": prescriber.user.email, "password": password}
    )
    assert response.cookies[COOKIE]["httponly"] is True
    assert response.cookies[COOKIE]["samesite"] == "Lax"


IDLE_20_SECONDS = "Signed out after 20 seconds without activity."


def test_an_idle_limit_under_a_minute_holds_to_the_second(client, clock, settings, prescriber):
    # The stored time is written when a second old (a sixtieth of 20 s, at least a second).
    settings.SESSION_IDLE_TIMEOUT_PRESCRIBER = 20
    client.force_login(prescriber.user)
    for _ in range(8):  # two minutes of a request every 15 seconds
        clock.shift(datetime.timedelta(seconds=15))
        assert client.get(PATIENTS).status_code == 200
    clock.shift(datetime.timedelta(seconds=19))
    assert client.get(PATIENTS).status_code == 200  # 19 s idle: still in
    clock.shift(datetime.timedelta(seconds=20))
    response = client.get(PATIENTS)  # 20 s idle: out
    assert signed_out_with(response, client, IDLE_20_SECONDS, PATIENTS)


@pytest.mark.parametrize(
    ("limit", "resolution"), [(20, 1), (60, 1), (120, 2), (900, 15), (1800, 30), (7200, 60)]
)
def test_the_stored_time_is_written_at_a_sixtieth_of_the_limit(
    client, clock, settings, prescriber, limit, resolution
):
    settings.SESSION_IDLE_TIMEOUT_PRESCRIBER = limit
    client.force_login(prescriber.user)
    signed_in_at = client.session[portal_sessions.LAST_SEEN]
    clock.shift(datetime.timedelta(seconds=resolution - 1))
    with CaptureQueriesContext(connection) as queries:
        client.get(PATIENTS)
    assert session_writes(queries) == [] or resolution == 1
    clock.shift(datetime.timedelta(seconds=1))
    with CaptureQueriesContext(connection) as queries:
        client.get(PATIENTS)
    assert len(session_writes(queries)) == 1
    assert client.session[portal_sessions.LAST_SEEN] == signed_in_at + resolution
