"""The clinic's API keys page: a prescriber makes a key (shown once, stored hashed) and
revokes one; a key that signs needs their password."""

import pytest
from django.urls import reverse

from prescribers.models import ApiKey
from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db


def test_a_key_is_shown_once_and_stored_hashed(prescriber_client, prescriber):
    response = prescriber_client.post(reverse("api_key_list"), {"name": "Clinic EHR"})
    assert response.status_code == 201
    assert response["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"
    raw = response.context["raw_key"]
    key = ApiKey.objects.get()
    assert (key.name, key.owner, key.can_sign, key.prefix) == (
        "Clinic EHR",
        prescriber,
        False,
        raw.split(".")[0],
    )
    assert raw in response.content.decode() and raw not in key.hashed_key
    page = prescriber_client.get(reverse("api_key_list")).content.decode()
    assert raw not in page and f"{key.prefix}&hellip;" in page and "Drafts to sign" in page


def test_a_key_that_signs_needs_the_password(prescriber_client):
    wrong = {"name": "Signing EHR", "can_sign": "on", "password": "not it"}
    response = prescriber_client.post(reverse("api_key_list"), wrong)
    assert response.status_code == 200
    assert response.context["form"].errors == {
        "password": ["The password is not correct: a key that signs needs it."]
    }
    assert not ApiKey.objects.exists()
    right = {**wrong, "password": TEST_PASSWORD}
    assert prescriber_client.post(reverse("api_key_list"), right).status_code == 201
    assert ApiKey.objects.get().can_sign is True


def test_a_key_is_revoked_for_good(prescriber_client, prescriber):
    prescriber_client.post(reverse("api_key_list"), {"name": "Clinic EHR"})
    key = ApiKey.objects.get()
    response = prescriber_client.post(reverse("api_key_revoke", args=[key.pk]))
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None and key.revoked_by == prescriber.user
    page = prescriber_client.get(reverse("api_key_list")).content.decode()
    assert "Revoked" in page and f"api-keys/{key.pk}/revoke/" not in page


def test_a_nameless_key_is_refused(prescriber_client):
    response = prescriber_client.post(reverse("api_key_list"), {"name": "  "})
    assert response.status_code == 200
    assert response.context["form"].errors == {"name": ["This field is required."]}
    assert not ApiKey.objects.exists()
