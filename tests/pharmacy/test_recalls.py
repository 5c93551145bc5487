"""Recalls: a batch or an ingredient lot traced to every dispense, order, patient, prescriber
and clinic; a pending notice to each clinic; the refusals that change nothing; the CSV export
and the admin pages and actions."""

import csv
import datetime
import io
import re
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import path, reverse
from django.utils import timezone

from config import urls as portal_urls
from core import sessions
from core.models import AccessAction, AccessEvent, User
from core.roles import is_pharmacist
from orders.dosing import DosageForm, Regimen, Step
from orders.models import (
    FormulationVersion,
    FormulationVersionStatus,
    Order,
    OrderEvent,
    OrderEventKind,
    OrderKind,
    OrderQuantity,
    OrderStatus,
    Prescription,
)
from orders.services import order_transition, rx_number_for
from orders.workflow import allowed_moves
from pharmacy.admin_recalls import RecallAdmin, recall_batches, recall_lots
from pharmacy.admin_site import PharmacyAdminSite
from pharmacy.batches import batch_recalled_lots
from pharmacy.context_processors import recall_banner
from pharmacy.dispensing import dispense_allocate
from pharmacy.fulfilment import order_final_check
from pharmacy.labels import label_barcodes, label_pages
from pharmacy.models import (
    Batch,
    BatchEvent,
    BatchIngredient,
    BatchStatus,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Dispense,
    IngredientLot,
    IngredientLotEvent,
    LotStatus,
    PulledDispense,
    Recall,
    RecallBatch,
    RecallNotice,
    RecallReplacement,
)
from pharmacy.outbox import delivery_send
from pharmacy.recalls import (
    batch_recall,
    ingredient_lot_recall,
    recall_notice_acknowledge,
    recall_replacements_create,
)
from pharmacy.selectors import CSV_HEADER, recall_impact, recall_impact_csv
from tests.factories import (
    BatchFactory,
    ClinicFactory,
    FormulationVersionFactory,
    IngredientLotFactory,
    MembershipFactory,
    PatientFactory,
    PrescriberFactory,
    clinic_of,
    submit_order,
)
from tests.pharmacy.test_labels import verify
from tests.signing_in import verified_staff_login

B, L = BatchStatus, LotStatus
REASON = "Supplier reports a potency failure of the naltrexone lot."
REGIMEN = Regimen(
    dosage_form=DosageForm.CAPSULE, steps=(Step(Decimal("1.5"), 30),), doses_per_day=1,
    quantity=Decimal("30"), days_supply=30, refills=0,
)  # fmt: skip


# The Batch and IngredientLot admins of pharmacy/admin.py attach the recall actions; these
# stand-ins do the same on a site of their own, so the actions are tested on their own.
class BatchActionsAdmin(admin.ModelAdmin):
    actions = [recall_batches]

    def has_recall_permission(self, request):
        return is_pharmacist(request.user)


class LotActionsAdmin(admin.ModelAdmin):
    actions = [recall_lots]

    def has_recall_permission(self, request):
        return is_pharmacist(request.user)


action_site = PharmacyAdminSite(name="recall_actions")
action_site.register(Batch, BatchActionsAdmin)
action_site.register(IngredientLot, LotActionsAdmin)
action_site.register(Recall, RecallAdmin)

# The portal's URLs, with the admin's computed now that the recall admin is registered.
urlpatterns = [
    *(pattern for pattern in portal_urls.urlpatterns if str(pattern.pattern) != "admin/"),
    path("admin/", admin.site.urls),
    path("recall-actions/", action_site.urls),
]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


def grant(user: User, *codenames: str) -> User:
    """Permissions given directly, whatever the staff groups' migrations grant by now."""
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="pharmacy", codename__in=codenames)
    )
    return User.objects.get(pk=user.pk)  # a fresh object: has_perm caches


def order_for(prescriber, *, patient_name: tuple[str, str]) -> Order:
    first_name, last_name = patient_name
    patient = PatientFactory(
        clinic=clinic_of(prescriber), first_name=first_name, last_name=last_name,
        date_of_birth=datetime.date(1970, 5, 5), created_by=prescriber.user,
    )  # fmt: skip
    return submit_order(prescriber, patient, REGIMEN)


def make_batch(**fields) -> Batch:
    """A batch of the one approved version of the 1.5 mg capsule (one approved at a time)."""
    version = (
        FormulationVersion.objects.filter(
            status=FormulationVersionStatus.APPROVED,
            formulation__dosage_form="capsule",
            formulation__strength_mg=Decimal("1.5"),
        ).first()
        or FormulationVersionFactory()
    )
    return BatchFactory(formulation_version=version, **fields)


def dispense(order: Order, batch: Batch, units: str, *, by: User) -> Dispense:
    return Dispense.objects.create(
        order=order, line=order.lines().first(), batch=batch, units=Decimal(units),
        dispensed_by=by,
    )  # fmt: skip


def prescriber_named(first_name: str, last_name: str, clinic_name: str):
    return PrescriberFactory(
        clinic=ClinicFactory(name=clinic_name), user__first_name=first_name,
        user__last_name=last_name,
    )  # fmt: skip


def snapshot() -> dict:
    """Everything a recall writes, to prove that a refused one wrote nothing."""
    return {
        "recalls": Recall.objects.count(),
        "notices": RecallNotice.objects.count(),
        "batch events": BatchEvent.objects.count(),
        "lot events": IngredientLotEvent.objects.count(),
        "batches": dict(Batch.objects.values_list("pk", "status")),
        "lots": dict(IngredientLot.objects.values_list("pk", "status")),
    }


@pytest.fixture
def ann():
    return prescriber_named("Ann", "Alder", "Alder Family Clinic")


@pytest.fixture
def ben():
    return prescriber_named("Ben", "Birch", "Birch Pain Center")


@pytest.fixture
def batch():
    return make_batch(lot_number="NX261101-C1.5-01")


@pytest.fixture
def two_clinics(ann, ben, batch, technician):
    """Three orders of two clinics dispensed from `batch` (one order in two dispenses), and an
    order of a third clinic dispensed from another batch."""
    zoe = order_for(ann, patient_name=("Zoe", "Young"))
    max_ = order_for(ann, patient_name=("Max", "Adams"))
    lea = order_for(ben, patient_name=("Lea", "Moss"))
    dispenses = [
        dispense(zoe, batch, "20", by=technician),
        dispense(zoe, batch, "10", by=technician),
        dispense(max_, batch, "30", by=technician),
        dispense(lea, batch, "30", by=technician),
    ]
    elsewhere = prescriber_named("Cy", "Cedar", "Cedar Health")
    dispense(order_for(elsewhere, patient_name=("Ida", "Cole")), make_batch(), "30",
             by=technician)  # fmt: skip
    return {"orders": [zoe, max_, lea], "dispenses": dispenses, "elsewhere": elsewhere}


# --- Batch recall -------------------------------------------------------------------------------


