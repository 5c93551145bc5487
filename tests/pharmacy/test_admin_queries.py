"""Every changelist of the admin runs the same number of queries with 10 rows or 30: no query
per row (list_select_related, annotations), and no exact count of a large table."""

import datetime
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.audit import record_access
from core.models import AccessAction
from orders.dosing import DosageForm, Regimen, Step
from orders.models import Formulation, Order, OrderEvent
from pharmacy.models import Dispense, Recall, RecallNotice
from tests.factories import (
    BatchFactory,
    ClinicFactory,
    FormulationVersionFactory,
    IngredientLotFactory,
    PatientFactory,
    PrescriberFactory,
    StaffFactory,
    UserFactory,
    clinic_of,
    submit_order,
)
from tests.signing_in import verified_staff_login

pytestmark = pytest.mark.django_db

REGIMEN = Regimen(
    dosage_form=DosageForm.CAPSULE, steps=(Step(Decimal("1.5"), 30),), doses_per_day=1,
    quantity=Decimal("30"), days_supply=30, refills=1,
)  # fmt: skip


def make_world() -> dict:
    prescriber = PrescriberFactory()
    capsule = Formulation.objects.get(dosage_form="capsule", strength_mg=Decimal("1.5"))
    return {"prescriber": prescriber, "version": FormulationVersionFactory(formulation=capsule)}


@pytest.fixture
def world():
    return make_world()


def orders(world, count):
    for _ in range(count):
        patient = PatientFactory(clinic=clinic_of(world["prescriber"]), takes_opioids=False,
                                 current_medications="",
                                 date_of_birth=datetime.date(1970, 1, 1))  # fmt: skip
        order = submit_order(world["prescriber"], patient, REGIMEN)
        batch = BatchFactory(formulation_version=world["version"])
        Dispense.objects.create(order=order, line=order.lines().get(), batch=batch,
                                units=Decimal("30"), dispensed_by=batch.compounded_by)  # fmt: skip
        recall = Recall.objects.create(batch=batch, reason="Test", initiated_by=batch.compounded_by)
        RecallNotice.objects.create(recall=recall, clinic=order.clinic)


def lots(world, count):
    IngredientLotFactory.create_batch(count)


def people(world, count):
    PrescriberFactory.create_batch(count)
    StaffFactory.create_batch(count, group="Technician")
    ClinicFactory.create_batch(count)
    UserFactory.create_batch(count)


def access_events(world, count):
    """Orders, and each seen by its own staff user (the user filter lists each one)."""
    orders(world, count)
    for order in Order.objects.order_by("-pk")[:count]:
        request = RequestFactory().get("/")
        request.user = StaffFactory(group="Pharmacist")
        record_access(request, AccessAction.VIEWED_ORDER, order)
        record_access(request, AccessAction.VIEWED_PATIENT, order.prescription.patient)


def versions(world, count):
    for formulation in Formulation.objects.exclude(pk=world["version"].formulation_id)[:count]:
        FormulationVersionFactory(formulation=formulation, status="draft")


# changelist, how its rows are made, its query count (session, user, count, page, filters...;
# the prescribers' page also reads every row's clinics in one query)
CHANGELISTS = [
    ("orders_order", orders, 4), ("orders_prescription", orders, 4),
    ("orders_patient", orders, 4), ("pharmacy_batch", orders, 4),
    ("pharmacy_dispense", orders, 4), ("pharmacy_recall", orders, 7),
    ("pharmacy_ingredientlot", lots, 5), ("prescribers_prescriber", people, 6),
    ("prescribers_clinic", people, 5), ("core_user", people, 7),
    ("orders_formulationversion", versions, 5),
    # ... and the users who saw something, for the user filter
    ("core_accessevent", access_events, 5),
]  # fmt: skip


def queries(client, url) -> int:
    ContentType.objects.clear_cache()  # the same count whichever test ran before
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize(("model", "make", "expected"), CHANGELISTS,
                         ids=[m for m, *_ in CHANGELISTS])  # fmt: skip
def test_changelist_queries_do_not_grow_with_rows(client, world, model, make, expected):
    verified_staff_login(client, StaffFactory(is_superuser=True))
    url = reverse(f"admin:{model}_changelist")
    make(world, 3)
    assert queries(client, url) == expected
    make(world, 9)
    assert queries(client, url) == expected


def test_the_order_page_query_count_is_pinned(client, world):
    """Session, user, the user's groups and permissions (one query), the order with every
    related row the page shows (one query), the summary's prescriber licence for the patient's
    state and the prescription's previous fills (one query each), the catalogue for the
    bottles' beyond-use limits (two queries here, inside the test's transaction; cached in a
    running server), the content type (cached in a running server), and the access event the
    page writes (one INSERT, using that same content type).
    The count does not grow with the order's events, lines, dispenses, labels or emails."""
    orders(world, 1)
    verified_staff_login(client, StaffFactory(group="Pharmacist"))
    order = clinic_of(world["prescriber"]).orders.get()
    url = reverse("admin:orders_order_change", args=[order.pk])
    client.get(url)  # the first request on a connection also asks SQLite about JSON support
    assert queries(client, url) == 10
    for _ in range(5):
        OrderEvent.objects.create(order=order, to_status=order.status, note="More history")
    assert queries(client, url) == 10


def test_the_order_list_query_count_is_pinned_for_a_pharmacist(client, world):
    """Session, user, groups and permissions, the count (estimated above 10,000 rows on
    PostgreSQL, in the same one query) and the page of rows."""
    orders(world, 3)
    verified_staff_login(client, StaffFactory(group="Pharmacist"))
    url = reverse("admin:orders_order_changelist")
    assert queries(client, url) == 5
    assert queries(client, url + "?status__exact=submitted") == 5


@pytest.mark.parametrize(("page", "expected"), [("orders_patient", 7), ("orders_prescription", 7)])
def test_the_patient_and_prescription_pages_query_counts_are_pinned(client, world, page, expected):
    """Session, user, groups and permissions, the record with what it shows of its relations
    (the patient's clinic and creator; the prescription's patient and prescriber), the content
    type (cached in a running server: 6 there), one more table (the patient's clinic for its
    choice widget; the prescription's orders), and the access event the page writes (one
    INSERT). Before the access events the pages ran 7 and 8 queries: the relations now read
    with the record pay for the INSERT."""
    orders(world, 1)
    verified_staff_login(client, StaffFactory(group="Pharmacist"))
    order = clinic_of(world["prescriber"]).orders.select_related("prescription").get()
    record = order.prescription if page == "orders_prescription" else order.prescription.patient
    url = reverse(f"admin:{page}_change", args=[record.pk])
    client.get(url)  # the first request on a connection also asks SQLite about JSON support
    assert queries(client, url) == expected


def test_who_saw_this_record_query_count_is_pinned(client, world):
    """Session, user, groups and permissions, the count, the page of events (the patient's
    records found by subqueries in that one query) and the users of the user filter. The count
    does not grow with the events."""
    access_events(world, 2)
    patient = Order.objects.order_by("pk").last().prescription.patient
    verified_staff_login(client, StaffFactory(group="Pharmacist"))
    url = reverse("admin:core_accessevent_changelist") + f"?patient={patient.pk}"
    assert queries(client, url) == 6
    access_events(world, 10)
    assert queries(client, url) == 6
