import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from orders.models import Patient
from tests.factories import PatientFactory, PrescriberFactory, clinic_of

pytestmark = pytest.mark.django_db

CREATE_URL = reverse("patient_create")


def patient_data(**overrides):
    data = {
        "first_name": "Elliot",
        "last_name": "Newpatient",
        "date_of_birth": "1979-02-14",
        "sex": "F",
        "phone": "(217) 555-0160",
        "address_line1": "77 Elm Street",
        "address_line2": "Apt 2",
        "city": "Springfield",
        "state": "IL",
        "postal_code": "62702",
        "allergies": "Penicillin (rash)",
        "current_medications": "Levothyroxine 75 mcg daily",
        "takes_opioids": "no",
    }
    data.update(overrides)
    return data


def test_prescriber_adds_a_patient_to_their_clinic(prescriber_client, prescriber):
    response = prescriber_client.post(CREATE_URL, patient_data(takes_opioids="yes"))

    patient = Patient.objects.get()
    assert response["Location"] == reverse("patient_detail", args=[patient.pk])
    assert patient.clinic == clinic_of(prescriber)
    assert patient.created_by == prescriber.user
    assert (patient.first_name, patient.last_name) == ("Elliot", "Newpatient")
    assert patient.date_of_birth == datetime.date(1979, 2, 14)
    assert patient.takes_opioids is True
    assert patient.history.get().history_user == prescriber.user


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("takes_opioids", "", "Answer yes or no: naltrexone cannot be given with opioids."),
        (
            "takes_opioids",
            "maybe",
            "Select a valid choice. maybe is not one of the available choices.",
        ),
        ("date_of_birth", "2999-01-01", "The date of birth cannot be in the future."),
        ("date_of_birth", "1850-01-01", "The date of birth is before 1900; please check the year."),
        ("date_of_birth", "14/02/1979", "Enter a valid date."),
        (
            "date_of_birth",
            "\uff11\uff19\uff17\uff19-02-14",
            "Enter the date in ordinary digits (0-9).",
        ),
        ("allergies", "", "This field is required."),
        ("sex", "", "This field is required."),
        ("postal_code", "6270", "Enter a zip code in the format XXXXX or XXXXX-XXXX."),
    ],
)
def test_bad_input_is_refused_on_the_field(prescriber_client, field, value, message):
    response = prescriber_client.post(CREATE_URL, patient_data(**{field: value}))

    assert response.status_code == 200
    assert response.context["form"].errors == {field: [message]}
    assert Patient.objects.count() == 0


def test_tomorrow_is_a_future_date_of_birth(prescriber_client):
    tomorrow = timezone.localdate() + datetime.timedelta(days=1)
    response = prescriber_client.post(CREATE_URL, patient_data(date_of_birth=tomorrow.isoformat()))
    assert response.context["form"].errors == {
        "date_of_birth": ["The date of birth cannot be in the future."]
    }


def test_opioid_question_has_no_preselected_answer(prescriber_client):
    page = prescriber_client.get(CREATE_URL).content.decode()
    assert page.count('name="takes_opioids"') == 2
    assert "checked" not in page


def test_likely_duplicate_is_warned_then_accepted_when_confirmed(prescriber_client, prescriber):
    existing = PatientFactory(
        clinic=clinic_of(prescriber),
        first_name="Elliot",
        last_name="NEWPATIENT",
        date_of_birth=datetime.date(1979, 2, 14),
    )

    warned = prescriber_client.post(CREATE_URL, patient_data())

    assert warned.status_code == 200
    (warning,) = warned.context["form"].non_field_errors()
    assert warning.startswith(
        "Your clinic already has a patient named Elliot NEWPATIENT born 02/14/1979"
    )
    assert reverse("patient_detail", args=[existing.pk]) in warning
    assert 'name="confirm_not_duplicate"' in warned.content.decode()
    assert Patient.objects.count() == 1

    confirmed = prescriber_client.post(CREATE_URL, patient_data(confirm_not_duplicate="on"))
    assert confirmed.status_code == 302
    assert Patient.objects.count() == 2


def test_same_name_in_another_clinic_is_not_a_duplicate(prescriber_client, other_prescriber):
    PatientFactory(
        clinic=clinic_of(other_prescriber),
        first_name="Elliot",
        last_name="Newpatient",
        date_of_birth=datetime.date(1979, 2, 14),
    )
    assert prescriber_client.post(CREATE_URL, patient_data()).status_code == 302


def test_edit_changes_only_what_changed(prescriber_client, patient, prescriber):
    url = reverse("patient_update", args=[patient.pk])
    form = prescriber_client.get(url).context["form"]
    data = {name: form[name].value() for name in form.Meta.fields}
    data.update(
        current_medications="Morphine ER 15 mg twice daily",
        takes_opioids="yes",
        date_of_birth=patient.date_of_birth.isoformat(),
    )

    response = prescriber_client.post(url, data)

    assert response["Location"] == reverse("patient_detail", args=[patient.pk])
    patient.refresh_from_db()
    assert patient.takes_opioids is True
    assert patient.current_medications == "Morphine ER 15 mg twice daily"
    latest = patient.history.latest("history_date")
    assert latest.history_user == prescriber.user
    assert {change.field for change in latest.diff_against(latest.prev_record).changes} == {
        "current_medications",
        "takes_opioids",
    }


def test_edit_form_shows_the_saved_opioid_answer(prescriber_client, prescriber):
    on_opioids = PatientFactory(clinic=clinic_of(prescriber), takes_opioids=True)
    form = prescriber_client.get(reverse("patient_update", args=[on_opioids.pk])).context["form"]
    assert form["takes_opioids"].value() == "yes"


