"""Drawing the layers moved models between apps (users and access events to core, the
catalogue to orders) and moved no data. Proved on PostgreSQL against a database made by the
code as it was before the move: its migrations, its demo data, an order taken through to
shipped with its label rendered and emailed, a batch recalled, access events and field history.
Then today's `manage.py migrate` runs on that database, and every row of every table is still
there, the content types moved with their models, and both staff groups keep every permission.
Since then a prescriber's one clinic became a membership of it and their one licence a licence
row: every prescriber, patient and order stays, and both migrations run backwards and forwards
again.
"""

import json
import os
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from django.db import connection
from psycopg import sql

from tests.services import service_unavailable

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# main as it was before the layers were drawn (the last commit with the old layout).
BEFORE_THE_LAYERS = "54803a6"
# model (content type) -> the app it moved to
MOVED = {
    "user": "core",
    "accessevent": "core",
    "formulation": "orders",
    "historicalformulation": "orders",
    "ingredient": "orders",
    "formulationversion": "orders",
    "historicalformulationversion": "orders",
    "formulationingredient": "orders",
}
# Models added since the move (their content types and permissions are new rows).
NEW_MODELS = {
    ("core", "passwordresetrequest"),
    ("prescribers", "membership"),
    ("prescribers", "historicalmembership"),
    ("prescribers", "licence"),
    ("prescribers", "historicallicence"),
    ("otp_static", "staticdevice"),
    ("otp_static", "statictoken"),
    ("orders", "titrationprotocol"),
    ("orders", "historicaltitrationprotocol"),
    ("orders", "orderquantity"),
    ("pharmacy", "printstation"),
    ("pharmacy", "recallbatch"),
    ("pharmacy", "pulleddispense"),
    ("pharmacy", "recallreplacement"),
    ("pharmacy", "webhookendpoint"),
    ("pharmacy", "historicalwebhookendpoint"),
    ("pharmacy", "webhookdelivery"),
    ("pharmacy", "webhookattempt"),
    ("prescribers", "apikey"),
    ("prescribers", "historicalapikey"),
    ("prescribers", "idempotentrequest"),
    ("orders", "patientaccess"),
    ("orders", "historicalpatientaccess"),
    ("orders", "diaryentry"),
    ("orders", "historicaldiaryentry"),
    ("orders", "patientreminder"),
}
# Columns dropped since: a prescriber's one clinic became their membership of it, and their
# one licence a licence row.
DROPPED = {
    "prescribers_prescriber": {"clinic_id", "license_number", "license_state"},
    "prescribers_historicalprescriber": {"clinic_id", "license_number", "license_state"},
}
# What the old code does on top of seed_demo: a recall of a batch that was dispensed, looks at
# patients' records, and a label rendered again (a second version, with its history).
OLD_CODE_ACTIVITY = """
from django.test import RequestFactory
from orders.models import Order, OrderStatus
from pharmacy.audit import record_access
from pharmacy.models import AccessAction, Batch, Delivery, DeliveryStatus, User
from pharmacy.notifications import label_render
from pharmacy.recalls import batch_recall

pharmacist = User.objects.get(email="pharmacist@demo.test")
shipped = Order.objects.filter(status=OrderStatus.SHIPPED).first()
assert shipped is not None and shipped.labels.exists()
assert Delivery.objects.filter(order=shipped, status=DeliveryStatus.SENT).exists()
label_render(order=shipped, actor=pharmacist)
request = RequestFactory().get(f"/orders/{shipped.pk}/")
request.user = pharmacist
record_access(request, AccessAction.VIEWED_ORDER, shipped)
record_access(request, AccessAction.VIEWED_PATIENT, shipped.prescription.patient)
batch = Batch.objects.filter(dispenses__order=shipped).first()
batch_recall(batch=batch, actor=pharmacist, reason="Potency out of specification.")
"""
# What today's code reads back through its models.
NEW_CODE_READS = """
import json
from django.contrib.auth.models import Group
from core.models import AccessEvent, User
from orders.models import Formulation, FormulationVersion, Ingredient, OrderEvent
pharmacist = User.objects.get(email="pharmacist@demo.test")
technician = User.objects.get(email="technician@demo.test")
print(json.dumps({
    "users": User.objects.count(),
    "access_events": AccessEvent.objects.count(),
    "formulations": Formulation.objects.count(),
    "formulation_history": Formulation.history.count(),
    "versions": FormulationVersion.objects.count(),
    "version_history": FormulationVersion.history.count(),
    "ingredients": Ingredient.objects.count(),
    "pharmacist_may": [pharmacist.has_perm(p) for p in (
        "orders.change_formulationversion", "core.view_accessevent", "core.view_user",
        "pharmacy.add_recall")],
    "technician_may": [technician.has_perm(p) for p in (
        "orders.view_formulationversion", "orders.change_formulationversion",
        "core.view_accessevent")],
    "label_events": OrderEvent.objects.filter(kind="label_rendered").count(),
    "email_events": OrderEvent.objects.filter(kind="email_sent").count(),
}))
"""


