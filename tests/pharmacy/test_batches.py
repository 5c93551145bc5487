"""Master formulation versions, ingredient lots and compounding batches."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from orders.models import Formulation, FormulationVersionStatus
from pharmacy import batches, formulations
from pharmacy.batches import BATCH_TRANSITIONS
from pharmacy.models import (
    Batch,
    BatchEvent,
    BatchIngredient,
    BatchStatus,
    IngredientLotEvent,
    LotStatus,
    QcResult,
)
from tests.factories import (
    BatchFactory,
    FormulationVersionFactory,
    IngredientFactory,
    IngredientLotFactory,
    StaffFactory,
)
from tests.signing_in import verified_staff_login

pytestmark = pytest.mark.django_db
B = BatchStatus
TODAY = timezone.localdate()
CHECKS = ["Capsule weight within 10 % of target", "Appearance", "Label check"]


@pytest.fixture
def capsule_1_5():
    return Formulation.objects.get(dosage_form="capsule", strength_mg=Decimal("1.5"))


@pytest.fixture
def version(capsule_1_5):
    naltrexone = IngredientFactory(name="naltrexone HCl")
    filler = IngredientFactory(name="microcrystalline cellulose", kind="excipient")
    approved = FormulationVersionFactory(formulation=capsule_1_5, version=1)
    approved.ingredients.create(ingredient=naltrexone, amount_per_unit=Decimal("1.5"))
    approved.ingredients.create(ingredient=filler, amount_per_unit=Decimal("148.5"))
    return approved


@pytest.fixture
def lots(version):
    return {
        "naltrexone": IngredientLotFactory(
            ingredient=version.ingredients.get(ingredient__kind="active").ingredient,
            lot_number="NX-2291", expires_on=TODAY + datetime.timedelta(days=100),
        ),
        "filler": IngredientLotFactory(
            ingredient=version.ingredients.get(ingredient__kind="excipient").ingredient,
            lot_number="MCC-77", expires_on=TODAY + datetime.timedelta(days=900),
        ),
    }  # fmt: skip


@pytest.fixture
def compounded(version, lots, technician):
    """A batch compounded by the technician, waiting for QC."""
    batch = batches.batch_start(formulation_version=version, planned_units=Decimal("100"),
                                actor=technician)  # fmt: skip
    batches.batch_add_ingredient(batch=batch, lot=lots["naltrexone"], amount=Decimal("150"),
                                 actor=technician)  # fmt: skip
    batches.batch_add_ingredient(batch=batch, lot=lots["filler"], amount=Decimal("14850"),
                                 actor=technician)  # fmt: skip
    return batches.batch_submit_for_qc(batch=batch, actor=technician, actual_units=Decimal("98"))


def record_all_qc(batch, actor, passed=True):
    for check in CHECKS:
        batches.batch_record_qc(batch=batch, check_name=check, passed=passed, actor=actor)


# --- Master formulation records ----------------------------------------------------------------


def test_versions_are_numbered_and_approved_by_another_pharmacist(version, pharmacist):
    author = StaffFactory(group="Pharmacist")
    draft = formulations.formulation_version_draft(
        formulation=version.formulation, actor=author, bud_category="nonaqueous_solid",
        storage="Room temperature", container="Vial", compounding_instructions="Mix.",
        qc_checks=CHECKS, auxiliary_labels=[],
        ingredients=[(i.ingredient, i.amount_per_unit) for i in version.ingredients.all()],
    )  # fmt: skip
    assert (draft.version, draft.status) == (2, FormulationVersionStatus.DRAFT)

    with pytest.raises(ValidationError, match="other than its author"):
        formulations.formulation_version_approve(version=draft, actor=author)
    draft.refresh_from_db()
    assert draft.status == FormulationVersionStatus.DRAFT

    formulations.formulation_version_approve(version=draft, actor=pharmacist)

    version.refresh_from_db()
    draft.refresh_from_db()
    assert (version.status, draft.status) == ("superseded", "approved")
    assert draft.approved_by == pharmacist
    assert formulations.formulation_current_version(version.formulation) == draft


def test_a_technician_cannot_write_or_approve_records(version, technician):
    before = version.formulation.versions.count()
    with pytest.raises(PermissionDenied):
        formulations.formulation_version_draft(
            formulation=version.formulation, actor=technician, ingredients=[]
        )
    assert version.formulation.versions.count() == before


# --- Ingredient lots -----------------------------------------------------------------------------


def test_a_received_lot_waits_in_quarantine_until_a_pharmacist_releases_it(technician, pharmacist):
    lot = batches.lot_receive(
        ingredient=IngredientFactory(), manufacturer="Bulk Co", lot_number=" NX-1 ",
        expires_on=TODAY + datetime.timedelta(days=365), quantity_received=Decimal("5000"),
        certificate_of_analysis="COA-1", actor=technician,
    )  # fmt: skip
    assert (lot.status, lot.lot_number) == (LotStatus.QUARANTINE, "NX-1")
    with pytest.raises(PermissionDenied):
        batches.lot_release(lot=lot, actor=technician)
    lot.refresh_from_db()
    assert lot.status == LotStatus.QUARANTINE

    batches.lot_release(lot=lot, actor=pharmacist)

    lot.refresh_from_db()
    assert lot.status == LotStatus.RELEASED
    assert list(IngredientLotEvent.objects.filter(lot=lot).values_list("to_status", flat=True)) == [
        "quarantine", "released",
    ]  # fmt: skip


# --- Batches -------------------------------------------------------------------------------------


def test_a_batch_is_recorded_step_by_step(compounded, technician):
    assert compounded.status == B.AWAITING_QC
    assert compounded.lot_number == f"NX{TODAY:%y%m%d}-C1.5-01"
    assert compounded.actual_units == Decimal("98")
    assert [str(use.lot) for use in compounded.ingredients.all()] == [
        "naltrexone HCl lot NX-2291", "microcrystalline cellulose lot MCC-77",
    ]  # fmt: skip
    assert list(compounded.events.values_list("to_status", flat=True)) == [
        "in_progress", "awaiting_qc",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("lot_change", "message"),
    [
        ({"status": LotStatus.QUARANTINE}, "only released lots are used"),
        ({"status": LotStatus.RECALLED}, "only released lots are used"),
        ({"expires_on": TODAY}, "cannot be used"),
    ],
)
def test_only_released_unexpired_lots_go_into_a_batch(version, lots, technician, lot_change,
                                                      message):  # fmt: skip
    batch = batches.batch_start(formulation_version=version, planned_units=Decimal("10"),
                                actor=technician)  # fmt: skip
    lot = lots["naltrexone"]
    for name, value in lot_change.items():
        setattr(lot, name, value)
    lot.save()
    with pytest.raises(ValidationError, match=message):
        batches.batch_add_ingredient(batch=batch, lot=lot, amount=Decimal("15"), actor=technician)
    assert BatchIngredient.objects.count() == 0


def test_an_ingredient_outside_the_record_is_refused(version, technician):
    batch = batches.batch_start(formulation_version=version, planned_units=Decimal("10"),
                                actor=technician)  # fmt: skip
    other = IngredientLotFactory(ingredient=IngredientFactory(name="calcium carbonate"))
    with pytest.raises(ValidationError, match="is not in the master formulation record"):
        batches.batch_add_ingredient(batch=batch, lot=other, amount=Decimal("1"), actor=technician)


def test_a_draft_version_cannot_be_compounded(version, technician):
    version.status = FormulationVersionStatus.DRAFT
    version.save()
    with pytest.raises(ValidationError, match="is not approved"):
        batches.batch_start(formulation_version=version, planned_units=Decimal("10"),
                            actor=technician)  # fmt: skip
    assert Batch.objects.count() == 0


def test_release_by_another_pharmacist_fixes_the_bud(compounded, pharmacist):
    record_all_qc(compounded, pharmacist)

    released = batches.batch_release(batch=compounded, actor=pharmacist)

    lot_expiry = TODAY + datetime.timedelta(days=100)
    assert released.status == B.RELEASED
    assert released.beyond_use_date == lot_expiry  # 180 days, capped by the lot
    assert released.bud_explanation == (
        f"180 days (nonaqueous solid, USP <795>), capped by naltrexone HCl lot NX-2291 expiring "
        f"{lot_expiry.isoformat()}"
    )
    assert (released.units_remaining, released.released_by) == (Decimal("98"), pharmacist)


def test_the_compounder_cannot_release_their_own_batch(version, lots, pharmacist):
    batch = batches.batch_start(formulation_version=version, planned_units=Decimal("10"),
                                actor=pharmacist)  # fmt: skip
    batches.batch_add_ingredient(batch=batch, lot=lots["naltrexone"], amount=Decimal("15"),
                                 actor=pharmacist)  # fmt: skip
    batches.batch_submit_for_qc(batch=batch, actor=pharmacist, actual_units=Decimal("10"))
    record_all_qc(batch, pharmacist)
    events = BatchEvent.objects.count()

    with pytest.raises(ValidationError, match="cannot be the person who compounded it"):
        batches.batch_release(batch=batch, actor=pharmacist)

    batch.refresh_from_db()
    assert (batch.status, batch.units_remaining, BatchEvent.objects.count()) == (
        B.AWAITING_QC, Decimal("0"), events,
    )  # fmt: skip


def test_release_needs_every_qc_check_passed(compounded, pharmacist):
    batches.batch_record_qc(batch=compounded, check_name=CHECKS[0], passed=False,
                            actor=pharmacist, notes="3 capsules out of range")  # fmt: skip
    with pytest.raises(ValidationError) as refused:
        batches.batch_release(batch=compounded, actor=pharmacist)
    assert refused.value.messages == [
        "QC is not complete: missing: Appearance; missing: Label check; "
        "failed: Capsule weight within 10 % of target"
    ]
    compounded.refresh_from_db()
    assert compounded.status == B.AWAITING_QC


def test_unknown_qc_check_is_refused(compounded, pharmacist):
    with pytest.raises(ValidationError, match="is not a QC check of this formulation"):
        batches.batch_record_qc(batch=compounded, check_name="Smell", passed=True,
                                actor=pharmacist)  # fmt: skip
    assert QcResult.objects.count() == 0


def test_bud_can_be_shortened_never_lengthened(compounded, pharmacist):
    record_all_qc(compounded, pharmacist)
    too_late = TODAY + datetime.timedelta(days=150)
    with pytest.raises(ValidationError, match="can only be shortened, never lengthened"):
        batches.batch_release(batch=compounded, actor=pharmacist, bud_shortened_to=too_late)
    compounded.refresh_from_db()
    assert (compounded.status, compounded.beyond_use_date) == (B.AWAITING_QC, None)

    shorter = TODAY + datetime.timedelta(days=30)
    released = batches.batch_release(batch=compounded, actor=pharmacist, bud_shortened_to=shorter)
    assert released.beyond_use_date == shorter
    assert released.bud_explanation.endswith(f"shortened by the pharmacist to {shorter}")


def test_a_released_record_no_longer_changes(compounded, pharmacist, lots, client):
    record_all_qc(compounded, pharmacist)
    batches.batch_release(batch=compounded, actor=pharmacist)
    with pytest.raises(ValidationError, match="can no longer change"):
        batches.batch_add_ingredient(batch=compounded, lot=lots["filler"], amount=Decimal("1"),
                                     actor=pharmacist)  # fmt: skip
    with pytest.raises(ValidationError, match="can no longer change"):
        batches.batch_record_qc(batch=compounded, check_name=CHECKS[0], passed=False,
                                actor=pharmacist)  # fmt: skip
    verified_staff_login(client, pharmacist)
    page = client.get(reverse("admin:pharmacy_batch_change", args=[compounded.pk]))
    assert page.context["has_change_permission"] is False
    assert compounded.ingredients.count() == 2


@pytest.mark.parametrize("from_status", list(B))
@pytest.mark.parametrize("to_status", list(B))
def test_batch_transition_matrix(from_status, to_status, technician, pharmacist):
    if from_status == to_status:
        return
    batch = BatchFactory(status=from_status)
    needs = BATCH_TRANSITIONS.get((from_status, to_status))
    for actor, role in ((technician, "technician"), (pharmacist, "pharmacist")):
        before = batch.events.count()
        if needs is not None and role in needs:
            batches.batch_transition(batch=batch, to_status=to_status, actor=actor)
            batch.refresh_from_db()
            assert batch.status == to_status
            assert batch.events.count() == before + 1
            Batch.objects.filter(pk=batch.pk).update(status=from_status)
            batch.refresh_from_db()
        else:
            error = ValidationError if needs is None else PermissionDenied
            with pytest.raises(error):
                batches.batch_transition(batch=batch, to_status=to_status, actor=actor)
            batch.refresh_from_db()
            assert (batch.status, batch.events.count()) == (from_status, before)


def test_batches_are_recorded_and_released_from_the_admin(client, version, lots, technician,
                                                          pharmacist):  # fmt: skip
    changelist = reverse("admin:pharmacy_batch_changelist")
    verified_staff_login(client, technician)
    batch = batches.batch_start(formulation_version=version, planned_units=Decimal("10"),
                                actor=technician)  # fmt: skip
    batches.batch_add_ingredient(batch=batch, lot=lots["naltrexone"], amount=Decimal("15"),
                                 actor=technician)  # fmt: skip

    def act(action, **data):
        return client.post(changelist, {"action": action, "_selected_action": [batch.pk],
                                        "_confirmed": "1", **data}, follow=True)  # fmt: skip

    act("submit_for_qc", actual_units="10", deviations="")
    for check in CHECKS:
        act("record_qc", check_name=check, passed="on", notes="")
    batch.refresh_from_db()
    assert (batch.status, batch.qc_results.count()) == (B.AWAITING_QC, 3)
    offered = client.get(changelist).context["action_form"].fields["action"].choices
    names = [name for name, _label in offered]
    assert "submit_for_qc" in names and "release" not in names  # no release for a technician

    verified_staff_login(client, pharmacist)
    response = act("release", bud_shortened_to="")
    assert [str(m) for m in response.context["messages"]] == ["1 batch released."]
    batch.refresh_from_db()
    assert batch.status == B.RELEASED


# --- Compounding dates ---------------------------------------------------------------------------
# The clock stands at 2026-03-02 14:00 UTC (tests/conftest.py), 09:00 in New York.

MARCH_2 = datetime.date(2026, 3, 2)


@pytest.fixture
def lasting_lots(version):
    """Lots that expire long after any BUD here, so the table date shows."""
    return [
        IngredientLotFactory(ingredient=use.ingredient, expires_on=datetime.date(2099, 1, 1))
        for use in version.ingredients.select_related("ingredient")
    ]


def compound(version, lots, technician, **start):
    batch = batches.batch_start(
        formulation_version=version, planned_units=Decimal("10"), actor=technician, **start
    )
    for lot in lots:
        batches.batch_add_ingredient(batch=batch, lot=lot, amount=Decimal("15"), actor=technician)
    batch = batches.batch_submit_for_qc(batch=batch, actor=technician, actual_units=Decimal("10"))
    record_all_qc(batch, technician)
    return batch


@pytest.mark.parametrize(
    ("now", "compounded_on", "today"),
    [
        (datetime.datetime(2026, 3, 2, 14, 0, tzinfo=datetime.UTC), "2026-03-03", "2026-03-02"),
        (datetime.datetime(2026, 3, 2, 14, 0, tzinfo=datetime.UTC), "2027-01-01", "2026-03-02"),
        # 02:00 UTC on 3 March is still 2 March in New York: the pharmacy's local date counts.
        (datetime.datetime(2026, 3, 3, 2, 0, tzinfo=datetime.UTC), "2026-03-03", "2026-03-02"),
    ],
)
def test_a_compounding_date_in_the_future_is_refused(
    clock, settings, version, technician, now, compounded_on, today
):
    settings.TIME_ZONE = "America/New_York"
    clock.move_to(now, tick=False)

    with pytest.raises(ValidationError) as refused:
        batches.batch_start(
            formulation_version=version,
            planned_units=Decimal("10"),
            actor=technician,
            compounded_on=datetime.date.fromisoformat(compounded_on),
        )

    assert refused.value.message_dict == {
        "compounded_on": [
            f"The compounding date {compounded_on} is in the future (today is {today}): record"
            " the day the batch was compounded."
        ]
    }
    assert (Batch.objects.count(), BatchEvent.objects.count()) == (0, 0)


def test_an_earlier_compounding_date_is_kept_and_the_bud_counts_from_it(
    clock, version, lasting_lots, technician, pharmacist
):
    batch = compound(version, lasting_lots, technician, compounded_on=datetime.date(2026, 2, 20))

    released = batches.batch_release(batch=batch, actor=pharmacist)

    # 2026-02-20 + 180 days: Feb 28 (8), Mar 31 (39), Apr 30 (69), May 31 (100), Jun 30 (130),
    # Jul 31 (161), then 19 more: 2026-08-19. Released on 2026-03-02, counted from 02-20.
    assert (released.lot_number, released.compounded_on) == (
        "NX260220-C1.5-01",
        datetime.date(2026, 2, 20),
    )
    assert released.beyond_use_date == datetime.date(2026, 8, 19)
    assert released.bud_explanation == "180 days (nonaqueous solid, USP <795>)"


def test_a_batch_compounded_today_is_released_today(
    clock, version, lasting_lots, technician, pharmacist
):
    batch = compound(version, lasting_lots, technician)

    released = batches.batch_release(batch=batch, actor=pharmacist)

    assert (released.compounded_on, released.status) == (MARCH_2, B.RELEASED)
    assert released.beyond_use_date == datetime.date(2026, 8, 29)  # 180 days after 2026-03-02


def test_a_batch_compounded_after_the_release_day_is_not_released(
    clock, version, lasting_lots, technician, pharmacist
):
    batch = compound(version, lasting_lots, technician)
    # A record dated ahead of the day (entered before compounding dates were checked).
    Batch.objects.filter(pk=batch.pk).update(compounded_on=datetime.date(2026, 3, 4))
    events = BatchEvent.objects.count()

    with pytest.raises(ValidationError) as refused:
        batches.batch_release(batch=batch, actor=pharmacist)

    assert refused.value.messages == [
        f"Batch {batch.lot_number} was compounded on 2026-03-04, after today's release date"
        " 2026-03-02: a batch is released on or after the day it was compounded."
    ]
    batch.refresh_from_db()
    assert (batch.status, batch.beyond_use_date, batch.released_by) == (B.AWAITING_QC, None, None)
    assert BatchEvent.objects.count() == events


def test_the_admin_shows_a_future_compounding_date_on_its_field(clock, client, version, technician):
    verified_staff_login(client, technician)
    add = reverse("admin:pharmacy_batch_add")
    form = {"formulation_version": version.pk, "planned_units": "10"}

    response = client.post(add, {**form, "compounded_on": "2026-03-03"})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "compounded_on": [
            "The compounding date 2026-03-03 is in the future (today is 2026-03-02): record the"
            " day the batch was compounded."
        ]
    }
    assert Batch.objects.count() == 0

    response = client.post(add, {**form, "compounded_on": "2026-03-02"})

    assert response.status_code == 302
    assert Batch.objects.get().compounded_on == MARCH_2
