"""Cross-site request forgery: every URL of the portal and the admin refuses an unsafe request
(POST, PUT, PATCH, DELETE) that carries no CSRF token with 403, before any view code runs, and
the request changes nothing. The client is signed in as a role that may use the page (the
first role that ACCESS lets POST, else GET), and holds the CSRF cookie of its session, as a
browser would; only the token is missing."""

import pytest
from django.db import transaction
from django.test import Client

from tests.test_access_matrix import (
    ACCESS,
    METHODS,
    ROLES,
    csrf_refusals,
    expected,
    fresh_copy,
    sign_in,
)
from tests.url_catalogue import build_world, catalogue, changed_tables, database_state

pytestmark = pytest.mark.django_db

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
FORM = "application/x-www-form-urlencoded"


def the_right_role(key: str) -> str:
    """A role that may use the page: the first one allowed to POST, else to GET."""
    for method in reversed(METHODS):
        allowed = [role for role, result in expected(key, method).items() if result == "ok"]
        if allowed:
            return allowed[0]
    return "prescriber_a"  # pages no role uses by GET or POST (signing out): a signed-in user


@pytest.fixture
def world():
    return build_world()


@pytest.fixture
def pages(world):
    pages = catalogue(world)[0]
    assert sorted(set(pages) - set(ACCESS)) == [], "URLs missing from ACCESS (test_access_matrix)"
    return pages


# The partner API authenticates by a key in a header, never by the session's cookie, so a forged
# request from a browser carries no credential: REST framework's views are exempt from Django's
# CSRF check, and a signed-in session is no key (401; its documents take no unsafe method: 405).
PARTNER_API_DOCUMENTS = {"api_problem", "api_schema", "api_docs", "fhir-metadata"}


def is_partner_api(key: str) -> bool:
    return key.startswith(("api-", "fhir-")) or key in PARTNER_API_DOCUMENTS


def test_no_view_of_the_catalogue_is_exempt_from_csrf_checks(pages):
    exempt = [key for key, page in pages.items() if getattr(page.view, "csrf_exempt", False)]
    assert sorted(exempt) == sorted(key for key in pages if is_partner_api(key))


def test_the_partner_api_takes_no_session_for_a_key(world, pages):
    """Every unsafe request to the API from a signed-in browser session (cookie and token
    alike) is a 401 (no key) or a 405, and changes nothing."""
    client = sign_in(Client(), "prescriber_a", world)
    baseline = database_state()
    failures = []
    for key, page in pages.items():
        if not is_partner_api(key):
            continue
        for method in UNSAFE:
            with transaction.atomic():
                response = fresh_copy(client).generic(method, page.path, b"{}", "application/json")
                changed = changed_tables(baseline, database_state())
                transaction.set_rollback(True)
            expected_status = 405 if key in PARTNER_API_DOCUMENTS else 401
            if response.status_code != expected_status or changed:
                failures.append(f"{key} {method}: {response.status_code}, changed {changed}")
    assert not failures, "\n".join(failures)


def test_every_url_refuses_unsafe_requests_without_a_csrf_token(world, pages):
    signed_in = {role: sign_in(Client(enforce_csrf_checks=True), role, world) for role in ROLES}
    baseline = database_state()
    failures = []
    for key, page in pages.items():
        if is_partner_api(key):
            continue  # no cookie is a credential there (above)
        role = the_right_role(key)
        for method in UNSAFE:
            client = fresh_copy(signed_in[role])
            del client.defaults["HTTP_X_CSRFTOKEN"]  # the cookie stays; the token is missing
            with transaction.atomic(), csrf_refusals() as refused:
                response = client.generic(method, page.path, b"reason=forged", FORM)
                changed = changed_tables(baseline, database_state())
                transaction.set_rollback(True)
            if response.status_code != 403 or len(refused) != 1 or changed:
                failures.append(
                    f"{key} {method} as {role}: {response.status_code}, CSRF refusals "
                    f"{refused}, changed {changed}"
                )
    assert not failures, "\n".join(failures)
