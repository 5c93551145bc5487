import datetime
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connections
from pytest_django.plugin import blocking_manager_key

from orders.checks import Catalogue
from orders.models import Formulation, Order, OrderStatus
from pharmacy.dispensing import dispense_allocate
from prescribers.models import MembershipRole
from tests.factories import (
    TEST_PASSWORD,
    TWO_STRENGTHS,
    BatchFactory,
    ClinicFactory,
    FormulationVersionFactory,
    MembershipFactory,
    PatientFactory,
    PrescriberFactory,
    StaffFactory,
    approve_the_catalogue,
    clinic_of,
    submit_order,
)
from tests.signing_in import verified_staff_login


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings, tmp_path):
    # Argon2 is the production hasher; tests hash with MD5 so the suite stays fast.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PORTAL_BASE_URL = "http://portal.test"
    # As in production, every email is an outbox row first; the rows are sent into
    # django.core.mail.outbox (pytest-django sets EMAIL_BACKEND to locmem, the outbox puts back).
    settings.EMAIL_BACKEND = "pharmacy.notifications.OutboxEmailBackend"
    settings.OUTBOX_EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    cache.clear()  # the process's own memory: nothing cached by an earlier test


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """The slow tests first (a stable sort: the rest keep their order): on several workers a
    long test started last would run on while the other workers have nothing left to do."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """A transactional test ends by emptying the database; serialized_rollback brings the
    contents the migrations made (the staff groups, the catalogue) back only when the next
    transactional test starts. Bring them back now, so that whatever test a worker runs next,
    in any order (xdist's worksteal), finds the database as the migrations left it."""
    result = yield
    marker = item.get_closest_marker("django_db")
    # After the worker's last test the test database is gone already (nextitem None).
    if nextitem is not None and marker is not None and marker.kwargs.get("serialized_rollback"):
        with item.config.stash[blocking_manager_key].unblock():
            for connection in connections.all(initialized_only=True):
                contents = getattr(connection, "_test_serialized_contents", None)
                if contents:
                    connection.creation.deserialize_db_from_string(contents)
    return result


@pytest.fixture(autouse=True)
def _orderable_catalogue(request):
    """A test with the database finds every product of the catalogue orderable, as in the
    pharmacy: each has an approved master formulation record (tests of a product without one
    remove it)."""
    marker = request.node.get_closest_marker("django_db")
    transactional = marker is not None and marker.kwargs.get("transaction", False)
    if "transactional_db" in request.fixturenames or "live_server" in request.fixturenames:
        transactional = True
    if marker is None and not {"db", "transactional_db"} & set(request.fixturenames):
        return
    request.getfixturevalue("transactional_db" if transactional else "db")
    approve_the_catalogue()
    Catalogue.forget()


@pytest.fixture
def clock(time_machine):
    """The time, stopped at a fixed moment (time.time, datetime, Django's timezone.now all
    follow it); clock.shift(datetime.timedelta(minutes=15)) moves it on, without sleeping."""
    time_machine.move_to(datetime.datetime(2026, 3, 2, 14, 0, tzinfo=datetime.UTC), tick=False)
    return time_machine


@pytest.fixture
def password():
    return TEST_PASSWORD


@pytest.fixture
def clinic(db):
    return ClinicFactory()


@pytest.fixture
def prescriber(clinic):
    return PrescriberFactory(clinic=clinic)


@pytest.fixture
def other_prescriber(db):
    """An approved prescriber of another clinic."""
    return PrescriberFactory()


@pytest.fixture
def clinic_staff(clinic):
    """A nurse of the prescriber's clinic: drafts orders for a prescriber to sign."""
    return MembershipFactory(clinic=clinic, role=MembershipRole.STAFF).user


@pytest.fixture
def pharmacist(db):
    return StaffFactory(group="Pharmacist")


@pytest.fixture
def technician(db):
    return StaffFactory(group="Technician")


@pytest.fixture
def superuser(db):
    return StaffFactory(is_superuser=True)


@pytest.fixture
def patient(prescriber):
    return PatientFactory(clinic=clinic_of(prescriber), created_by=prescriber.user)


@pytest.fixture
def prescriber_client(client, prescriber):
    client.force_login(prescriber.user)
    return client


@pytest.fixture
def pharmacist_client(client, pharmacist):
    verified_staff_login(client, pharmacist)
    return client


def capsule(strength: str) -> Formulation:
    return Formulation.objects.get(dosage_form="capsule", strength_mg=Decimal(strength))


@pytest.fixture
def dispensed_order(prescriber, patient, technician, clock) -> Order:
    """A verified order of two strengths, dispensed from one batch of each."""
    order = submit_order(prescriber, patient, TWO_STRENGTHS)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.VERIFIED)
    for strength, lot in (("1.5", "LDN-15-0301"), ("3", "LDN-30-0301")):
        BatchFactory(
            lot_number=lot,
            formulation_version=FormulationVersionFactory(formulation=capsule(strength)),
            compounded_on=datetime.date(2026, 2, 20),
            beyond_use_date=datetime.date(2026, 8, 19),
        )
    dispense_allocate(order=order, actor=technician)
    return Order.objects.select_related("prescription").get(pk=order.pk)