def test_detail_warns_about_opioids(prescriber_client, prescriber):
    on_opioids = PatientFactory(clinic=clinic_of(prescriber), takes_opioids=True)
    page = prescriber_client.get(reverse("patient_detail", args=[on_opioids.pk])).content.decode()
    assert "Currently takes opioids." in page


@pytest.mark.parametrize(
    ("view", "post_status"),
    [("patient_detail", 405), ("patient_update", 404)],  # the detail page takes no POST at all
)
def test_another_clinics_patient_is_not_found(
    prescriber_client, other_prescriber, view, post_status
):
    theirs = PatientFactory(clinic=clinic_of(other_prescriber), first_name="Hidden")
    before = Patient.history.count()

    assert prescriber_client.get(reverse(view, args=[theirs.pk])).status_code == 404
    response = prescriber_client.post(reverse(view, args=[theirs.pk]), patient_data())
    assert response.status_code == post_status
    theirs.refresh_from_db()
    assert theirs.first_name == "Hidden"
    assert Patient.history.count() == before


def test_not_found_guess_is_logged_without_personal_data(
    prescriber_client, other_prescriber, caplog
):
    theirs = PatientFactory(
        clinic=clinic_of(other_prescriber), first_name="Secretname", last_name="Hiddenperson"
    )
    prescriber_client.get(reverse("patient_detail", args=[theirs.pk]))
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert "Secretname" not in logged and "Hiddenperson" not in logged
    assert str(theirs.date_of_birth) not in logged


def test_list_shows_only_own_clinic_and_searches(prescriber_client, prescriber, other_prescriber):
    PatientFactory(
        clinic=clinic_of(prescriber),
        first_name="Ada",
        last_name="Lovelace",
        date_of_birth=datetime.date(1960, 12, 10),
    )
    PatientFactory(clinic=clinic_of(prescriber), first_name="Grace", last_name="Hopper")
    PatientFactory(clinic=clinic_of(other_prescriber), first_name="Ada", last_name="Otherclinic")
    url = reverse("patient_list")

    def names(query):
        response = prescriber_client.get(url, {"q": query})
        return [patient.last_name for patient in response.context["patients"]]

    assert names("") == ["Hopper", "Lovelace"]
    assert names("ada") == ["Lovelace"]
    assert names("ada love") == ["Lovelace"]
    assert names("12/10/1960") == ["Lovelace"]
    assert names("1960-12-10") == ["Lovelace"]
    assert names("nobody") == []


def test_list_query_count_does_not_grow(prescriber_client, prescriber, django_assert_num_queries):
    PatientFactory.create_batch(3, clinic=clinic_of(prescriber))
    # session, user (+prescriber), their clinics, the recall banner, count, page of patients
    with django_assert_num_queries(6):
        prescriber_client.get(reverse("patient_list"))
    PatientFactory.create_batch(20, clinic=clinic_of(prescriber))
    with django_assert_num_queries(6):
        prescriber_client.get(reverse("patient_list"))


def test_dashboard_shows_clinic_patients_and_orders(
    prescriber_client, prescriber, other_prescriber, django_assert_num_queries
):
    mine = PatientFactory(clinic=clinic_of(prescriber), last_name="Mineonly")
    PatientFactory(clinic=clinic_of(other_prescriber), last_name="Notmine")
    # session, user+prescriber, their clinics, recall notices, drafts to sign, licences to
    # renew, refills due, the pharmacy's questions, patients, patient count, recent orders (no
    # orders: no schedules, no refill's steps), the recall banner
    with django_assert_num_queries(12):
        response = prescriber_client.get(reverse("home"))
    page = response.content.decode()
    assert clinic_of(prescriber).name in page
    assert "Mineonly" in page and "Notmine" not in page
    assert 'id="orders"' in page
    assert list(response.context["recent_patients"]) == [mine]


def test_pages_need_an_approved_prescriber(client, pharmacist, patient):
    client.force_login(pharmacist)
    for url in (reverse("patient_list"), reverse("patient_detail", args=[patient.pk]), CREATE_URL):
        assert client.get(url).status_code == 403


def test_any_approved_prescriber_of_the_clinic_sees_and_edits(client, patient):
    colleague = PrescriberFactory(clinic=patient.clinic)
    client.force_login(colleague.user)
    assert client.get(reverse("patient_detail", args=[patient.pk])).status_code == 200
    assert client.get(reverse("patient_update", args=[patient.pk])).status_code == 200


def test_not_found_page_is_the_portals_own(prescriber_client):
    response = prescriber_client.get(reverse("patient_detail", args=[999999]))
    assert response.status_code == 404
    assert "There is nothing here, or it belongs to another clinic." in response.content.decode()


def test_the_next_page_of_a_search_keeps_the_search(prescriber_client, prescriber):
    PatientFactory.create_batch(26, clinic=clinic_of(prescriber), last_name="Pagey")
    PatientFactory(clinic=clinic_of(prescriber), last_name="Other")

    # Every word must match (a word no invented name, email or phone number holds).
    page = prescriber_client.get(reverse("patient_list"), {"q": "Pagey  qzqzqzq"})
    assert page.context["paginator"].count == 0
    page = prescriber_client.get(reverse("patient_list"), {"q": "pagey"})

    assert page.context["paginator"].count == 26
    assert 'href="?q=pagey&amp;page=2">Next</a>' in page.content.decode()
    second = prescriber_client.get(reverse("patient_list"), {"q": "pagey", "page": "2"})
    assert [p.last_name for p in second.context["patients"]] == ["Pagey"]