def test_batch_recall_owes_a_notice_to_each_clinic_that_received_units(
    two_clinics, batch, pharmacist, ann, ben
):
    recall = batch_recall(batch=batch, actor=pharmacist, reason=f"  {REASON} ")

    batch.refresh_from_db()
    assert batch.status == B.RECALLED
    event = batch.events.get()
    assert (event.actor, event.from_status, event.to_status, event.note) == (
        pharmacist, B.RELEASED, B.RECALLED, f"{REASON} Quarantined: 100 capsules.",
    )  # fmt: skip
    assert (recall.batch, recall.ingredient_lot, recall.reason, recall.initiated_by) == (
        batch, None, REASON, pharmacist,
    )  # fmt: skip
    notices = list(recall.notices.order_by("clinic__name"))
    assert [(n.clinic, n.status) for n in notices] == [
        (clinic_of(ann), RecallNotice.Status.PENDING),
        (clinic_of(ben), RecallNotice.Status.PENDING),
    ]  # fmt: skip


def test_impact_lists_everything_the_batch_reached_exactly_once(
    two_clinics, batch, pharmacist, ann, ben
):
    recall = batch_recall(batch=batch, actor=pharmacist, reason=REASON)

    impact = recall_impact(recall)

    zoe, max_, lea = two_clinics["orders"]
    assert impact.batches == [batch]
    assert impact.unreleased_batches == []
    assert [d.pk for d in impact.dispenses] == [d.pk for d in two_clinics["dispenses"]]
    assert impact.orders == [zoe, max_, lea]
    assert [str(p) for p in impact.patients] == ["Adams, Max", "Moss, Lea", "Young, Zoe"]
    assert impact.prescribers == [ann, ben]
    assert impact.clinics == [clinic_of(ann), clinic_of(ben)]
    assert [n.clinic for n in impact.notices] == [clinic_of(ann), clinic_of(ben)]
    assert impact.units_dispensed == Decimal("90")
    assert impact.counts == {
        "batches": 1, "dispenses": 4, "orders": 3, "patients": 3, "prescribers": 2, "clinics": 2,
    }  # fmt: skip


def test_a_batch_never_dispensed_is_recalled_with_no_notice(batch, pharmacist):
    recall = batch_recall(batch=batch, actor=pharmacist, reason=REASON)

    assert recall.notices.count() == 0
    assert recall_impact(recall).counts == {
        "batches": 1, "dispenses": 0, "orders": 0, "patients": 0, "prescribers": 0, "clinics": 0,
    }  # fmt: skip


@pytest.mark.parametrize("status", list(B))
def test_batch_recall_matrix(pharmacist, status):
    """Released and quarantined batches can be recalled; any other status is refused as is."""
    batch = make_batch(status=status)
    before = snapshot()
    if status in (B.RELEASED, B.QUARANTINED):
        batch_recall(batch=batch, actor=pharmacist, reason=REASON)
        batch.refresh_from_db()
        assert batch.status == B.RECALLED
        assert batch.events.get().from_status == status
    else:
        label = status.label.lower()
        with pytest.raises(ValidationError, match=f"A batch that is {label} cannot be recalled"):
            batch_recall(batch=batch, actor=pharmacist, reason=REASON)
        assert snapshot() == before


@pytest.mark.parametrize("status", list(L))
def test_ingredient_lot_recall_matrix(pharmacist, status):
    lot = IngredientLotFactory(status=status)
    before = snapshot()
    if status in (L.RELEASED, L.QUARANTINE):
        ingredient_lot_recall(lot=lot, actor=pharmacist, reason=REASON)
        lot.refresh_from_db()
        assert lot.status == L.RECALLED
        assert lot.events.get().from_status == status
    else:
        label = status.label.lower()
        with pytest.raises(ValidationError, match=f"lot that is {label} cannot be recalled"):
            ingredient_lot_recall(lot=lot, actor=pharmacist, reason=REASON)
        assert snapshot() == before


# --- Ingredient lot recall ----------------------------------------------------------------------


def test_ingredient_lot_recall_cascades_to_released_batches_and_lists_unreleased_ones(
    pharmacist, technician, ann, ben
):
    lot = IngredientLotFactory(lot_number="NX-2299")
    other_lot = IngredientLotFactory(lot_number="MCC-0042")
    made = {
        status: make_batch(lot_number=f"NX-{i}-{status}", status=status)
        for i, status in enumerate(
            [B.RELEASED, B.QUARANTINED, B.AWAITING_QC, B.IN_PROGRESS, B.REJECTED]
        )
    }
    for batch in made.values():
        BatchIngredient.objects.create(batch=batch, lot=lot, amount=Decimal("150"))
        BatchIngredient.objects.create(batch=batch, lot=other_lot, amount=Decimal("9000"))
    unrelated = make_batch(lot_number="NX-unrelated")
    BatchIngredient.objects.create(batch=unrelated, lot=other_lot, amount=Decimal("9000"))
    dispense(order_for(ann, patient_name=("Zoe", "Young")), made[B.RELEASED], "30", by=technician)
    dispense(order_for(ben, patient_name=("Lea", "Moss")), made[B.QUARANTINED], "30",
             by=technician)  # fmt: skip
    elsewhere = prescriber_named("Cy", "Cedar", "Cedar Health")
    dispense(order_for(elsewhere, patient_name=("Ida", "Cole")), unrelated, "30", by=technician)

    recall = ingredient_lot_recall(lot=lot, actor=pharmacist, reason=REASON)

    lot.refresh_from_db()
    assert lot.status == L.RECALLED
    assert lot.events.get().note == REASON
    statuses = dict(Batch.objects.values_list("lot_number", "status"))
    assert statuses == {
        "NX-0-released": B.RECALLED, "NX-1-quarantined": B.RECALLED,
        "NX-2-awaiting_qc": B.AWAITING_QC, "NX-3-in_progress": B.IN_PROGRESS,
        "NX-4-rejected": B.REJECTED, "NX-unrelated": B.RELEASED,
    }  # fmt: skip
    note = (
        f"Made from recalled ingredient lot {lot} ({lot.manufacturer}): {REASON} "
        "Quarantined: 100 capsules."
    )
    assert list(BatchEvent.objects.values_list("batch__lot_number", "from_status", "note")) == [
        ("NX-0-released", B.RELEASED, note), ("NX-1-quarantined", B.QUARANTINED, note),
    ]  # fmt: skip
    assert (recall.ingredient_lot, recall.batch) == (lot, None)
    assert [n.clinic for n in recall.notices.order_by("clinic__name")] == [
        clinic_of(ann),
        clinic_of(ben),
    ]
    assert other_lot.recalls.count() == 0

    impact = recall_impact(recall)
    assert [b.lot_number for b in impact.batches] == [
        "NX-0-released", "NX-1-quarantined", "NX-2-awaiting_qc", "NX-3-in_progress",
        "NX-4-rejected",
    ]  # fmt: skip
    assert [b.lot_number for b in impact.unreleased_batches] == [
        "NX-2-awaiting_qc", "NX-3-in_progress",
    ]  # fmt: skip
    assert impact.clinics == [clinic_of(ann), clinic_of(ben)]
    assert impact.prescribers == [ann, ben]
    assert [str(p) for p in impact.patients] == ["Moss, Lea", "Young, Zoe"]
    assert impact.counts == {
        "batches": 5, "dispenses": 2, "orders": 2, "patients": 2, "prescribers": 2, "clinics": 2,
    }  # fmt: skip
    # Those not released yet can never be released now.
    assert batch_recalled_lots(made[B.AWAITING_QC]) == [lot]
    assert batch_recalled_lots(unrelated) == []