def run(code_root: Path, env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=code_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stderr[-4000:]}"
    return result.stdout


def old_tree(destination: Path) -> Path:
    """The repository's files at BEFORE_THE_LAYERS."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", BEFORE_THE_LAYERS],
        capture_output=True,
        timeout=120,
    )
    if archive.returncode != 0:
        service_unavailable(
            f"needs the repository's history (commit {BEFORE_THE_LAYERS}): "
            f"{archive.stderr.decode().strip()}"
        )
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(destination, filter="data")
    return destination


def _comparable(value):
    """JSON columns come back as dicts and lists: as sorted JSON text they compare and hash."""
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


def tables(dsn: str) -> dict[str, dict]:
    """Every table of the database: its columns and its rows (as tuples, sorted)."""
    with psycopg.connect(dsn) as db:
        names = [
            row[0]
            for row in db.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
        ]
        found = {}
        for name in names:
            cursor = db.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(name)))
            columns = [column.name for column in cursor.description]
            rows = sorted((tuple(map(_comparable, row)) for row in cursor.fetchall()), key=repr)
            found[name] = {"columns": columns, "rows": rows}
        return found


def rows_of(table: dict, columns: list[str]) -> list[tuple]:
    index = [table["columns"].index(column) for column in columns]
    return sorted((tuple(row[i] for i in index) for row in table["rows"]), key=repr)


def group_permissions(dsn: str) -> set[tuple[str, str, str]]:
    with psycopg.connect(dsn) as db:
        return set(
            db.execute(
                """
                SELECT g.name, ct.app_label, p.codename
                FROM auth_group g
                JOIN auth_group_permissions gp ON gp.group_id = g.id
                JOIN auth_permission p ON p.id = gp.permission_id
                JOIN django_content_type ct ON ct.id = p.content_type_id
                """
            )
        )


@pytest.fixture
def scratch_database(postgresql):
    """A database of this test's own on the suite's PostgreSQL server."""
    settings = connection.settings_dict
    server = f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/postgres"
    name = f"ldn_layers_{os.getpid()}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlsplit(server)
    yield parts._replace(path=f"/{name}").geturl()
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.mark.slow
def test_moving_models_between_apps_moves_no_data(scratch_database, tmp_path):
    old = old_tree(tmp_path / "before")
    base = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_SETTINGS_MODULE", "CELERY_BROKER_URL", "EMAIL_URL", "PYTHONPATH"}
    }
    base |= {"DATABASE_URL": scratch_database, "DJANGO_DEBUG": "true"}
    # The old code, on its own (its packages come first on the path).
    old_env = base | {
        "DJANGO_SETTINGS_MODULE": "pharmacy.settings",
        "PYTHONPATH": str(old),
        "PHARMACY_VAR_DIR": str(tmp_path / "old-var"),
    }
    run(old, old_env, "migrate", "--noinput", "-v", "0")
    run(old, old_env, "seed_demo")
    run(old, old_env, "shell", "-c", OLD_CODE_ACTIVITY)
    before = tables(scratch_database)
    permissions_before = group_permissions(scratch_database)
    assert before["pharmacy_recall"]["rows"] and before["pharmacy_accessevent"]["rows"]
    assert before["pharmacy_historicalformulationversion"]["rows"]

    new_env = base | {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PHARMACY_VAR_DIR": str(tmp_path / "new-var"),
    }
    output = run(ROOT, new_env, "migrate", "--noinput")
    assert "Recorded core.0001_initial (the user table exists)" in output
    after = tables(scratch_database)

    # Every row of every table is still there, column for column. (Models added since have
    # content types and permissions of their own: rows added, none changed.)
    changed = {
        "django_content_type", "django_migrations", "orders_orderevent", "auth_permission",
        "auth_group_permissions", "pharmacy_recallnotice", "pharmacy_batch",
    }  # fmt: skip
    assert set(before) <= set(after)
    # The groups keep every permission row they had (the new ones are checked below).
    granted = before["auth_group_permissions"]["columns"]
    assert set(rows_of(before["auth_group_permissions"], granted)) <= set(
        rows_of(after["auth_group_permissions"], granted)
    )
    for name in sorted(set(before) - changed):
        columns = [c for c in before[name]["columns"] if c not in DROPPED.get(name, ())]
        assert set(columns) <= set(after[name]["columns"]), name
        assert rows_of(after[name], columns) == rows_of(before[name], columns), name
    # A recall notice whose email was sent reads "sent" (its status now follows its email);
    # nothing else of it changes, and nobody has confirmed it yet.
    notice_columns = before["pharmacy_recallnotice"]["columns"]
    sent = {row[0] for row in rows_of(before["pharmacy_delivery"], ["recall_notice_id", "status"])
            if row[1] == "sent"}  # fmt: skip
    status_at = notice_columns.index("status")
    expected_notices = [
        tuple("sent" if i == status_at and row[0] in sent else value
              for i, value in enumerate(row))
        for row in rows_of(before["pharmacy_recallnotice"], notice_columns)
    ]  # fmt: skip
    assert notice_columns[0] == "id" and sent
    assert rows_of(after["pharmacy_recallnotice"], notice_columns) == expected_notices
    assert set(rows_of(after["pharmacy_recallnotice"], ["acknowledged_at"])) == {(None,)}
    # A recalled batch's remaining stock was set aside once, into quarantine: its units are on
    # the recall's record of the batch, and the batch holds none; every other batch is as it
    # was, column for column.
    batch_columns = before["pharmacy_batch"]["columns"]
    status_of, units_of = batch_columns.index("status"), batch_columns.index("units_remaining")
    recalled = {row[0]: row[units_of] for row in rows_of(before["pharmacy_batch"], batch_columns)
                if row[status_of] == "recalled"}  # fmt: skip
    assert batch_columns[0] == "id" and recalled
    assert rows_of(after["pharmacy_batch"], batch_columns) == [
        tuple(0 if i == units_of and row[0] in recalled else value for i, value in enumerate(row))
        for row in rows_of(before["pharmacy_batch"], batch_columns)
    ]
    assert sorted(rows_of(after["pharmacy_recallbatch"], ["batch_id", "units_in_stock"])) == sorted(
        recalled.items()
    )
    # Each prescriber's clinic is their active prescriber membership, dated when they applied.
    clinics = rows_of(before["prescribers_prescriber"], ["user_id", "clinic_id", "applied_at"])
    memberships = ["user_id", "clinic_id", "created_at", "role", "status"]
    assert rows_of(after["prescribers_membership"], memberships) == [
        (*row, "prescriber", "active") for row in clinics
    ]
    assert len(clinics) == 2 and before["orders_patient"]["rows"] and before["orders_order"]["rows"]
    # ... and their licence a licence row, its expiry not on file.
    licences = rows_of(before["prescribers_prescriber"], ["id", "license_state", "license_number"])
    assert rows_of(after["prescribers_licence"], ["prescriber_id", "state", "number"]) == licences
    assert {row[0] for row in rows_of(after["prescribers_licence"], ["expires_on"])} == {None}
    # The order events too, with one more each for the labels rendered and emails sent.
    events = before["orders_orderevent"]["columns"]
    old_events = rows_of(before["orders_orderevent"], events)
    new_events = rows_of(after["orders_orderevent"], events)
    assert set(old_events) <= set(new_events)
    kind = after["orders_orderevent"]["columns"].index("kind")
    kinds = [row[kind] for row in after["orders_orderevent"]["rows"]]
    labels = len(before["pharmacy_labeldocument"]["rows"])
    delivery = before["pharmacy_delivery"]["columns"]
    status, order = delivery.index("status"), delivery.index("order_id")
    emails = sum(
        1 for row in before["pharmacy_delivery"]["rows"] if row[status] == "sent" and row[order]
    )
    assert labels >= 2 and emails >= 1
    assert (kinds.count("label_rendered"), kinds.count("email_sent")) == (labels, emails)
    assert len(new_events) - len(old_events) == labels + emails
    # The content types kept their ids and moved with their models; the only new ones are of
    # models added since, and so are the only new permissions.
    expected_types = {
        (pk, MOVED.get(model, app) if app == "pharmacy" else app, model)
        for pk, app, model in before["django_content_type"]["rows"]
    }
    added_types = set(after["django_content_type"]["rows"]) - expected_types
    assert expected_types <= set(after["django_content_type"]["rows"])
    assert {(app, model) for _, app, model in added_types} == NEW_MODELS
    permissions = before["auth_permission"]["columns"]
    old_permissions = set(rows_of(before["auth_permission"], permissions))
    new_permissions = set(rows_of(after["auth_permission"], permissions)) - old_permissions
    assert old_permissions <= set(rows_of(after["auth_permission"], permissions))
    type_of = permissions.index("content_type_id")
    assert {row[type_of] for row in new_permissions} == {pk for pk, _, _ in added_types}
    # Both groups keep every permission, under the app each model belongs to now.
    verbs = ("add", "change", "delete", "view")
    moved_codenames = {f"{verb}_{model}": app for model, app in MOVED.items() for verb in verbs}
    expected = {
        (group, moved_codenames.get(codename, app) if app == "pharmacy" else app, codename)
        for group, app, codename in permissions_before
    }
    # ... and the permissions on models added since that migrations granted them.
    expected |= (
        {
            ("Pharmacist", "prescribers", codename)
            for codename in ("view_membership", "view_licence", "add_licence", "change_licence")
        }
        | {("Technician", "prescribers", c) for c in ("view_membership", "view_licence")}
        | {("Pharmacist", "pharmacy", f"{verb}_printstation") for verb in ("view", "add", "change")}
        | {("Technician", "pharmacy", "view_printstation")}
        | {
            (group, "pharmacy", f"view_{model}")
            for group in ("Pharmacist", "Technician")
            for model in ("webhookendpoint", "webhookdelivery", "webhookattempt")
        }
        | {("Pharmacist", "pharmacy", "change_webhookdelivery")}
    )
    assert group_permissions(scratch_database) == expected
    assert {group for group, _, _ in expected} == {"Pharmacist", "Technician"}

    # Today's code reads it all through its models (that the models have no change without its
    # migration is tests/test_architecture.py's).
    read = json.loads(run(ROOT, new_env, "shell", "-c", NEW_CODE_READS).strip().splitlines()[-1])
    count = {name: len(table["rows"]) for name, table in before.items()}
    assert read == {
        "users": count["pharmacy_user"],
        "access_events": count["pharmacy_accessevent"],
        "formulations": count["pharmacy_formulation"],
        "formulation_history": count["pharmacy_historicalformulation"],
        "versions": count["pharmacy_formulationversion"],
        "version_history": count["pharmacy_historicalformulationversion"],
        "ingredients": count["pharmacy_ingredient"],
        "pharmacist_may": [True, True, True, True],
        "technician_may": [True, False, False],
        "label_events": labels,
        "email_events": emails,
    }

    # The memberships' migration also runs backwards (each prescriber's clinic comes back)
    # and forwards again.
    run(ROOT, new_env, "migrate", "prescribers", "0001", "--noinput")
    back = tables(scratch_database)
    assert "prescribers_membership" not in back and "prescribers_licence" not in back
    assert rows_of(back["prescribers_prescriber"], ["user_id", "clinic_id"]) == [
        (user, clinic) for user, clinic, _ in clinics
    ]
    assert rows_of(back["prescribers_prescriber"], ["id", "license_state", "license_number"]) == (
        licences
    )
    run(ROOT, new_env, "migrate", "--noinput")
    again = tables(scratch_database)
    assert rows_of(again["prescribers_membership"], ["user_id", "clinic_id", "role"]) == [
        (user, clinic, "prescriber") for user, clinic, _ in clinics
    ]
