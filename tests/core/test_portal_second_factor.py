"""A prescriber (or a clinic's staff member) may turn on an authenticator app for the portal;
then every portal page asks for its code after the password, or for one of the one-time
recovery codes, which let them in when the phone is lost."""

import datetime
import re

import pytest
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.core.test_second_factor import pass_the_wait
from tests.factories import TEST_PASSWORD
from tests.signing_in import totp_code, wrong_code

pytestmark = pytest.mark.django_db

SECURITY = reverse("security")
APP = reverse("security_app")
VERIFY = reverse("second_factor_verify")
PATIENTS = reverse("patient_list")


def sign_in(client, user) -> None:
    response = client.post(reverse("login"), {"username": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 302


def pass_the_recovery_wait(user) -> None:
    """As if the throttling wait after the last wrong recovery code were over."""
    an_hour_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    StaticDevice.objects.filter(user=user).update(throttling_failure_timestamp=an_hour_ago)


def turn_on(client, user) -> list[str]:
    client.get(APP)
    device = TOTPDevice.objects.get(user=user)
    return client.post(APP, {"code": totp_code(device)}).context["codes"]


def test_a_prescriber_turns_the_app_on_and_is_asked_for_it_from_then_on(client, prescriber):
    user = prescriber.user
    sign_in(client, user)
    assert "password only" in client.get(SECURITY).content.decode()

    page = client.get(APP)
    device = TOTPDevice.objects.get(user=user)
    assert device.confirmed is False
    assert page.context["secret"].replace(" ", "") in device.config_url
    refused = client.post(APP, {"code": wrong_code(device)})
    assert refused.context["form"].errors["code"][0].startswith("This code is not correct.")
    device.refresh_from_db()
    assert device.confirmed is False

    pass_the_wait(device)
    codes = turn_on(client, user)
    assert len(codes) == 10 and all(re.fullmatch(r"[a-z2-7]{8}", code) for code in codes)
    device.refresh_from_db()
    assert device.confirmed is True
    assert client.get(PATIENTS).status_code == 200  # this session gave the code

    client.post(reverse("logout"))
    sign_in(client, user)
    assert client.get(PATIENTS)["Location"] == f"{VERIFY}?next=%2Fpatients%2F"
    assert client.get(SECURITY)["Location"] == f"{VERIFY}?next=%2Faccounts%2Fsecurity%2F"
    response = client.post(VERIFY, {"code": totp_code(device), "next": PATIENTS})
    assert response["Location"] == PATIENTS
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert client.get(PATIENTS).status_code == 200


def test_a_recovery_code_signs_in_once_when_the_phone_is_lost(client, prescriber):
    user = prescriber.user
    sign_in(client, user)
    codes = turn_on(client, user)
    client.post(reverse("logout"))

    sign_in(client, user)
    response = client.post(VERIFY, {"code": f" {codes[0].upper()} ", "next": PATIENTS})
    assert response["Location"] == PATIENTS
    assert client.get(PATIENTS).status_code == 200
    assert StaticToken.objects.filter(device__user=user).count() == 9
    client.post(reverse("logout"))

    sign_in(client, user)
    again = client.post(VERIFY, {"code": codes[0], "next": PATIENTS})
    assert again.context["form"].errors["code"][0].startswith("This code is not correct.")
    assert client.get(PATIENTS)["Location"].startswith(VERIFY)

    # With another code, they set the app up again on a new phone, with new codes.
    device = TOTPDevice.objects.get(user=user)
    pass_the_recovery_wait(user)
    assert client.post(VERIFY, {"code": codes[1], "next": PATIENTS})["Location"] == PATIENTS
    client.post(SECURITY, {"password": TEST_PASSWORD, "action": "turn_off"})
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()
    assert not StaticToken.objects.filter(device__user=user).exists()
    new_codes = turn_on(client, user)
    assert set(new_codes).isdisjoint(codes)


def test_new_codes_or_turning_off_need_the_password(client, prescriber):
    user = prescriber.user
    sign_in(client, user)
    codes = turn_on(client, user)

    for action in ("new_codes", "turn_off"):
        refused = client.post(SECURITY, {"password": "not it", "action": action})
        assert refused.context["form"].errors["password"] == ["The password is not correct."]
    assert sorted(StaticToken.objects.values_list("token", flat=True)) == sorted(codes)
    assert TOTPDevice.objects.filter(user=user, confirmed=True).count() == 1

    fresh = client.post(SECURITY, {"password": TEST_PASSWORD, "action": "new_codes"})
    assert sorted(StaticToken.objects.values_list("token", flat=True)) == sorted(
        fresh.context["codes"]
    )
    assert set(fresh.context["codes"]).isdisjoint(codes)


def test_pharmacy_staff_keep_the_admins_second_factor(client, pharmacist):
    client.force_login(pharmacist)
    assert client.get(SECURITY)["Location"] == reverse("admin:index")
    assert client.get(APP)["Location"] == reverse("admin:index")
    assert not TOTPDevice.objects.filter(user=pharmacist).exists()
