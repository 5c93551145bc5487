"""Who may call which route of the partner API: every API URL (JSON and FHIR), for a key of
clinic A (the records in the URLs are A's), one of A's that signs, one of clinic B, one of A's
that was revoked, and no key, by GET, POST and PATCH with an empty JSON body (the access
decision, not the input). Another clinic's record is a 404, never a 403 (a method the route
does not take is a 405 before any record is looked up); a refused request changes nothing.

The URLs come from the same catalogue as the portal's matrix (tests/url_catalogue.py), so a new
API route is either in the table below or makes the test fail."""

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from tests.test_access_matrix import DENIED, outcome
from tests.url_catalogue import build_world, catalogue, changed_tables, database_state

pytestmark = pytest.mark.django_db

KEYS = ("none", "key_a", "key_a_signs", "key_b", "key_a_revoked")
METHODS = ("GET", "POST", "PATCH")

# url name: outcomes by method, one per key in the order of KEYS.
# fmt: off
ACCESS = {
    #                       none   key A  A sign key B  A revoked
    "api-patient-list": {
        "GET":             "401    ok     ok     ok     401",
        "POST":            "401    400    400    400    401",
        "PATCH":           "401    405    405    405    401"},
    "api-patient-detail": {
        "GET":             "401    ok     ok     404    401",
        "POST":            "401    405    405    405    401",
        "PATCH":           "401    ok     ok     404    401"},
    "api-dose-check": {
        "GET":             "401    405    405    405    401",
        "POST":            "401    400    400    400    401",
        "PATCH":           "401    405    405    405    401"},
    # POST without an Idempotency-Key: refused before anything is read from the body.
    "api-order-list": {
        "GET":             "401    ok     ok     ok     401",
        "POST":            "401    400    400    400    401",
        "PATCH":           "401    405    405    405    401"},
    "api-order-detail": {
        "GET":             "401    ok     ok     404    401",
        "POST":            "401    405    405    405    401",
        "PATCH":           "401    405    405    405    401"},
    "api-order-cancel": {
        "GET":             "401    405    405    405    401",
        "POST":            "401    ok     ok     404    401",
        "PATCH":           "401    405    405    405    401"},
    "api-order-timeline": {
        "GET":             "401    ok     ok     404    401",
        "POST":            "401    405    405    405    401",
        "PATCH":           "401    405    405    405    401"},
    "api-order-label": {
        "GET":             "401    ok     ok     404    401",
        "POST":            "401    405    405    405    401",
        "PATCH":           "401    405    405    405    401"},
    "api-prescription-refills": {
        "GET":             "401    405    405    405    401",
        "POST":            "401    400    400    404    401",
        "PATCH":           "401    405    405    405    401"},
    # FHIR R4: a Bundle POSTed without an Idempotency-Key is refused before it is read.
    "fhir-bundle": {
        "GET":             "401    405    405    405    401",
        "POST":            "401    400    400    400    401",
        "PATCH":           "401    405    405    405    401"},
    "fhir-medication-request": {
        "GET":             "401    ok     ok     404    401",
        "POST":            "401    405    405    405    401",
        "PATCH":           "401    405    405    405    401"},
    # A search without its `prescription` parameter: 400.
    "fhir-medication-dispense": {
        "GET":             "401    400    400    400    401",
        "POST":            "401    405    405    405    401",
        "PATCH":           "401    405    405    405    401"},
    # The CapabilityStatement is public: a key, even a revoked one, is not read.
    "fhir-metadata": {
        "GET":             "ok     ok     ok     ok     ok",
        "POST":            "405    405    405    405    405",
        "PATCH":           "405    405    405    405    405"},
    "fhir-no-such-route": {
        "GET":             "401    404    404    404    401",
        "POST":            "401    404    404    404    401",
        "PATCH":           "401    404    404    404    401"},
}
# fmt: on


@pytest.fixture
def world():
    return build_world()


def api_pages(world) -> dict:
    pages = catalogue(world)[0]
    return {key: page for key, page in pages.items() if key.startswith(("api-", "fhir-"))}


def client_of(world, key: str) -> APIClient:
    client = APIClient()
    if key != "none":
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {world.api_keys[key]}")
    return client


def test_the_table_names_every_api_url(world):
    assert sorted(api_pages(world)) == sorted(ACCESS)


def test_every_api_url_answers_every_key_as_the_table_says(world):
    pages = api_pages(world)
    baseline = database_state()
    mismatches, changes = [], []
    for name, page in sorted(pages.items()):
        for method in METHODS:
            want = dict(zip(KEYS, ACCESS[name][method].split(), strict=True))
            for key in KEYS:
                with transaction.atomic():
                    response = client_of(world, key).generic(
                        method, page.path, "{}" if method != "GET" else "",
                        content_type="application/json",
                    )  # fmt: skip
                    got = outcome(response)
                    changed = changed_tables(baseline, database_state()) if got in DENIED else []
                    transaction.set_rollback(True)
                if got != want[key]:
                    mismatches.append(
                        f"{name} {method} with {key}: expected {want[key]}, got {got}"
                    )
                if changed:
                    changes.append(f"{name} {method} with {key} was refused but changed {changed}")
    assert not mismatches and not changes, "\n".join([*mismatches, *changes])
