"""How the partner API knows who asks: an API key of a clinic in the Authorization header, its
rate limit, and the Idempotency-Key of requests that create.

`request.user` is the key's owner (a prescriber of the clinic) and `request.auth` the ApiKey:
views filter every query by `request.auth.clinic_id`, as the portal's pages filter by the
clinic acted for."""

import functools
import hashlib
import json

from django.conf import settings
from django.db import connection, transaction
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle

from core.problems import Problem

from .api_keys import api_key_from
from .models import ApiKey, IdempotentRequest

KEYWORD = "Api-Key"
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_LENGTH = IdempotentRequest._meta.get_field("key").max_length


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Api-Key <key>` (or `Bearer <key>`)."""

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in (KEYWORD.lower().encode(), b"bearer"):
            return None
        if len(parts) != 2:
            raise AuthenticationFailed(f"Send the key as: Authorization: {KEYWORD} <key>")
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError as error:
            raise AuthenticationFailed("The API key is not valid.") from error
        key = api_key_from(raw)
        if key is None:
            raise AuthenticationFailed(
                "The API key is not valid: revoked, mistyped, or its owner no longer "
                "prescribes for the clinic."
            )
        return key.owner.user, key

    def authenticate_header(self, request):
        return f'{KEYWORD} realm="api"'  # makes a missing key a 401, not a 403


class ApiKeySchema(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": f'"{KEYWORD} <key>": a key made by a prescriber of the clinic.',
        }


class HasClinicKey(BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.auth, ApiKey)


class ApiKeyThrottle(SimpleRateThrottle):
    """Requests per key (REST framework answers 429 with Retry-After); without a key, per
    client address."""

    scope = "api_key"

    def get_rate(self):
        return settings.API_RATE_LIMIT

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.pk}"
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


def _fingerprint(request) -> str:
    """What makes two requests the same: method, path and the body's JSON (key order and
    spacing aside)."""
    body = json.dumps(request.data, sort_keys=True, default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def idempotency_key(request) -> str:
    """The request's Idempotency-Key header: required, 1 to 255 printable characters."""
    key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    if not key or len(key) > IDEMPOTENCY_KEY_LENGTH or not key.isprintable():
        raise Problem(
            "idempotency-key-missing", status_code=status.HTTP_400_BAD_REQUEST,
            detail=f"Send an {IDEMPOTENCY_HEADER} header of 1 to {IDEMPOTENCY_KEY_LENGTH} "
            "printable characters (a UUID is best).",
        )  # fmt: skip
    return key


def idempotent(request, create) -> Response:
    """Answer a request that creates once per Idempotency-Key of the key: the first answer is
    kept and a retry gets it again (with `Idempotent-Replayed: true`); the same key with a
    different request is a 422; a retry while the first still runs waits for it and then gets
    its answer. A refused request (4xx) keeps nothing, so the corrected request may use the same
    key. `create()` returns the Response.

    The key's row is inserted unless it exists (no savepoint, no error to recover from); an
    insert meeting the row of a request still running waits until that one ends. A row that
    went in is this request's own, locked by its insert until the answer is kept on it; a row
    that was there is a kept answer, since a row is only ever committed with one."""
    key = idempotency_key(request)
    fingerprint = _fingerprint(request)
    api_key = request.auth
    with transaction.atomic():
        claim = IdempotentRequest(
            api_key=api_key, key=key, fingerprint=fingerprint, status_code=0, response={}
        )
        if not _claimed(claim):
            return _kept_answer(
                IdempotentRequest.objects.get(api_key=api_key, key=key), key, fingerprint
            )
        response = create()
        if response.status_code >= 400:
            transaction.set_rollback(True)
            return response
        claim.status_code, claim.response = response.status_code, response.data
        claim.location = response.headers.get("Location", "")
        _kept(claim)
        return response


def _claimed(record: IdempotentRequest) -> bool:
    """Insert `record`, the request's row still without an answer, unless the key's row is there
    (INSERT ... ON CONFLICT DO NOTHING): whether it went in. A row of a request still running
    makes the insert wait until that one ends; it went in if that one was rolled back."""
    sql, fields = _claim_statement()
    with connection.cursor() as cursor:
        cursor.execute(sql, _values(record, fields, adding=True))
        return cursor.rowcount == 1


@functools.cache
def _claim_statement() -> tuple[str, list]:
    """_claimed's SQL and the fields it inserts, in order: made once per process."""
    meta = IdempotentRequest._meta
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({', '.join(quote(f.column) for f in _row_key())}) DO NOTHING"
    )
    return sql, fields


def _kept(record: IdempotentRequest) -> None:
    """Keep the answer on the request's own row (its insert holds the row's lock)."""
    sql, fields = _answer_statement()
    with connection.cursor() as cursor:
        cursor.execute(sql, _values(record, fields, adding=False))


def _values(record: IdempotentRequest, fields: list, *, adding: bool) -> list:
    """The record's values of these fields as the database takes them, as Django's own insert
    (`adding`) or update prepares them."""
    return [field.get_db_prep_save(field.pre_save(record, adding), connection) for field in fields]


@functools.cache
def _answer_statement() -> tuple[str, list]:
    """_kept's SQL and the fields it sets, then those it finds the row by: made once per
    process."""
    meta = IdempotentRequest._meta
    answer = [meta.get_field(name) for name in ("status_code", "response", "location")]
    row = _row_key()
    quote = connection.ops.quote_name
    sql = (
        f"UPDATE {quote(meta.db_table)} "
        f"SET {', '.join(f'{quote(f.column)} = %s' for f in answer)} "
        f"WHERE {' AND '.join(f'{quote(f.column)} = %s' for f in row)}"
    )
    return sql, answer + row


def _row_key() -> list:
    """The fields that find a key's row: those of its unique constraint."""
    meta = IdempotentRequest._meta
    (unique,) = (c for c in meta.constraints if c.name == "one_answer_per_idempotency_key")
    return [meta.get_field(name) for name in unique.fields]


def _kept_answer(record: IdempotentRequest, key: str, fingerprint: str) -> Response:
    if record.fingerprint != fingerprint:
        raise Problem(
            "idempotency-key-reused", status_code=status.HTTP_422_UNPROCESSABLE_ENTITY,
            detail=f"{IDEMPOTENCY_HEADER} {key!r} was first used for another request.",
        )  # fmt: skip
    headers = {"Idempotent-Replayed": "true"}
    if record.location:
        headers["Location"] = record.location
    return Response(record.response, status=record.status_code, headers=headers)
