"""How long a signed-in session lasts.

Staff are signed out after SESSION_IDLE_TIMEOUT_STAFF seconds without a request (the admin
reaches every clinic's patients), prescribers after SESSION_IDLE_TIMEOUT_PRESCRIBER, and everyone
SESSION_ABSOLUTE_TIMEOUT after signing in, however active. The clock starts at sign-in, whichever
way it happens (portal login page, admin login): Django's user_logged_in signal is the one place
all of them pass, after Django has given the session a new key.

The session keeps the sign-in time, the time of the last request and which idle limit applies,
so the check needs no query of its own; the last-request time is written at most once a minute,
so a page view does not save the session each time. The session row and its cookie end a few
minutes after the absolute limit: long enough for the next request to be told why it was signed
out, and never renewed by activity.

So that an idle limit holds to the second (even one under a minute), every answer to a signed-in
request also carries the time of that request in a cookie of its own, signed and bound to the
session's key: the browser cannot make it later, and it costs no query. The idle check takes
the later of that time and the session's.
"""

import time
from datetime import UTC, datetime

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import SESSION_KEY, logout
from django.contrib.auth.signals import user_logged_in
from django.contrib.auth.views import redirect_to_login
from django.dispatch import receiver
from django.shortcuts import redirect

SIGNED_IN_AT = "portal_signed_in_at"
LAST_SEEN = "portal_last_seen"
ROLE = "portal_session_role"
STAFF, PRESCRIBER = "staff", "prescriber"

# The last-request time is written when it is older than this (seconds).
ACTIVITY_RESOLUTION = 60
# The cookie with the time of the last request, exact to the second.
ACTIVITY_COOKIE = "portal_activity"
ACTIVITY_SALT = "core.sessions.activity"
# The session row and cookie outlive the absolute limit by this (seconds), see above.
EXPIRY_GRACE = 5 * 60


def idle_timeout(role: str) -> int:
    if role == PRESCRIBER:
        return settings.SESSION_IDLE_TIMEOUT_PRESCRIBER
    return settings.SESSION_IDLE_TIMEOUT_STAFF


def duration(seconds: int) -> str:
    """12 hours, 15 minutes, 1 minute, 90 seconds."""
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    raise AssertionError("unreachable: every whole number of seconds is a count of seconds")


@receiver(user_logged_in, dispatch_uid="core.sessions.start_session_clock")
def start_session_clock(sender, request, user, **kwargs):
    now = int(time.time())
    session = request.session
    session[SIGNED_IN_AT] = now
    session[LAST_SEEN] = now
    session[ROLE] = STAFF if user.is_staff or user.is_superuser else PRESCRIBER
    # An end fixed at sign-in: the database row and the browser's cookie both expire then.
    deadline = now + settings.SESSION_ABSOLUTE_TIMEOUT + EXPIRY_GRACE
    session.set_expiry(datetime.fromtimestamp(deadline, tz=UTC))


def last_activity(request) -> int | None:
    """The time of the session's last request: the later of the session's (written once a
    minute) and the activity cookie's (every request), when that cookie is this session's."""
    last_seen = request.session.get(LAST_SEEN)
    cookie = request.get_signed_cookie(ACTIVITY_COOKIE, default="", salt=ACTIVITY_SALT)
    key, _, at = cookie.rpartition(":")
    if last_seen is not None and key == request.session.session_key and at.isdigit():
        return max(last_seen, int(at))
    return last_seen


def expiry_message(session, now: int, last_seen: int | None = None) -> str | None:
    """Why this signed-in session has ended, or None while it is still good."""
    signed_in_at = session.get(SIGNED_IN_AT)
    last_seen = session.get(LAST_SEEN) if last_seen is None else last_seen
    if signed_in_at is None or last_seen is None:
        # Started before these limits existed: its age is unknown.
        return "Please sign in again."
    if now - signed_in_at >= settings.SESSION_ABSOLUTE_TIMEOUT:
        limit = duration(settings.SESSION_ABSOLUTE_TIMEOUT)
        return f"Signed out {limit} after signing in. Please sign in again."
    idle = idle_timeout(session.get(ROLE, STAFF))
    if now - last_seen >= idle:
        return f"Signed out after {duration(idle)} without activity."
    return None


class SessionTimeoutMiddleware:
    """Ends a signed-in session that was idle or is too old: signs out (the session row is
    deleted) and sends the browser to the login page with the reason."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        session = request.session
        # No cookie, no session to end (and no query to load one).
        if session.session_key is None or SESSION_KEY not in session:
            return self.get_response(request)
        now = int(time.time())
        message = expiry_message(session, now, last_activity(request))
        if message is not None:
            logout(request)
            messages.info(request, message)
            if request.method == "GET":
                return redirect_to_login(request.get_full_path())
            return redirect(settings.LOGIN_URL)
        if now - session[LAST_SEEN] >= ACTIVITY_RESOLUTION:
            session[LAST_SEEN] = now
        response = self.get_response(request)
        if request.session.session_key is not None and SESSION_KEY in request.session:
            response.set_signed_cookie(
                ACTIVITY_COOKIE,
                f"{request.session.session_key}:{now}",
                salt=ACTIVITY_SALT,
                max_age=settings.SESSION_ABSOLUTE_TIMEOUT + EXPIRY_GRACE,
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
                samesite=settings.SESSION_COOKIE_SAMESITE,
            )
        return response
