"""The partner API's credentials: keys per clinic, made and revoked by its prescribers, and
how a request's key is found and checked. The answers to idempotent requests are kept per key.

A key is `<prefix>.<secret>`: the prefix finds the row, the SHA-512 of the whole key proves it
(djangorestframework-api-key's KeyGenerator: 8 + 32 random letters and digits, about 190 bits).
A key works while it is not revoked and its owner is an approved prescriber of its clinic."""

import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone
from rest_framework_api_key.crypto import KeyGenerator

from core.compiled_reads import CompiledRead
from core.models import User
from core.text import required_text

from .models import ApiKey, Clinic
from .selectors import clinic_prescribers, prescriber_of_clinic

KEYS = KeyGenerator()
# last_used_at is written at most this often per key, not on every request.
LAST_USED_PRECISION = datetime.timedelta(minutes=1)


def clinic_api_keys(clinic_id: int) -> QuerySet[ApiKey]:
    """The clinic's keys, the working ones first, newest first."""
    return (
        ApiKey.objects.filter(clinic_id=clinic_id)
        .select_related("owner", "revoked_by")
        .order_by("revoked_at", "-created_at", "-pk")
    )


def api_key_create(
    *, clinic: Clinic, actor: User, name: str, can_sign: bool = False, password: str = ""
) -> tuple[ApiKey, str]:
    """A new key of `clinic` owned by `actor`, a prescriber of it; returns the key's row and
    the key itself, which is shown once and never stored. A key that signs orders is the
    prescriber's signature in the clinic's system: making one needs their password again."""
    owner = prescriber_of_clinic(actor, clinic.pk)
    if owner is None:
        raise PermissionDenied("Only a prescriber of the clinic makes its API keys.")
    name = required_text(name, "name")
    if can_sign and not actor.check_password(password or ""):
        raise ValidationError(
            {"password": "The password is not correct: a key that signs needs it."}
        )
    raw, prefix, hashed = KEYS.generate()
    key = ApiKey(
        clinic=clinic, owner=owner, name=name, prefix=prefix, hashed_key=hashed, can_sign=can_sign
    )
    key.full_clean()
    key._history_user = actor
    key.save()
    return key, raw


def api_key_revoke(*, key: ApiKey, actor: User) -> ApiKey:
    """Any prescriber of the clinic revokes any of its keys, at once and for good."""
    if prescriber_of_clinic(actor, key.clinic_id) is None:
        raise PermissionDenied("Only a prescriber of the clinic revokes its API keys.")
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=key.pk)
        if locked.revoked_at is None:
            locked.revoked_at, locked.revoked_by = timezone.now(), actor
            locked._history_user = actor
            locked.save(update_fields=["revoked_at", "revoked_by"])
    return locked


# A working key by its prefix, with its owner and clinic and whether its owner still prescribes
# for its clinic: one query on every API request, compiled once (CompiledRead).
_WORKING_KEYS = CompiledRead(
    ApiKey.objects.select_related("owner__user", "clinic")
    .annotate(
        owner_prescribes=Exists(
            clinic_prescribers(OuterRef("clinic_id")).filter(pk=OuterRef("owner_id")).order_by()
        )
    )
    .filter(revoked_at__isnull=True),
    "prefix",
)


def api_key_from(raw: str) -> ApiKey | None:
    """The working key that `raw` is, with its owner and clinic, or None."""
    prefix, dot, _ = raw.partition(".")
    if not dot or not prefix:
        return None
    key = next(iter(_WORKING_KEYS(prefix=[prefix])), None)
    if key is None or not KEYS.verify(raw, key.hashed_key):
        return None
    if not key.owner.user.is_active or not key.owner_prescribes:
        return None  # the owner was suspended or left the clinic: their keys stop with them
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key