def test_lot_recall_also_notifies_clinics_of_a_batch_recalled_before(
    pharmacist, technician, ann, batch
):
    """A batch recalled on its own stays recalled (no second event), but the lot's recall is a
    new recall with its own reason: its clinics are owed a notice of it too."""
    lot = IngredientLotFactory()
    BatchIngredient.objects.create(batch=batch, lot=lot, amount=Decimal("150"))
    dispense(order_for(ann, patient_name=("Zoe", "Young")), batch, "30", by=technician)
    batch_recall(batch=batch, actor=pharmacist, reason="Capsule weight out of range.")

    recall = ingredient_lot_recall(lot=lot, actor=pharmacist, reason=REASON)

    assert batch.events.count() == 1
    assert [n.clinic for n in recall.notices.all()] == [clinic_of(ann)]
    assert RecallNotice.objects.count() == 2


# --- Refusals change nothing --------------------------------------------------------------------


@pytest.fixture
def lot_with_batch(batch, two_clinics):
    lot = IngredientLotFactory()
    BatchIngredient.objects.create(batch=batch, lot=lot, amount=Decimal("150"))
    return lot


def recall_batch(*, batch, lot, actor, reason):
    return batch_recall(batch=batch, actor=actor, reason=reason)


def recall_lot(*, batch, lot, actor, reason):
    return ingredient_lot_recall(lot=lot, actor=actor, reason=reason)


@pytest.mark.parametrize("recall", [recall_batch, recall_lot])
def test_a_technician_may_not_recall(recall, batch, lot_with_batch, technician):
    before = snapshot()

    with pytest.raises(PermissionDenied, match="Only a pharmacist may start a recall"):
        recall(batch=batch, lot=lot_with_batch, actor=technician, reason=REASON)

    assert snapshot() == before


@pytest.mark.parametrize("recall", [recall_batch, recall_lot])
@pytest.mark.parametrize("reason", ["", "   \n"])
def test_the_reason_is_required(recall, reason, batch, lot_with_batch, pharmacist):
    before = snapshot()

    with pytest.raises(ValidationError, match=r"Write the reason for the recall\."):
        recall(batch=batch, lot=lot_with_batch, actor=pharmacist, reason=reason)

    assert snapshot() == before


@pytest.mark.parametrize(
    ("recall", "message"),
    [
        (recall_batch, "A batch that is recalled cannot be recalled."),
        (recall_lot, "An ingredient lot that is recalled cannot be recalled."),
    ],
)
def test_recalling_twice_is_refused(recall, message, batch, lot_with_batch, pharmacist):
    recall(batch=batch, lot=lot_with_batch, actor=pharmacist, reason=REASON)
    before = snapshot()

    with pytest.raises(ValidationError) as refused:
        recall(batch=batch, lot=lot_with_batch, actor=pharmacist, reason=REASON)

    assert refused.value.messages == [message]
    assert snapshot() == before


# --- Query count and CSV ------------------------------------------------------------------------


@pytest.mark.parametrize("orders", [1, 6])
def test_impact_query_count_does_not_grow_with_dispenses(
    orders, batch, pharmacist, technician, ann, ben, django_assert_num_queries
):
    for i in range(orders):
        prescriber = ann if i % 2 else ben
        order = order_for(prescriber, patient_name=(f"P{i}", f"Patient{i}"))
        dispense(order, batch, "10", by=technician)
        dispense(order, batch, "20", by=technician)
    recall = Recall.objects.get(pk=batch_recall(batch=batch, actor=pharmacist, reason=REASON).pk)

    with django_assert_num_queries(3):  # batches, dispenses with all they reach, notices
        impact = recall_impact(recall)
        for item in impact.dispenses:
            str(item.batch), item.order.number, str(item.order.prescription.patient)
            str(item.order.prescription.prescriber), str(item.order.clinic)
        [str(notice.clinic) for notice in impact.notices]

    assert impact.counts["dispenses"] == 2 * orders


def test_csv_has_the_header_and_one_row_per_dispense(settings, two_clinics, batch, pharmacist, ann):
    settings.TIME_ZONE = "America/Chicago"
    first = two_clinics["dispenses"][0]
    Dispense.objects.filter(pk=first.pk).update(
        dispensed_at=datetime.datetime(2026, 11, 20, 15, 30, tzinfo=datetime.UTC)
    )
    recall = batch_recall(batch=batch, actor=pharmacist, reason=REASON)

    rows = list(csv.reader(io.StringIO(recall_impact_csv(recall))))

    assert rows[0] == CSV_HEADER == [
        "batch lot", "order number", "dispensed at", "units", "patient name",
        "patient date of birth", "prescriber", "prescriber NPI", "clinic", "clinic phone",
        "clinic label email",
    ]  # fmt: skip
    assert len(rows) == 1 + 4
    assert rows[1] == [
        "NX261101-C1.5-01", first.order.number, "2026-11-20 09:30", "20", "Zoe Young",
        "1970-05-05", "Ann Alder, MD", ann.npi, "Alder Family Clinic", "(217) 555-0142",
        clinic_of(ann).label_email,
    ]  # fmt: skip
    assert [row[1] for row in rows[1:]] == [d.order.number for d in two_clinics["dispenses"]]


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(batch, pharmacist, technician, ann):
    order = order_for(ann, patient_name=('=HYPERLINK("http://evil.test")', "Smith"))
    dispense(order, batch, "30", by=technician)
    recall = batch_recall(batch=batch, actor=pharmacist, reason=REASON)

    row = list(csv.reader(io.StringIO(recall_impact_csv(recall))))[1]

    assert row[4] == '\'=HYPERLINK("http://evil.test") Smith'


# --- Admin --------------------------------------------------------------------------------------


@pytest.fixture
def recall(two_clinics, batch, pharmacist):
    return batch_recall(batch=batch, actor=pharmacist, reason=REASON)


def test_technicians_are_not_given_the_recall_export(technician):
    """What the Technician group gets from the migrations: no right to see recalls."""
    assert not technician.has_perm("pharmacy.view_recall")


def test_csv_export_for_a_pharmacist(client, pharmacist, recall):
    verified_staff_login(client, grant(pharmacist, "view_recall"))

    response = client.get(reverse("admin:pharmacy_recall_csv", args=[recall.pk]))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="recall-{recall.pk}.csv"'
    assert "no-store" in response["Cache-Control"]  # the admin's never_cache
    assert response.content.decode() == recall_impact_csv(recall)


def test_csv_export_refused_to_a_technician_and_to_strangers(client, technician, recall):
    url = reverse("admin:pharmacy_recall_csv", args=[recall.pk])

    assert client.get(url).status_code == 302  # not logged in: to the admin's login page
    verified_staff_login(client, technician)
    assert client.get(url).status_code == 403


def test_csv_export_of_no_such_recall_is_404(client, superuser):
    verified_staff_login(client, superuser)
    assert client.get(reverse("admin:pharmacy_recall_csv", args=["999999"])).status_code == 404
    assert client.get(reverse("admin:pharmacy_recall_csv", args=["x"])).status_code == 404


