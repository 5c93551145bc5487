"""Recalls: a batch or an ingredient lot traced to every dispense, order, patient, prescriber
and clinic; a pending notice to each clinic; the refusals that change nothing; the CSV export
and the admin pages and actions."""

import csv
import datetime
import io
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import path, reverse

from config import urls as portal_urls
from core.models import AccessAction, AccessEvent, User
from core.roles import is_pharmacist
from orders.dosing import DosageForm, Regimen, Step
from orders.models import FormulationVersion, FormulationVersionStatus, Order
from pharmacy.admin_recalls import RecallAdmin, recall_batches, recall_lots
from pharmacy.admin_site import PharmacyAdminSite
from pharmacy.batches import batch_recalled_lots
from pharmacy.models import (
    Batch,
    BatchEvent,
    BatchIngredient,
    BatchStatus,
    Delivery,
    Dispense,
    IngredientLot,
    IngredientLotEvent,
    LotStatus,
    Recall,
    RecallNotice,
)
from pharmacy.outbox import delivery_send
from pharmacy.recalls import batch_recall, ingredient_lot_recall, recall_notice_acknowledge
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
        FormulationVersion.objects.filter(status=FormulationVersionStatus.APPROVED).first()
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
        pharmacist, B.RELEASED, B.RECALLED, REASON,
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
    note = f"Made from recalled ingredient lot {lot} ({lot.manufacturer}): {REASON}"
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
    html = detail.content.decode()
    assert "<td>Alder Family Clinic</td><td>Sent</td>" in html
    assert "<td>Birch Pain Center</td><td>Pending</td>" in html


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


def test_the_notice_email_names_the_clinics_orders_and_links_the_page_to_confirm(
    settings, recall, ann, two_clinics, mailoutbox
):
    settings.OUTBOX_EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    notice = notice_of(recall, ann)
    delivery = Delivery.objects.get(recall_notice=notice)

    assert delivery_send(delivery_id=delivery.pk) is True

    (message,) = mailoutbox
    zoe, max_, lea = two_clinics["orders"]
    assert message.to == [notice.clinic.label_email]
    assert f"- {zoe.number}: Zoe Young\n- {max_.number}: Max Adams\n" in message.body
    assert lea.number not in message.body
    link = settings.PORTAL_BASE_URL + reverse("recall_notice_detail", args=[notice.pk])
    assert f"(the notice stays on your dashboard until then):\n{link}\n" in message.body
