"""How long a signed-in session lasts.

Staff are signed out after SESSION_IDLE_TIMEOUT_STAFF seconds without a request (the admin
reaches every clinic's patients), prescribers after SESSION_IDLE_TIMEOUT_PRESCRIBER, patients
after SESSION_IDLE_TIMEOUT_PATIENT (session_role_set, by the page that signs them in), and everyone
SESSION_ABSOLUTE_TIMEOUT after signing in, however active. The clock starts at sign-in, whichever
way it happens (portal login page, admin login): Django's user_logged_in signal is the one place
all of them pass, after Django has given the session a new key.

The session keeps the sign-in time, the time of the last request and which idle limit applies,
so the check needs no query of its own. The last-request time is written when it is older than
a sixtieth of the idle limit, at most once a minute and at least once a second: a page view
does not save the session (or send its cookie again) each time, an active person is never
signed out by the stored time lagging behind, and a limit of a minute or less holds to the
second (one of 15 minutes to within 15 seconds). The session row and its cookie end a few
minutes after the absolute limit: long enough for the next request to be told why it was signed
out, and never renewed by activity.
"""

import functools
import time
from datetime import UTC, datetime

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import SESSION_KEY, logout
from django.contrib.auth.signals import user_logged_in
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.shortcuts import redirect

SIGNED_IN_AT = "portal_signed_in_at"
LAST_SEEN = "portal_last_seen"
ROLE = "portal_session_role"
STAFF, PRESCRIBER, PATIENT = "staff", "prescriber", "patient"

# The last-request time is written when it is older than the idle limit divided by this, in
# seconds, between 1 and ACTIVITY_RESOLUTION.
ACTIVITY_STEPS = 60
ACTIVITY_RESOLUTION = 60
# The session row and cookie outlive the absolute limit by this (seconds), see above.
EXPIRY_GRACE = 5 * 60
# Sent by a page's own requests in the background (the recall page following its notices):
# they are not the person's activity, so a page left open does not keep the session open.
BACKGROUND_REQUEST_HEADER = "X-Background-Poll"


def idle_timeout(role: str) -> int:
    if role == PRESCRIBER:
        return settings.SESSION_IDLE_TIMEOUT_PRESCRIBER
    if role == PATIENT:
        return settings.SESSION_IDLE_TIMEOUT_PATIENT
    return settings.SESSION_IDLE_TIMEOUT_STAFF


def activity_resolution(role: str) -> int:
    """How old the stored last-request time may get before a request writes it again."""
    return max(1, min(ACTIVITY_RESOLUTION, idle_timeout(role) // ACTIVITY_STEPS))


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


def session_role_set(request, role: str) -> None:
    """After signing in: a session whose idle limit is not the one start_session_clock chose
    from the account (a patient, signed in by their emailed link)."""
    request.session[ROLE] = role


def refuse_patients(view):
    """For account pages a patient has no use for (a password, a second factor: a patient signs
    in by an emailed link and their date of birth): 403 in a patient's session."""

    @functools.wraps(view)
    def refusing(request, *args, **kwargs):
        if request.session.get(ROLE) == PATIENT:
            raise PermissionDenied("Patients sign in by the emailed link: no password to change.")
        return view(request, *args, **kwargs)

    return refusing


def expiry_message(session, now: int) -> str | None:
    """Why this signed-in session has ended, or None while it is still good."""
    signed_in_at, last_seen = session.get(SIGNED_IN_AT), session.get(LAST_SEEN)
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
        if session.session_key is not None and SESSION_KEY in session:
            now = int(time.time())
            message = expiry_message(session, now)
            if message is not None:
                # A patient signs in again by an emailed link, on their own sign-in page.
                login_url = settings.LOGIN_URL
                if session.get(ROLE) == PATIENT:
                    login_url = settings.PATIENT_LOGIN_URL
                logout(request)
                messages.info(request, message)
                if request.method == "GET":
                    return redirect_to_login(request.get_full_path(), login_url)
                return redirect(login_url)
            background = BACKGROUND_REQUEST_HEADER in request.headers
            resolution = activity_resolution(session.get(ROLE, STAFF))
            if now - session[LAST_SEEN] >= resolution and not background:
                session[LAST_SEEN] = now
        return self.get_response(request)