def test_recall_page_shows_the_impact_and_cannot_be_changed(client, pharmacist, recall, ann, ben):
    verified_staff_login(client, grant(pharmacist, "view_recall"))

    page = client.get(reverse("admin:pharmacy_recall_change", args=[recall.pk]))

    assert page.status_code == 200
    assert page.context["impact"].counts["clinics"] == 2
    html = page.content.decode()
    export = reverse("admin:pharmacy_recall_csv", args=[recall.pk])
    assert f'href="{export}"' in html and "Export CSV" in html
    for text in ("Alder Family Clinic", "Birch Pain Center", "Young, Zoe", "Adams, Max",
                 "Moss, Lea", ann.npi, ben.npi, "NX261101-C1.5-01"):  # fmt: skip
        assert text in html
    assert client.post(reverse("admin:pharmacy_recall_change", args=[recall.pk]),
                       {"reason": "changed"}).status_code == 403  # fmt: skip
    assert client.get(reverse("admin:pharmacy_recall_add")).status_code == 403
    assert client.get(reverse("admin:pharmacy_recall_delete", args=[recall.pk])).status_code == 403
    assert Recall.objects.get().reason == REASON


def test_recall_list_counts_notices_as_their_emails_are_sent_and_clinics_confirm(
    client, settings, pharmacist, recall, ben
):
    """A notice is sent when its email is (as Deliveries shows it), and confirmed when the
    clinic says its patients were told."""
    settings.OUTBOX_EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    verified_staff_login(client, grant(pharmacist, "view_recall"))
    alder = RecallNotice.objects.get(clinic__name="Alder Family Clinic")
    assert delivery_send(delivery_id=Delivery.objects.get(recall_notice=alder).pk) is True
    recall_notice_acknowledge(notice=notice_of(recall, ben), actor=ben.user)

    page = client.get(reverse("admin:pharmacy_recall_changelist"))

    assert page.status_code == 200
    [row] = page.context["cl"].result_list
    assert (row.notice_total, row.notices_pending, row.notices_unconfirmed) == (2, 1, 1)
    alder.refresh_from_db()
    assert alder.status == RecallNotice.Status.SENT
    assert "batch NX261101-C1.5-01" in page.content.decode()
    detail = client.get(reverse("admin:pharmacy_recall_change", args=[recall.pk]))
    rows = {state["id"]: state for _, state in detail.context["notice_rows"]}
    assert rows[alder.pk]["email"].startswith("Sent ")
    assert rows[notice_of(recall, ben).pk]["email"] == "Pending"


# --- Admin actions (on the stand-in Batch and IngredientLot admins) ------------------------------


def run_action(client, model: str, action: str, objects, **extra):
    return client.post(
        reverse(f"recall_actions:pharmacy_{model}_changelist"),
        {"action": action, ACTION_CHECKBOX_NAME: [o.pk for o in objects], **extra},
    )


@pytest.fixture
def pharmacist_with_rights(pharmacist):
    return grant(pharmacist, "view_batch", "view_ingredientlot", "view_recall")


def test_recall_action_asks_for_the_reason_then_opens_the_recall(
    client, pharmacist_with_rights, two_clinics, batch
):
    verified_staff_login(client, pharmacist_with_rights)
    before = snapshot()

    page = run_action(client, "batch", "recall_batches", [batch])

    assert page.status_code == 200
    assert page.templates[0].name == "admin/pharmacy/recall/reason.html"
    assert "NX261101-C1.5-01" in page.content.decode()
    assert snapshot() == before
    page = run_action(client, "batch", "recall_batches", [batch], _confirmed="1", reason=" ")
    assert page.templates[0].name == "admin/pharmacy/recall/reason.html"
    assert page.context["form"].errors == {"reason": ["This field is required."]}
    assert snapshot() == before

    done = run_action(client, "batch", "recall_batches", [batch], _confirmed="1", reason=REASON)

    recall = Recall.objects.get()
    assert done.status_code == 302
    assert done["Location"] == reverse("recall_actions:pharmacy_recall_change", args=[recall.pk])
    assert (recall.batch, recall.reason) == (batch, REASON)
    assert recall.initiated_by == pharmacist_with_rights
    assert recall.notices.count() == 2


def test_recall_action_reports_refusals_and_recalls_the_rest(client, pharmacist_with_rights,
                                                             batch):  # fmt: skip
    verified_staff_login(client, pharmacist_with_rights)
    in_progress = make_batch(lot_number="NX261102-C1.5-01", status=B.IN_PROGRESS)

    response = run_action(client, "batch", "recall_batches", [batch, in_progress],
                          _confirmed="1", reason=REASON)  # fmt: skip

    assert response.status_code == 302
    messages = [str(m) for m in client.get(response["Location"]).context["messages"]]
    assert messages == [
        "NX261102-C1.5-01: A batch that is in progress cannot be recalled.",
        "1 batch recalled.",
        "0 clinic notices are waiting to be sent.",
    ]
    assert list(Recall.objects.values_list("batch__lot_number", flat=True)) == [batch.lot_number]


def test_lot_recall_action(client, pharmacist_with_rights, lot_with_batch, batch):
    verified_staff_login(client, pharmacist_with_rights)

    page = run_action(client, "ingredientlot", "recall_lots", [lot_with_batch])
    assert "used in 1 batch" in page.content.decode()
    done = run_action(client, "ingredientlot", "recall_lots", [lot_with_batch], _confirmed="1",
                      reason=REASON)  # fmt: skip

    recall = Recall.objects.get()
    assert done["Location"] == reverse("recall_actions:pharmacy_recall_change", args=[recall.pk])
    assert recall.ingredient_lot == lot_with_batch
    batch.refresh_from_db()
    assert batch.status == B.RECALLED


def test_recall_actions_are_not_offered_to_a_technician(client, technician, batch):
    verified_staff_login(client, grant(technician, "view_batch"))

    page = client.get(reverse("recall_actions:pharmacy_batch_changelist"))
    assert page.status_code == 200
    action_form = page.context["action_form"]
    offered = dict(action_form.fields["action"].choices) if action_form else {}
    assert "recall_batches" not in offered

    run_action(client, "batch", "recall_batches", [batch], _confirmed="1", reason=REASON)
    batch.refresh_from_db()
    assert batch.status == B.RELEASED
    assert Recall.objects.count() == 0


# --- The clinic's side: the portal --------------------------------------------------------------
# A recall reaches the clinic's portal: the dashboard leads with it until a member of the clinic
# confirms that its patients were told; the notice page lists only that clinic's patients; the
# confirmation is recorded once, with who and when, and shows on the pharmacy's recall page.


def notice_of(recall, prescriber) -> RecallNotice:
    return recall.notices.get(clinic=clinic_of(prescriber))


def test_the_dashboard_leads_with_the_recall_until_the_clinic_confirms(client, recall, ann):
    client.force_login(ann.user)
    notice = notice_of(recall, ann)

    page = client.get(reverse("home"))
    assert list(page.context["recall_notices"]) == [notice]
    html = page.content.decode()
    assert f'href="{reverse("recall_notice_detail", args=[notice.pk])}"' in html
    assert "Recall of batch NX261101-C1.5-01" in html

    answer = client.post(reverse("recall_notice_detail", args=[notice.pk]))

    assert answer.status_code == 302
    notice.refresh_from_db()
    assert (notice.acknowledged_by, notice.acknowledged_at is not None) == (ann.user, True)
    assert list(client.get(reverse("home")).context["recall_notices"]) == []
    listed = client.get(reverse("recall_notice_list")).content.decode()
    assert f"confirmed by {ann.user.get_full_name()}" in listed


