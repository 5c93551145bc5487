"""Every foreign key of the portal's own records is indexed: by its own index, or as the first
column of an index or unique constraint that reads it with more (no second index of the same
column, which would only cost every write). simple-history's copies are left to core.history."""

from django.apps import apps
from django.db import models

from core.models import AccessEvent
from orders.models import Order, OrderEvent, PrescriptionStep
from prescribers.models import IdempotentRequest

PORTAL_APPS = {"core", "orders", "pharmacy", "prescribers"}


def leading_columns(model) -> set[str]:
    """The first field of each of the model's indexes and unique constraints."""
    meta = model._meta
    firsts = [index.fields[0].lstrip("-") for index in meta.indexes if index.fields]
    firsts += [
        constraint.fields[0]
        for constraint in meta.constraints
        if isinstance(constraint, models.UniqueConstraint)
        and constraint.fields
        and constraint.condition is None
    ]
    firsts += [fields[0] for fields in meta.unique_together]
    return set(firsts)


def portal_models():
    return [
        model
        for model in apps.get_models()
        if model._meta.app_label in PORTAL_APPS and not model.__name__.startswith("Historical")
    ]


def test_every_foreign_key_is_indexed_once():
    for model in portal_models():
        covered = leading_columns(model)
        for field in model._meta.concrete_fields:
            if not isinstance(field, models.ForeignKey) or field.unique:
                continue
            assert field.db_index or field.name in covered, f"{model.__name__}.{field.name}"
            assert not (field.db_index and field.name in covered), (
                f"{model.__name__}.{field.name} has an index of its own beside one led by it"
            )


def test_the_keys_read_with_more_are_indexed_with_it():
    for model, name in [
        (Order, "clinic"), (Order, "signer"), (OrderEvent, "order"),
        (PrescriptionStep, "prescription"), (IdempotentRequest, "api_key"),
        (AccessEvent, "content_type"),
    ]:  # fmt: skip
        assert not model._meta.get_field(name).db_index
        assert name in leading_columns(model)
