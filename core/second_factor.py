"""The staff's second factor: a code from an authenticator app (TOTP, django-otp's TOTP plugin).

A staff session is verified while the session names the user's confirmed TOTP device
(django_otp.DEVICE_ID_SESSION_KEY, written by django_otp.login). The id of that device is read
in the same query as the user (PortalBackend.get_user annotates it, see with_totp_device), so
the check costs no query per request; deleting or unconfirming the device ends every session it
verified at that session's next request. One confirmed device counts per user: the oldest.
"""

import dataclasses
import datetime
import functools
from base64 import b32encode

import segno
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils.functional import SimpleLazyObject
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.middleware import OTPMiddleware
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

# One-time recovery codes (django-otp's static device): how many, and how long each is
# (StaticToken.random_token: 8 characters of base32, 40 bits, each tried under throttling).
RECOVERY_CODES = 10
RECOVERY_CODE_LENGTH = 8
RECOVERY_DEVICE_NAME = "Recovery codes"
# The annotation on users loaded by PortalBackend.get_user: the pk of the confirmed device.
TOTP_DEVICE_PK = "totp_device_pk"
DEVICE_NAME = "Authenticator app"
_NOT_LOADED = object()


def with_totp_device(users: QuerySet) -> QuerySet:
    """Users with the pk of their confirmed TOTP device (None without one), in the same query."""
    confirmed = TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True).order_by("pk")
    return users.annotate(**{TOTP_DEVICE_PK: Subquery(confirmed.values("pk")[:1])})


def totp_device_pk(user) -> int | None:
    """The pk of the user's confirmed device: from the annotation, else one query."""
    pk = getattr(user, TOTP_DEVICE_PK, _NOT_LOADED)
    if pk is _NOT_LOADED:
        users = with_totp_device(get_user_model()._default_manager.filter(pk=user.pk))
        pk = users.values_list(TOTP_DEVICE_PK, flat=True).first()
        setattr(user, TOTP_DEVICE_PK, pk)
    return pk


def persistent_id(device_pk: int) -> str:
    """How django-otp names a device in the session (Device.persistent_id)."""
    return f"{TOTPDevice.model_label()}/{device_pk}"


class SecondFactorMiddleware(OTPMiddleware):
    """django-otp's OTPMiddleware (request.user.otp_device, request.user.is_verified()) without
    its query per request: the session is verified when it names the device whose pk came with
    the user. otp_device itself is loaded only when something reads it."""

    def _verify_user_sync(self, request, user):
        self._init_user_fields(user)
        if not user.is_authenticated:
            return user
        named = request.session.get(DEVICE_ID_SESSION_KEY)
        if not named:
            return user
        device_pk = totp_device_pk(user)
        if device_pk is not None and named == persistent_id(device_pk):
            user.otp_device = SimpleLazyObject(
                functools.partial(TOTPDevice.objects.get, pk=device_pk, user_id=user.pk)
            )
        else:  # the device was deleted, unconfirmed or replaced: this session is not verified
            del request.session[DEVICE_ID_SESSION_KEY]
        return user


def is_verified(user) -> bool:
    """Whether the signed-in user passed the second factor in this session (fails closed when
    the middleware is missing)."""
    check = getattr(user, "is_verified", None)
    return bool(check and check())


def second_factor_due(user) -> bool:
    """A signed-in, active staff user who has not passed the second factor in this session."""
    return bool(user.is_authenticated and user.is_active and user.is_staff) and not is_verified(
        user
    )


@dataclasses.dataclass(frozen=True)
class CodeCheck:
    device: TOTPDevice | None = None  # the device that accepted the code
    retry_at: datetime.datetime | None = None  # no code is checked before this time
    throttled: bool = False  # refused unchecked: a wrong code came too short a time ago

    @property
    def accepted(self) -> bool:
        return self.device is not None


def _refusal(device, code: str) -> CodeCheck | None:
    """None when the (locked) device accepts the code; else why not: throttled (a wrong code
    came too short a time ago: not checked) or wrong, with when the next try is checked."""
    allowed, refusal = device.verify_is_allowed()
    if not allowed:
        return CodeCheck(retry_at=refusal["locked_until"], throttled=True)
    if not device.verify_token(code):
        _, refusal = device.verify_is_allowed()
        return CodeCheck(retry_at=(refusal or {}).get("locked_until"))
    return None


def totp_device_enrol(*, actor) -> TOTPDevice:
    """The device the actor is enrolling (not confirmed yet): the newest one, or a new one with
    a fresh random key. Asking again shows the same key until a code confirms it."""
    device = TOTPDevice.objects.filter(user=actor, confirmed=False).order_by("-pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=actor, name=DEVICE_NAME, confirmed=False)
    return device


def totp_code_check(*, actor, device_pk: int, code: str, enrolling: bool = False) -> CodeCheck:
    """Checks a code against one of the actor's devices: the confirmed one, or the one being
    enrolled, which a right code confirms. The device row is locked, so concurrent tries count
    one by one; each wrong code doubles the wait before the next try is even checked
    (django-otp's throttling: 1, 2, 4, ... seconds times OTP_TOTP_THROTTLE_FACTOR); a right
    code resets it, and a code is accepted once (django-otp keeps the last time step used)."""
    with transaction.atomic():
        device = (
            TOTPDevice.objects.select_for_update()
            .filter(pk=device_pk, user=actor, confirmed=not enrolling)
            .first()
        )
        if device is None:
            return CodeCheck()
        refused = _refusal(device, code)
        if refused is not None:
            return refused
        if enrolling:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            TOTPDevice.objects.filter(user=actor, confirmed=False).delete()
    return CodeCheck(device=device)


def base32_secret(device: TOTPDevice) -> str:
    """The key as authenticator apps take it when typed, in groups of four."""
    secret = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def qr_code_svg(device: TOTPDevice) -> str:
    """The device's otpauth:// URI as an inline SVG QR code (no image request, no script)."""
    return segno.make(device.config_url, error="m").svg_inline(
        scale=5, title="QR code for your authenticator app"
    )


def recovery_codes_issue(*, actor) -> list[str]:
    """New one-time recovery codes for a person with an authenticator app: each one signs in
    once instead of the app's code, so a lost phone needs no administrator. The codes issued
    before stop working. They are shown once; django-otp keeps them to compare."""
    if not TOTPDevice.objects.filter(user=actor, confirmed=True).exists():
        raise ValueError("Recovery codes are for an account with an authenticator app.")
    with transaction.atomic():
        device, _ = StaticDevice.objects.select_for_update().get_or_create(
            user=actor, name=RECOVERY_DEVICE_NAME, defaults={"confirmed": True}
        )
        device.token_set.all().delete()
        codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
        StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def recovery_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def recovery_code_check(*, actor, code: str) -> CodeCheck:
    """A recovery code instead of the app's: used up once accepted. Wrong codes are throttled
    as the app's are. An accepted code verifies the session as the app would (its device is
    the one the session then names), so the person can then set up a new phone."""
    with transaction.atomic():
        device = (
            StaticDevice.objects.select_for_update()
            .filter(user=actor, confirmed=True)
            .order_by("pk")
            .first()
        )
        app_pk = totp_device_pk(actor)
        if device is None or app_pk is None:
            return CodeCheck()
        refused = _refusal(device, code)
        if refused is not None:
            return refused
    return CodeCheck(device=TOTPDevice.objects.get(pk=app_pk))


def second_factor_remove(*, actor) -> None:
    """Turn the second factor off: the authenticator app and the recovery codes are forgotten
    (the person confirmed with their password first)."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=actor).delete()
        StaticDevice.objects.filter(user=actor).delete()