def test_the_notice_page_lists_the_clinics_own_patients_only_and_is_an_access_event(
    client, recall, ann, two_clinics
):
    client.force_login(ann.user)
    notice = notice_of(recall, ann)

    page = client.get(reverse("recall_notice_detail", args=[notice.pk]))

    assert page.status_code == 200
    rows = [(d.order.number, d.order.prescription.patient.last_name, str(d.units))
            for d in page.context["dispenses"]]  # fmt: skip
    zoe, max_, _lea = two_clinics["orders"]
    assert rows == [(zoe.number, "Young", "20.00"), (zoe.number, "Young", "10.00"),
                    (max_.number, "Adams", "30.00")]  # fmt: skip
    html = page.content.decode()
    assert "Young, Zoe" in html and "Adams, Max" in html
    assert "Moss" not in html  # Ben's clinic's patient
    assert REASON in html
    event = AccessEvent.objects.get(user=ann.user)
    assert (event.action, event.object_id) == (AccessAction.VIEWED_RECALL, recall.pk)


def test_another_clinics_notice_is_a_404_and_changes_nothing(client, recall, ann, ben):
    client.force_login(ann.user)
    bens = notice_of(recall, ben)

    assert client.get(reverse("recall_notice_detail", args=[bens.pk])).status_code == 404
    assert client.post(reverse("recall_notice_detail", args=[bens.pk])).status_code == 404

    bens.refresh_from_db()
    assert (bens.acknowledged_by, bens.acknowledged_at) == (None, None)
    assert not AccessEvent.objects.exists()


def test_clinic_staff_may_confirm_and_a_second_confirmation_keeps_the_first(client, recall, ann):
    notice = notice_of(recall, ann)
    nurse = MembershipFactory(clinic=notice.clinic, role="staff").user
    client.force_login(nurse)
    client.post(reverse("recall_notice_detail", args=[notice.pk]))
    notice.refresh_from_db()
    first = (notice.acknowledged_by, notice.acknowledged_at)
    assert first[0] == nurse

    client.force_login(ann.user)
    answer = client.post(reverse("recall_notice_detail", args=[notice.pk]), follow=True)

    notice.refresh_from_db()
    assert (notice.acknowledged_by, notice.acknowledged_at) == first
    assert f"{nurse.get_full_name()} already confirmed this notice." in answer.content.decode()


def test_someone_outside_the_clinic_may_not_confirm(recall, ann, ben):
    notice = notice_of(recall, ann)
    with pytest.raises(PermissionDenied, match="notified clinic"):
        recall_notice_acknowledge(notice=notice, actor=ben.user)
    notice.refresh_from_db()
    assert (notice.acknowledged_by, notice.acknowledged_at) == (None, None)


def test_the_pharmacys_recall_page_shows_who_confirmed(client, recall, ann, superuser):
    recall_notice_acknowledge(notice=notice_of(recall, ann), actor=ann.user)
    verified_staff_login(client, superuser)

    page = client.get(reverse("admin:pharmacy_recall_change", args=[recall.pk]))

    html = page.content.decode()
    assert f"confirmed by {ann.user.get_full_name()}" in html
    assert "not confirmed yet" in html  # Ben's clinic


def test_the_notice_email_names_the_clinics_orders_no_patient_and_links_the_page(
    settings, recall, ann, two_clinics, mailoutbox
):
    settings.OUTBOX_EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    notice = notice_of(recall, ann)
    delivery = Delivery.objects.get(recall_notice=notice)

    assert delivery_send(delivery_id=delivery.pk) is True

    (message,) = mailoutbox
    zoe, max_, lea = two_clinics["orders"]
    assert message.to == [notice.clinic.label_email]
    assert f"Orders of your clinic that received it:\n- {zoe.number}\n- {max_.number}\n\n" in (
        message.body
    )
    assert lea.number not in message.body
    for name in ("Zoe", "Young", "Max", "Adams"):  # health data stays behind the sign-in
        assert name not in message.body
    link = settings.PORTAL_BASE_URL + reverse("recall_notice_detail", args=[notice.pk])
    assert f"(the notice stays on your dashboard until then):\n{link}\n" in message.body


# --- Quarantine, and the orders not shipped yet -------------------------------------------------
# A recalled batch's units are set aside: what it still holds (its count goes to 0) and what it
# gave to orders still at the pharmacy, which are pulled back; those orders are dispensed again
# from another batch (a checked one goes back to dispensing) and their timelines say so.


def with_status(order: Order, status: OrderStatus) -> Order:
    Order.objects.filter(pk=order.pk).update(status=status)
    order.refresh_from_db()
    return order


def event_rows(order: Order) -> list[tuple]:
    return list(order.events.order_by("pk").values_list("kind", "from_status", "to_status"))


@pytest.fixture
def at_the_pharmacy(ann, ben, technician):
    """A batch with 40 capsules left on the shelf that gave 20 + 10 to Zoe's order (being
    dispensed), 30 to Lea's (checked, ready) and 30 to Max's (shipped)."""
    batch = make_batch(lot_number="NX261102-C1.5-01", units_remaining=Decimal("40"))
    zoe = with_status(order_for(ann, patient_name=("Zoe", "Young")), OrderStatus.COMPOUNDING)
    lea = with_status(order_for(ben, patient_name=("Lea", "Moss")), OrderStatus.READY)
    max_ = with_status(order_for(ann, patient_name=("Max", "Adams")), OrderStatus.SHIPPED)
    for order, units in ((zoe, "20"), (zoe, "10"), (lea, "30"), (max_, "30")):
        dispense(order, batch, units, by=technician)
    return batch, zoe, lea, max_


def test_a_recall_sets_the_stock_aside_and_pulls_back_the_units_of_orders_not_shipped(
    at_the_pharmacy, pharmacist, technician, ann
):
    batch, zoe, lea, max_ = at_the_pharmacy

    recall = batch_recall(batch=batch, actor=pharmacist, reason=REASON)

    batch.refresh_from_db()
    assert (batch.status, batch.units_remaining) == (B.RECALLED, Decimal("0"))
    quarantine = RecallBatch.objects.get()
    assert (
        quarantine.recall,
        quarantine.batch,
        quarantine.units_in_stock,
        quarantine.units_pulled,
        quarantine.units_quarantined,
    ) == (
        recall,
        batch,
        Decimal("40"),
        Decimal("60"),
        Decimal("100"),
    )
    assert batch.events.get().note == (
        f"{REASON} Quarantined: 100 capsules (40 capsules in stock, 60 capsules pulled back from "
        f"2 orders not shipped: {zoe.number}, {lea.number})."
    )
    # The shipped order keeps its dispense; the others' are pulled back, kept as they were.
    assert list(Dispense.objects.values_list("order_id", "units")) == [(max_.pk, Decimal("30"))]
    assert list(
        PulledDispense.objects.order_by("pk").values_list(
            "recalled_batch", "order_id", "units", "dispensed_by"
        )
    ) == [
        (quarantine.pk, zoe.pk, Decimal("20"), technician.pk),
        (quarantine.pk, zoe.pk, Decimal("10"), technician.pk),
        (quarantine.pk, lea.pk, Decimal("30"), technician.pk),
    ]
    # Only patients who hold units are told of: Lea's clinic has none left to tell.
    assert [notice.clinic for notice in recall.notices.all()] == [clinic_of(ann)]


