"""Signing in for tests: through the login form as a browser does (the login lockout,
django-axes, watches that form, so a test that checks a password posts it instead of calling
client.login()); for staff, a session that has passed the second factor, and the code an
authenticator app would show."""

import time

from django.contrib.auth import SESSION_KEY
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP, hotp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.factories import TOTPDeviceFactory


def sign_in(client, email, password, **extra):
    """Post the portal's login form; True when the client is signed in afterwards."""
    client.post(reverse("login"), {"username": email, "password": password}, **extra)
    return SESSION_KEY in client.session


def staff_device(user) -> TOTPDevice:
    """The user's confirmed device (the one that counts), made when they have none."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()
    return device or TOTPDeviceFactory(user=user)


def verified_staff_login(client, user) -> TOTPDevice:
    """force_login, then mark the session verified by the user's confirmed device, as
    django_otp.login does after a right code."""
    client.force_login(user)
    device = staff_device(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device


def totp_code(device: TOTPDevice) -> str:
    """The code the device's authenticator app shows now; the next time step's when this one
    was already used (django-otp accepts each time step once; the next is within tolerance)."""
    device.refresh_from_db()
    now = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).t()
    step = max(now, device.last_t + 1)
    if step > now + device.tolerance:  # two sign-ins within one step: wait for the next
        time.sleep(device.step * (step - now - device.tolerance))
    return f"{hotp(device.bin_key, step, digits=device.digits):0{device.digits}d}"


def wrong_code(device: TOTPDevice) -> str:
    """A six-digit code that is none of the codes the device accepts now."""
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    accepted = {
        hotp(device.bin_key, totp.t() + offset, digits=device.digits)
        for offset in range(-device.tolerance - 1, device.tolerance + 2)
    }
    return next(f"{n:06d}" for n in range(1_000_000) if n not in accepted)
