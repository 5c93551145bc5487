"""A clinic's titration protocols: its prescribers name, change and remove them (the dose
rules refuse a protocol they would refuse on every order, on its field); the clinic's staff read
them; a new order starts from one, and the rules check that order as usual. Another clinic's
protocol is a 404 and changes nothing."""

import pytest
from django.urls import reverse

from orders.models import TitrationProtocol
from orders.protocols import protocol_save
from tests.factories import MembershipFactory, PatientFactory, clinic_of
from tests.orders.test_ordering import create_url

pytestmark = pytest.mark.django_db

LIST = reverse("protocol_list")
STANDARD = {
    "name": "Standard 1.5 \u2192 4.5 mg", "dosage_form": "capsule", "concentration_mg_per_ml": "",
    "steps": "1.5x14; 3 mg for 14 days, 4.5 x 30", "doses_per_day": "1",
    "time_of_day": "bedtime", "days_supply": "58", "refills": "2",
}  # fmt: skip


def saved() -> list[tuple]:
    return list(TitrationProtocol.objects.values_list(
        "clinic_id", "name", "dosage_form", "concentration_mg_per_ml", "steps", "doses_per_day",
        "time_of_day", "days_supply", "refills",
    ))  # fmt: skip


def make(prescriber, **fields) -> TitrationProtocol:
    data = {**STANDARD, "concentration_mg_per_ml": None, "doses_per_day": 1, "days_supply": 58,
            "refills": 2, **fields}  # fmt: skip
    return protocol_save(actor=prescriber.user, clinic_id=clinic_of(prescriber).pk, **data)


def test_a_prescriber_names_a_protocol_kept_in_the_schedules_own_spelling(
    prescriber_client, prescriber
):
    answer = prescriber_client.post(LIST, STANDARD)

    assert answer.status_code == 302
    assert saved() == [(clinic_of(prescriber).pk, "Standard 1.5 \u2192 4.5 mg", "capsule", None,
                        "1.5 x 14, 3 x 14, 4.5 x 30", 1, "bedtime", 58, 2)]  # fmt: skip
    page = prescriber_client.get(LIST).content.decode()
    assert "Capsule: 1.5 x 14, 3 x 14, 4.5 x 30, at bedtime" in page
    assert "58 days, 2 refills" in page
    protocol = TitrationProtocol.objects.get()
    assert [h.name for h in protocol.history.all()] == ["Standard 1.5 → 4.5 mg"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"steps": "1.5 x 28, 8 x 30"}, "steps", "8 mg"),
        ({"steps": "1.5 x 14, lots"}, "steps", '"lots" is not a step.'),
        ({"days_supply": "365", "steps": "4.5 x 365"}, "days_supply", "beyond-use date"),
        ({"name": "  "}, "name", "This field is required."),
    ],
)
def test_what_the_rules_refuse_is_refused_on_its_field_and_nothing_is_written(
    prescriber_client, change, field, message
):
    answer = prescriber_client.post(LIST, {**STANDARD, **change})

    assert answer.status_code == 200
    errors = answer.context["form"].errors
    assert list(errors) == [field]
    assert message in " ".join(errors[field]), errors
    assert saved() == []


def test_a_name_the_clinic_already_uses_is_refused_in_any_case(prescriber_client, prescriber):
    make(prescriber)
    before = saved()

    answer = prescriber_client.post(LIST, {**STANDARD, "name": "STANDARD 1.5 \u2192 4.5 MG"})

    assert answer.context["form"].errors == {
        "name": ["Your clinic already has a protocol named \u201cSTANDARD 1.5 \u2192 4.5 MG\u201d."]
    }
    assert saved() == before


def test_a_prescriber_changes_and_removes_a_protocol(prescriber_client, prescriber):
    protocol = make(prescriber)
    url = reverse("protocol_update", args=[protocol.pk])
    assert (
        prescriber_client.get(url).context["form"].initial["steps"] == "1.5 x 14, 3 x 14, 4.5 x 30"
    )

    sensitive = {"name": "Sensitive 0.5 mg steps", "steps": "0.5 x 7, 1 x 7, 1.5 x 16",
                 "days_supply": "30"}  # fmt: skip
    prescriber_client.post(url, {**STANDARD, **sensitive})

    protocol.refresh_from_db()
    assert (protocol.name, protocol.steps, protocol.days_supply) == (
        "Sensitive 0.5 mg steps", "0.5 x 7, 1 x 7, 1.5 x 16", 30,
    )  # fmt: skip
    assert protocol.history.count() == 2
    prescriber_client.post(reverse("protocol_delete", args=[protocol.pk]))
    assert saved() == []


def test_clinic_staff_read_the_protocols_but_change_none(client, prescriber):
    protocol = make(prescriber)
    nurse = MembershipFactory(clinic=clinic_of(prescriber), role="staff").user
    client.force_login(nurse)
    before = saved()

    page = client.get(LIST)
    assert page.status_code == 200
    assert "Standard 1.5 \u2192 4.5 mg" in page.content.decode()
    assert 'id="protocol-form"' not in page.content.decode()
    assert client.post(LIST, {**STANDARD, "name": "Mine"}).status_code == 403
    update = reverse("protocol_update", args=[protocol.pk])
    assert client.post(update, {**STANDARD, "name": "Mine"}).status_code == 403
    assert client.post(reverse("protocol_delete", args=[protocol.pk])).status_code == 403
    assert saved() == before


def test_another_clinics_protocol_is_not_found_and_not_offered(
    client, prescriber, other_prescriber
):
    theirs = make(other_prescriber, name="Theirs")
    before = saved()
    client.force_login(prescriber.user)

    assert client.get(reverse("protocol_update", args=[theirs.pk])).status_code == 404
    assert client.post(reverse("protocol_update", args=[theirs.pk]), STANDARD).status_code == 404
    assert client.post(reverse("protocol_delete", args=[theirs.pk])).status_code == 404
    assert saved() == before
    patient = PatientFactory(clinic=clinic_of(prescriber))
    page = client.get(create_url(patient), {"protocol": theirs.pk})
    assert page.context["form"].initial == {}
    assert "Theirs" not in page.content.decode()


def test_a_new_order_starts_from_a_protocol(prescriber_client, prescriber):
    protocol = make(prescriber)
    patient = PatientFactory(clinic=clinic_of(prescriber))

    page = prescriber_client.get(create_url(patient), {"protocol": protocol.pk})

    form = page.context["form"]
    assert {name: str(form[name].value()) for name in (
        "dosage_form", "concentration_mg_per_ml", "steps", "doses_per_day", "time_of_day",
        "quantity", "days_supply", "refills",
    )} == {
        "dosage_form": "capsule", "concentration_mg_per_ml": "",
        "steps": "1.5 x 14, 3 x 14, 4.5 x 30", "doses_per_day": "1", "time_of_day": "bedtime",
        "quantity": "58", "days_supply": "58", "refills": "2",
    }  # fmt: skip
    assert "Filled from \u201cStandard 1.5 \u2192 4.5 mg\u201d" in page.content.decode()