def test_the_orders_not_shipped_say_so_and_a_checked_one_goes_back_to_dispensing(
    at_the_pharmacy, pharmacist
):
    batch, zoe, lea, max_ = at_the_pharmacy
    before = {order.pk: event_rows(order) for order in (zoe, lea, max_)}

    recall = batch_recall(batch=batch, actor=pharmacist, reason=REASON)

    pulled = "recall_pulled"
    assert event_rows(zoe) == [*before[zoe.pk], (pulled, "compounding", "compounding")]
    assert event_rows(lea) == [
        *before[lea.pk],
        (pulled, "ready", "ready"),
        ("status_changed", "ready", "compounding"),
    ]
    assert event_rows(max_) == before[max_.pk]
    zoe.refresh_from_db(), lea.refresh_from_db(), max_.refresh_from_db()
    assert (zoe.status, lea.status, max_.status) == ("compounding", "compounding", "shipped")
    said = zoe.events.get(kind=OrderEventKind.RECALL_PULLED)
    assert (said.actor, said.title, said.parameters) == (
        pharmacist,
        "Recalled units taken back",
        {
            "recall": recall.pk,
            "batches": [batch.lot_number],
            "units": f"30 capsules of Naltrexone HCl 1.5 mg capsule (batch {batch.lot_number})",
        },
    )
    assert said.note == (
        f"Recall of batch {batch.lot_number} ({REASON}): 30 capsules of Naltrexone HCl 1.5 mg "
        f"capsule (batch {batch.lot_number}) pulled back before shipping; the order is dispensed "
        "again from another batch."
    )
    moved = lea.events.get(to_status=OrderStatus.COMPOUNDING)
    assert (moved.actor, moved.note) == (
        pharmacist,
        "Back to dispensing: the recalled units were pulled back; the order is dispensed, "
        "checked and labelled again.",
    )


def test_the_move_back_to_dispensing_is_the_recalls_own(at_the_pharmacy, pharmacist):
    """No button offers it, and the transition refuses it to anyone else."""
    _batch, _zoe, lea, _max = at_the_pharmacy

    assert OrderStatus.COMPOUNDING not in [to for to, _ in allowed_moves(pharmacist, lea)]
    with pytest.raises(ValidationError, match="needs its own form"):
        order_transition(order=lea, to_status=OrderStatus.COMPOUNDING, actor=pharmacist)

    lea.refresh_from_db()
    assert (lea.status, lea.events.count()) == (OrderStatus.READY, 1)


def test_a_checked_order_is_dispensed_checked_and_labelled_again_from_another_batch(
    ann, pharmacist, technician
):
    recalled = make_batch(lot_number="NX261103-C1.5-01")
    order = verify(order_for(ann, patient_name=("Zoe", "Young")), pharmacist)
    dispense_allocate(order=order, actor=technician)
    order = order_final_check(order=order, actor=pharmacist, scans=label_barcodes(order))
    good = make_batch(lot_number="NX261120-C1.5-01")

    batch_recall(batch=recalled, actor=pharmacist, reason=REASON)

    order.refresh_from_db()
    assert (order.status, order.dispenses.count()) == (OrderStatus.COMPOUNDING, 0)
    assert RecallBatch.objects.values_list("units_in_stock", "units_pulled").get() == (
        Decimal("70"),
        Decimal("30"),
    )
    result = dispense_allocate(order=order, actor=technician)
    assert [(d.batch, d.units) for d in result.dispenses] == [(good, Decimal("30"))]
    [page] = label_pages(order)
    assert page.lot_numbers == (good.lot_number,)
    order = order_final_check(order=order, actor=pharmacist, scans=label_barcodes(order))
    assert order.status == OrderStatus.READY
    good.refresh_from_db()
    assert good.units_remaining == Decimal("70")
    # The clinic gets the label of the second check too: a mail of its own.
    assert list(
        Delivery.objects.filter(order=order, kind=DeliveryKind.LABEL_READY)
        .order_by("pk")
        .values_list("subject_key", flat=True)
    ) == [f"order:{order.pk}", f"order:{order.pk}:check-2"]


def test_a_lot_recall_quarantines_each_batch_it_recalls_once(
    at_the_pharmacy, pharmacist, technician, ann
):
    """A batch recalled before keeps its quarantine on its own recall."""
    batch, zoe, _lea, _max = at_the_pharmacy
    earlier = make_batch(lot_number="NX261104-C1.5-01", units_remaining=Decimal("5"))
    lot = IngredientLotFactory()
    for made in (batch, earlier):
        BatchIngredient.objects.create(batch=made, lot=lot, amount=Decimal("150"))
    first = batch_recall(batch=earlier, actor=pharmacist, reason="Capsule weight out of range.")

    recall = ingredient_lot_recall(lot=lot, actor=pharmacist, reason=REASON)

    rows = RecallBatch.objects.order_by("pk").values_list(
        "recall", "batch__lot_number", "units_in_stock", "units_pulled"
    )
    assert list(rows) == [
        (first.pk, "NX261104-C1.5-01", Decimal("5"), Decimal("0")),
        (recall.pk, "NX261102-C1.5-01", Decimal("40"), Decimal("60")),
    ]
    zoe.refresh_from_db()
    assert zoe.events.filter(kind=OrderEventKind.RECALL_PULLED).count() == 1


def test_a_refused_recall_sets_nothing_aside(at_the_pharmacy, technician):
    batch, _zoe, lea, _max = at_the_pharmacy
    before = (snapshot(), list(Dispense.objects.values_list("pk", flat=True)), event_rows(lea))

    with pytest.raises(PermissionDenied):
        batch_recall(batch=batch, actor=technician, reason=REASON)

    after = (snapshot(), list(Dispense.objects.values_list("pk", flat=True)), event_rows(lea))
    assert after == before
    assert not RecallBatch.objects.exists() and not PulledDispense.objects.exists()
    batch.refresh_from_db()
    assert batch.units_remaining == Decimal("40")


# --- Replacement orders -------------------------------------------------------------------------


@pytest.fixture
def holding(ann, ben, batch, technician):
    """Patients who hold units of `batch`: Zoe (shipped, 20 + 10), Max (delivered, 30) and Lea
    of another clinic (shipped, 20 of it and 10 of another batch); Ida's order is still being
    dispensed (30). Each prescription has its Rx number, as verification gives it."""
    other = make_batch(lot_number="NX261115-C1.5-02")
    orders = {}
    for key, prescriber, name, status in (
        ("zoe", ann, ("Zoe", "Young"), OrderStatus.SHIPPED),
        ("max", ann, ("Max", "Adams"), OrderStatus.DELIVERED),
        ("lea", ben, ("Lea", "Moss"), OrderStatus.SHIPPED),
        ("ida", ben, ("Ida", "Cole"), OrderStatus.COMPOUNDING),
    ):
        order = order_for(prescriber, patient_name=name)
        Prescription.objects.filter(pk=order.prescription_id).update(
            rx_number=rx_number_for(order.prescription_id)
        )
        orders[key] = with_status(order, status)
    for key, source, units in (
        ("zoe", batch, "20"),
        ("zoe", batch, "10"),
        ("max", batch, "30"),
        ("lea", batch, "20"),
        ("lea", other, "10"),
        ("ida", batch, "30"),
    ):
        dispense(orders[key], source, units, by=technician)
    return orders


