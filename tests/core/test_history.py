"""The records' history (core.history): simple-history's `history` manager, with its class built
once instead of at every read (every history row written reads it), and history rows indexed by
the record's id, date and user only."""

import inspect

import pytest
import simple_history.manager
import simple_history.models

from core.history import HistoricalRecords, HistoryManager
from orders.models import Order, Patient
from prescribers.models import Clinic, Prescriber
from tests.factories import PatientFactory, PrescriberFactory, clinic_of

HISTORY_MODELS = [Order, Patient, Prescriber, Clinic]


@pytest.mark.parametrize("model", HISTORY_MODELS, ids=lambda m: m.__name__)
def test_the_history_manager_class_is_built_once(model, monkeypatch):
    assert model.history is not None  # built here if this is the first read of the process
    built = []
    monkeypatch.setattr(inspect, "getmembers", lambda *a, **k: built.append(a) or [])
    first, second = model.history, model.history
    assert built == []  # not built again: Django's from_queryset goes over the methods with it
    assert type(first) is type(second)
    assert first is not second  # each read still gets a manager of its own


def test_simple_historys_own_manager_builds_a_class_at_every_read():
    queryset = simple_history.manager.HistoricalQuerySet
    plain = simple_history.manager.HistoryManager
    assert plain.from_queryset(queryset) is not plain.from_queryset(queryset)
    assert HistoryManager.from_queryset(queryset) is HistoryManager.from_queryset(queryset)
    assert HistoricalRecords().history_manager is HistoryManager


@pytest.mark.django_db
def test_the_history_of_a_record_and_of_its_model_read_as_before():
    prescriber = PrescriberFactory()
    first, other = PatientFactory.create_batch(2, clinic=clinic_of(prescriber))
    first.current_medications = "Vitamin D 1000 IU daily"
    first.save()

    assert [h.history_type for h in first.history.order_by("history_id")] == ["+", "~"]
    assert first.history.latest().current_medications == "Vitamin D 1000 IU daily"
    assert other.history.count() == 1
    assert Patient.history.filter(id__in=[first.pk, other.pk]).count() == 3
    assert type(first.history) is type(other.history) is type(Patient.history)
    assert first.history.instance == first and other.history.instance == other


def test_every_model_with_a_history_builds_its_manager_class_once():
    tracked = list(simple_history.models.registered_models.values())
    assert {Order, Patient, Prescriber, Clinic} <= set(tracked)
    for model in tracked:
        descriptor = vars(model)[model._meta.simple_history_manager_attribute]
        assert descriptor.manager_class is HistoryManager, model


def test_history_rows_are_indexed_by_the_record_s_id_date_and_user_only():
    tracked = list(simple_history.models.registered_models.values())
    for model in tracked:
        historical = model.history.model
        indexed = {
            field.name
            for field in historical._meta.concrete_fields
            if field.db_index or field.unique
        }
        assert indexed == {"history_id", model._meta.pk.name, "history_date", "history_user"}, model
    order_history = Order.history.model._meta
    assert not order_history.get_field("prescription").db_index
    assert not order_history.get_field("idempotency_key").db_index  # unique on the order only
