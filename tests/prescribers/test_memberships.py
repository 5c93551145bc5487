"""Memberships: a prescriber may order for several clinics, one at a time. Every page, search
and list works for the clinic they act for, chosen at the top of the page and remembered;
another clinic's records answer 404 even to a prescriber who also belongs to it."""

import datetime
import uuid

import pytest
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse

from orders.models import Order
from prescribers.access import ACTING_CLINIC
from prescribers.models import Membership, MembershipStatus, Prescriber
from tests.factories import (
    TITRATION,
    ClinicFactory,
    MembershipFactory,
    PatientFactory,
    PrescriberFactory,
    order_form,
    submit_order,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def alder():
    return ClinicFactory(name="Alder Family Clinic")


@pytest.fixture
def birch():
    return ClinicFactory(name="Birch Dermatology")


@pytest.fixture
def locum(alder, birch):
    """A prescriber of both clinics."""
    prescriber = PrescriberFactory(clinic=alder)
    MembershipFactory(user=prescriber.user, clinic=birch)
    return prescriber


def patient_of(clinic, last_name):
    return PatientFactory(
        clinic=clinic, last_name=last_name, takes_opioids=False, current_medications="",
        date_of_birth=datetime.date(1975, 3, 9),
    )  # fmt: skip


@pytest.fixture
def records(locum, alder, birch):
    """A patient and an order at each clinic."""
    ash, beech = patient_of(alder, "Ashworth"), patient_of(birch, "Beechwood")
    return {
        "ash": ash, "beech": beech,
        "ash_order": submit_order(locum, ash, TITRATION),
        "beech_order": submit_order(locum, beech, TITRATION),
    }  # fmt: skip


def signed_in(prescriber) -> Client:
    client = Client()
    client.force_login(prescriber.user)
    return client


def listed_patients(client) -> list[str]:
    return [p.last_name for p in client.get(reverse("patient_list")).context["patients"]]


def listed_orders(client) -> list[str]:
    return [o.number for o in client.get(reverse("order_list")).context["orders"]]


def switch(client, clinic_id) -> list[str]:
    """Choose a clinic at the top of the page; the messages the next page shows."""
    response = client.post(reverse("clinic_switch"), {"clinic": str(clinic_id)})
    assert response.status_code == 302 and response["Location"] == reverse("home")
    return [(m.level, m.message) for m in messages.get_messages(response.wsgi_request)]


def test_a_prescriber_of_two_clinics_works_for_one_at_a_time(locum, alder, birch, records):
    client = signed_in(locum)

    # With no choice yet, the first clinic by name.
    home = client.get(reverse("home")).content.decode()
    assert 'id="clinic-switch"' in home
    assert f'<option value="{alder.pk}" selected>Alder Family Clinic</option>' in home
    assert f'<option value="{birch.pk}">Birch Dermatology</option>' in home
    assert listed_patients(client) == ["Ashworth"]
    assert listed_orders(client) == [records["ash_order"].number]
    search = client.get(reverse("patient_list"), {"q": "Beechwood"}).context["patients"]
    assert list(search) == []
    for name in ("patient_detail", "order_create"):
        url = reverse(name, args=[records["beech"].pk])
        assert client.get(url).status_code == 404
    beech_order = reverse("order_detail", args=[records["beech_order"].pk])
    assert client.get(beech_order).status_code == 404

    assert switch(client, birch.pk) == [
        (messages.SUCCESS, "You are working for Birch Dermatology.")
    ]

    assert listed_patients(client) == ["Beechwood"]
    assert listed_orders(client) == [records["beech_order"].number]
    assert client.get(beech_order).status_code == 200
    assert client.get(reverse("patient_detail", args=[records["ash"].pk])).status_code == 404
    home = client.get(reverse("home")).content.decode()
    assert f'<option value="{birch.pk}" selected>Birch Dermatology</option>' in home

    # An order for a patient of Birch's is Birch's.
    boxwood = patient_of(birch, "Boxwood")
    response = client.post(
        reverse("order_create", args=[boxwood.pk]),
        order_form(idempotency_key=str(uuid.uuid4())),
    )
    created = Order.objects.latest("pk")
    assert response["Location"] == reverse("order_detail", args=[created.pk])
    assert created.clinic == birch


def test_the_chosen_clinic_is_remembered_at_the_next_sign_in(locum, alder, birch):
    switch(signed_in(locum), birch.pk)
    assert Membership.objects.get(user=locum.user, clinic=birch).last_acted_at is not None

    later = signed_in(locum)  # a new session
    assert later.get(reverse("home")).context["portal_membership"].clinic == birch

    # In a session, the clinic chosen there wins over the one remembered.
    session = later.session
    session[ACTING_CLINIC] = alder.pk
    session.save()
    assert later.get(reverse("home")).context["portal_membership"].clinic == alder


@pytest.mark.parametrize("choice", ["other", "ended", "abc", "", "9" * 30])
def test_a_clinic_that_is_not_theirs_cannot_be_chosen(locum, alder, birch, choice):
    client = signed_in(locum)
    ended = ClinicFactory(name="Cedar Clinic")
    MembershipFactory(user=locum.user, clinic=ended, status=MembershipStatus.ENDED)
    chosen = {"other": ClinicFactory().pk, "ended": ended.pk}.get(choice, choice)
    before = list(Membership.objects.order_by("pk").values_list("pk", "last_acted_at"))

    assert switch(client, chosen) == [(messages.ERROR, "Choose one of your clinics.")]

    assert ACTING_CLINIC not in client.session
    assert list(Membership.objects.order_by("pk").values_list("pk", "last_acted_at")) == before
    assert client.get(reverse("home")).context["portal_membership"].clinic == alder


def test_an_ended_membership_closes_that_clinic(locum, alder, birch, records):
    client = signed_in(locum)
    switch(client, birch.pk)
    Membership.objects.filter(user=locum.user, clinic=birch).update(status=MembershipStatus.ENDED)

    # Back to the clinic they still belong to; Birch's records are gone from every page.
    assert listed_patients(client) == ["Ashworth"]
    assert client.get(reverse("patient_detail", args=[records["beech"].pk])).status_code == 404
    assert 'id="clinic-switch"' not in client.get(reverse("home")).content.decode()
    # Nor can Birch's patients be ordered for by calling the service directly (as a new
    # request would, with the person read again).
    with pytest.raises(PermissionDenied):
        submit_order(Prescriber.objects.get(pk=locum.pk), records["beech"], TITRATION)

    # With no clinic left, the portal is closed.
    Membership.objects.filter(user=locum.user).update(status=MembershipStatus.ENDED)
    assert client.get(reverse("patient_list")).status_code == 403


def test_the_page_reads_the_clinics_once(locum, records, django_assert_num_queries):
    client = signed_in(locum)
    # session, user and prescriber, the person's clinics, the recall banner, the patient count,
    # the page of them
    with django_assert_num_queries(6):
        client.get(reverse("patient_list"))