def written() -> dict:
    """Everything ordering replacements writes."""
    return {
        "orders": Order.objects.count(),
        "events": OrderEvent.objects.count(),
        "quantities": OrderQuantity.objects.count(),
        "replacements": RecallReplacement.objects.count(),
    }


def test_replacements_for_every_patient_holding_units_then_none_again(holding, batch, pharmacist):
    recall = batch_recall(batch=batch, actor=pharmacist, reason=REASON)
    zoe, max_, lea = holding["zoe"], holding["max"], holding["lea"]

    made = recall_replacements_create(recall=recall, actor=pharmacist)

    assert [
        (o.follows_id, o.kind, o.status, o.fill_number, o.prescription_id, o.clinic_id)
        for o in made
    ] == [
        (
            order.pk,
            OrderKind.REPLACEMENT,
            OrderStatus.VERIFIED,
            0,
            order.prescription_id,
            order.clinic_id,
        )
        for order in (zoe, max_, lea)
    ]
    assert [
        list(OrderQuantity.objects.filter(order=o).values_list("line_id", "units")) for o in made
    ] == [
        [(order.lines().get().pk, Decimal(units))]
        for order, units in ((zoe, "30"), (max_, "30"), (lea, "20"))
    ]
    assert list(
        RecallReplacement.objects.order_by("pk").values_list("recall", "order", "replacement")
    ) == [(recall.pk, order.pk, new.pk) for order, new in zip((zoe, max_, lea), made, strict=True)]
    said = zoe.events.get(kind=OrderEventKind.REPLACEMENT)
    assert said.note == (
        f"Replacement ordered as {made[0].number} (30 capsules of Naltrexone HCl 1.5 mg capsule): "
        f"recall of batch {batch.lot_number}"
    )
    assert (said.actor, made[0].events.get().actor) == (pharmacist, pharmacist)
    # Ida's order had not shipped: its units were pulled back, no replacement is owed.
    assert not Order.objects.filter(follows=holding["ida"]).exists()

    before = written()
    assert recall_replacements_create(recall=recall, actor=pharmacist) == []
    assert written() == before


def test_a_replacement_is_dispensed_and_labelled_like_any_order(
    holding, batch, pharmacist, technician
):
    recall = batch_recall(batch=batch, actor=pharmacist, reason=REASON)
    replacement = recall_replacements_create(recall=recall, actor=pharmacist)[1]  # Max's

    result = dispense_allocate(order=replacement, actor=technician)

    assert [(d.batch.lot_number, d.units) for d in result.dispenses] == [
        ("NX261115-C1.5-02", Decimal("30"))
    ]
    [page] = label_pages(replacement)
    assert (page.fill, page.quantity, page.lot_numbers) == (
        "Original fill (replacement)",
        "30 capsules",
        ("NX261115-C1.5-02",),
    )
    assert page.rx_number == holding["max"].prescription.rx_number


def test_replacements_are_a_pharmacists_and_a_refusal_writes_nothing(
    client, holding, batch, pharmacist, technician
):
    recall = batch_recall(batch=batch, actor=pharmacist, reason=REASON)
    before = written()

    with pytest.raises(PermissionDenied, match="Only a pharmacist may order replacements"):
        recall_replacements_create(recall=recall, actor=technician)
    verified_staff_login(client, grant(technician, "view_recall"))
    url = reverse("admin:pharmacy_recall_replacements", args=[recall.pk])
    assert client.post(url).status_code == 403

    assert written() == before


def test_the_button_orders_them_and_says_which_and_the_page_lists_them(
    client, holding, batch, pharmacist
):
    recall = batch_recall(batch=batch, actor=pharmacist, reason=REASON)
    verified_staff_login(client, grant(pharmacist, "view_recall"))
    page_url = reverse("admin:pharmacy_recall_change", args=[recall.pk])
    url = reverse("admin:pharmacy_recall_replacements", args=[recall.pk])
    page = client.get(page_url).content.decode()
    # The button of the page's (admin's) form that posts to the replacements' address.
    assert re.search(
        rf'<input type="submit" class="default" value="Order replacements for the affected '
        rf'patients" formaction="{url}" formmethod="post">',
        page,
    )
    assert page.count(">none yet<") == 3
    assert client.get(url).status_code == 405  # a POST only

    answer = client.post(url, follow=True)

    made = list(Order.objects.filter(kind=OrderKind.REPLACEMENT).order_by("pk"))
    numbers = ", ".join(order.number for order in made)
    assert [str(m) for m in answer.context["messages"]] == [
        f"3 replacement orders made: {numbers}."
    ]
    html = answer.content.decode()
    for new in made:
        link = reverse("admin:orders_order_change", args=[new.pk])
        assert f'<a href="{link}">{new.number}</a>' in html
    assert ">none yet<" not in html
    assert "Order replacements for the affected patients" not in html
    assert "Every patient who holds recalled units has a replacement order." in html

    again = client.post(url, follow=True)
    assert [str(m) for m in again.context["messages"]] == [
        "No replacement to make: every order whose patient holds units of the recalled batches "
        "has its replacement."
    ]
    assert Order.objects.filter(kind=OrderKind.REPLACEMENT).count() == 3


# --- The recall's page follows its notices ------------------------------------------------------


