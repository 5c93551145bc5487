"""Access events are append-only in PostgreSQL itself: a trigger refuses UPDATE and DELETE of
any row, whatever sends them (raw SQL on the ORM's connection, the ORM's own update path that
the model never sees), and the migration that adds it can be reversed."""

import importlib

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import QuerySet
from django.test import RequestFactory

from core.audit import record_access
from core.models import AccessAction, AccessEvent, AppendOnlyError
from tests.factories import PatientFactory, StaffFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

TABLE = AccessEvent._meta.db_table
REFUSED = "access events are append-only"


@pytest.fixture
def event(postgresql):
    request = RequestFactory().get("/admin/orders/patient/1/change/", REMOTE_ADDR="203.0.113.7")
    request.user = StaffFactory(group="Pharmacist")
    return record_access(request, AccessAction.VIEWED_PATIENT, PatientFactory())


def stored(event: AccessEvent) -> dict:
    return AccessEvent.objects.filter(pk=event.pk).values().get()


def execute(sql: str, *params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


@pytest.mark.parametrize("sql", [
    f"UPDATE {TABLE} SET object_description = 'Patient 999999' WHERE id = %s",
    f"UPDATE {TABLE} SET client_address = NULL, user_email = 'x@example.test' WHERE id = %s",
    f"DELETE FROM {TABLE} WHERE id = %s",
])  # fmt: skip
def test_raw_sql_cannot_change_or_delete_an_event(event, sql):
    before = stored(event)
    with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic():
        execute(sql, event.pk)
    assert stored(event) == before


def test_the_orm_without_the_models_guards_is_refused_too(event):
    """A plain QuerySet (not the model's append-only one) and the UPDATE path Model.save uses
    reach the database: the trigger refuses them."""
    before = stored(event)
    plain = QuerySet(AccessEvent).filter(pk=event.pk)
    path = AccessEvent._meta.get_field("path")
    for change, operation in ((lambda: plain.update(user_email="x@example.test"), "UPDATE"),
                              (lambda: plain._update([(path, None, "/")]), "UPDATE"),
                              (plain.delete, "DELETE")):  # fmt: skip
        refused = f"{operation} of pharmacy_accessevent refused"
        with pytest.raises(DatabaseError, match=refused), transaction.atomic():
            change()
    assert stored(event) == before


def test_the_orm_refuses_before_the_database_is_asked(event):
    before = stored(event)
    for change in (lambda: AccessEvent.objects.filter(pk=event.pk).update(path="/"),
                   AccessEvent.objects.filter(pk=event.pk).delete, event.delete,
                   lambda: event.save(update_fields=["path"])):  # fmt: skip
        with pytest.raises(AppendOnlyError):
            change()
    assert stored(event) == before


def test_adding_events_is_still_allowed(event):
    request = RequestFactory().get("/")
    request.user = event.user
    second = record_access(request, AccessAction.VIEWED_PATIENT, PatientFactory())
    assert AccessEvent.objects.filter(pk__in=[event.pk, second.pk]).count() == 2


class _Undo(Exception):
    pass


def test_the_trigger_migration_is_reversible(event):
    migration = importlib.import_module("pharmacy.migrations.0011_access_events").Migration
    trigger = migration.operations[-1]
    assert trigger.reversible
    with pytest.raises(_Undo), transaction.atomic():
        with connection.schema_editor() as editor:
            trigger.database_backwards("pharmacy", editor, None, None)
        # Without the trigger, the same UPDATE goes through (PostgreSQL DDL is transactional).
        assert execute(f"UPDATE {TABLE} SET path = '/' WHERE id = %s", event.pk) == 1
        with connection.schema_editor() as editor:
            trigger.database_forwards("pharmacy", editor, None, None)
        with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic():
            execute(f"UPDATE {TABLE} SET path = '/x' WHERE id = %s", event.pk)
        raise _Undo
    assert stored(event)["path"] == "/admin/orders/patient/1/change/"