def test_the_page_shows_each_notices_email_and_confirmation_and_follows_them(
    client, settings, holding, batch, pharmacist, ann, ben
):
    settings.OUTBOX_EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    recall = batch_recall(batch=batch, actor=pharmacist, reason=REASON)
    alder, birch = notice_of(recall, ann), notice_of(recall, ben)
    assert delivery_send(delivery_id=Delivery.objects.get(recall_notice=alder).pk) is True
    Delivery.objects.filter(recall_notice=birch).update(
        status=DeliveryStatus.FAILED, attempts=3, last_error="SMTP 550: mailbox unavailable"
    )
    recall_notice_acknowledge(notice=alder, actor=ann.user)
    verified_staff_login(client, grant(pharmacist, "view_recall"))
    notices_url = reverse("admin:pharmacy_recall_notices", args=[recall.pk])

    page = client.get(reverse("admin:pharmacy_recall_change", args=[recall.pk]))

    html = page.content.decode()
    sent_at = Delivery.objects.get(recall_notice=alder).sent_at
    confirmed_at = RecallNotice.objects.get(pk=alder.pk).acknowledged_at

    def when(moment):
        return f"{timezone.localtime(moment):%Y-%m-%d %H:%M}"

    alder_row = re.search(rf'<tr data-notice="{alder.pk}">.*?</tr>', html, re.S).group()
    assert f'<td data-field="email">Sent {when(sent_at)}</td>' in alder_row
    assert (
        f'<td data-field="confirmation">confirmed by {ann.user.get_full_name()}, '
        f"{when(confirmed_at)}</td>"
    ) in alder_row
    birch_row = re.search(rf'<tr data-notice="{birch.pk}">.*?</tr>', html, re.S).group()
    assert '<td data-field="email">Failed: SMTP 550: mailbox unavailable</td>' in birch_row
    assert '<td data-field="confirmation">not confirmed yet</td>' in birch_row
    # Live: the page's script asks for the two columns while anything is left to do.
    assert f'data-notices-url="{notices_url}"' in html
    assert "js/recall_live.js" in html
    assert page.context["progress"].quarantine[batch.pk].units_quarantined == Decimal("130")
    assert '<td class="recall-quarantined">130</td>' in html
    answer = client.get(notices_url).json()
    assert answer == {
        "live": True,
        "notices": [
            {
                "id": alder.pk,
                "email": f"Sent {when(sent_at)}",
                "confirmation": f"confirmed by {ann.user.get_full_name()}, {when(confirmed_at)}",
                "settled": True,
            },
            {
                "id": birch.pk,
                "email": "Failed: SMTP 550: mailbox unavailable",
                "confirmation": "not confirmed yet",
                "settled": False,
            },
        ],
    }

    # Once every email is sent and every clinic confirmed, the page stops asking.
    Delivery.objects.filter(recall_notice=birch).update(
        status=DeliveryStatus.SENT, sent_at=sent_at, last_error=""
    )
    recall_notice_acknowledge(notice=birch, actor=ben.user)
    assert client.get(notices_url).json()["live"] is False
    html = client.get(reverse("admin:pharmacy_recall_change", args=[recall.pk])).content.decode()
    assert "data-notices-url" not in html and "js/recall_live.js" not in html
    assert "Every notice is sent and every clinic has confirmed" in html


def test_the_notices_are_the_pharmacists_to_follow(client, recall, technician, superuser):
    url = reverse("admin:pharmacy_recall_notices", args=[recall.pk])
    missing = reverse("admin:pharmacy_recall_notices", args=["999999"])
    verified_staff_login(client, technician)
    assert (client.get(url).status_code, client.get(missing).status_code) == (403, 403)
    verified_staff_login(client, superuser)
    assert (client.get(url).status_code, client.get(missing).status_code) == (200, 404)


def test_the_pages_own_requests_do_not_keep_the_session_open(client, clock, recall, pharmacist):
    verified_staff_login(client, grant(pharmacist, "view_recall"))
    url = reverse("admin:pharmacy_recall_notices", args=[recall.pk])
    seen = client.session[sessions.LAST_SEEN]

    clock.shift(datetime.timedelta(minutes=10))
    assert client.get(url, headers={"X-Background-Poll": "1"}).status_code == 200
    assert client.session[sessions.LAST_SEEN] == seen
    clock.shift(datetime.timedelta(minutes=6))  # 16 minutes without the person: signed out
    assert client.get(url, headers={"X-Background-Poll": "1"}).status_code == 302


def many_clinics(count: int, batch, technician) -> None:
    for i in range(count):
        prescriber = prescriber_named(f"P{i}", f"Prescriber{i}", f"Clinic {i:02d}")
        for j in range(2):
            order = with_status(
                order_for(prescriber, patient_name=(f"Pat{j}", f"Patient{i}{j}")),
                OrderStatus.SHIPPED,
            )
            dispense(order, batch, "10", by=technician)


@pytest.mark.parametrize("clinics", [1, 5])
def test_the_recall_page_query_count_does_not_grow_with_clinics_and_orders(
    clinics, client, batch, pharmacist, technician, django_assert_num_queries
):
    many_clinics(clinics, batch, technician)
    recall = batch_recall(batch=batch, actor=pharmacist, reason=REASON)
    recall_replacements_create(recall=recall, actor=pharmacist)
    verified_staff_login(client, grant(pharmacist, "view_recall"))
    url = reverse("admin:pharmacy_recall_change", args=[recall.pk])
    client.get(url)  # the session settles

    # session, user, the recall, its impact (batches, dispenses, notices), where it stands
    # (quarantine, pulled back, replacements, notices and their emails), the user's groups, the
    # admin's own reading of the recall and of its read-only batch and initiator, and the
    # access event
    with django_assert_num_queries(RECALL_PAGE_QUERIES):
        page = client.get(url)

    assert len(page.context["notice_rows"]) == clinics
    with django_assert_num_queries(NOTICES_QUERIES):
        client.get(reverse("admin:pharmacy_recall_notices", args=[recall.pk]))


RECALL_PAGE_QUERIES = 16
NOTICES_QUERIES = 6


# --- The banner on every portal page ------------------------------------------------------------


def banner(response) -> str:
    found = re.search(
        r'<div class="alert alert-danger" role="alert" id="recall-banner">.*?</div>',
        response.content.decode(),
        re.S,
    )
    return found.group() if found else ""


def test_every_portal_page_shows_the_banner_until_the_clinic_confirms(client, recall, ann):
    notice = notice_of(recall, ann)
    nurse = MembershipFactory(clinic=notice.clinic, role="staff").user
    link = reverse("recall_notice_detail", args=[notice.pk])

    for person in (ann.user, nurse):
        client.force_login(person)
        for page in ("home", "patient_list", "order_list", "recall_notice_list"):
            shown = banner(client.get(reverse(page)))
            assert f'href="{link}">Recall of batch NX261101-C1.5-01' in shown, (person, page)

    client.post(link)  # the nurse confirms that the patients were told

    for person in (ann.user, nurse):
        client.force_login(person)
        assert banner(client.get(reverse("patient_list"))) == ""


def test_the_banner_is_not_shown_to_another_clinic_the_pharmacy_or_visitors(
    client, recall, two_clinics, pharmacist
):
    client.force_login(two_clinics["elsewhere"].user)  # a clinic the recall did not reach
    assert banner(client.get(reverse("patient_list"))) == ""
    client.logout()
    assert banner(client.get(reverse("login"))) == ""
    verified_staff_login(client, pharmacist)
    assert banner(client.get(reverse("password_change"))) == ""


def test_the_banner_costs_one_query_per_request(
    rf, recall, ann, pharmacist, django_assert_num_queries
):
    request = rf.get("/")
    request.user = ann.user
    request.portal_membership = ann.user.memberships.get()
    context = recall_banner(request)
    notice = notice_of(recall, ann)
    with django_assert_num_queries(1):
        assert len(context["recall_banner_notices"]) == 1
        assert list(recall_banner(request)["recall_banner_notices"]) == [notice]
    staff_request = rf.get("/")
    staff_request.user = pharmacist
    with django_assert_num_queries(0):
        assert not recall_banner(staff_request)["recall_banner_notices"]


@pytest.mark.parametrize("notified", [True, False])
def test_a_portal_page_with_the_banner_or_without_reads_the_same(
    notified, client, recall, ann, two_clinics, django_assert_num_queries
):
    person = ann.user if notified else two_clinics["elsewhere"].user
    client.force_login(person)
    client.get(reverse("patient_list"))
    # session, user (+prescriber), their clinics, the banner's notices, the patient count and
    # the page of them
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("patient_list"))
    assert bool(banner(response)) is notified
    assert len(queries) == 6
