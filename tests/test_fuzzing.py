"""Fuzzing every form of the portal and the live dose check through Django's test client (the
real URL, middleware, view, form and template): 250 generated submissions each on SQLite,
100 on PostgreSQL, some a valid submission with one or two fields spoiled, some garbage (any
unicode, NULs, very long text, numbers out of range, impossible dates, lists where one value
belongs). None may give a server error, and a refused one writes no row in any table of the
portal's apps.

Speed (the whole file runs in well under 3 minutes on two cores):
- each example runs inside a savepoint that is rolled back, instead of a database flush;
- the rows of every table are counted with one query before and after;
- the test client's template instrumentation (a signal and a copy of the context for each of
  the hundreds of sub-templates crispy-forms renders per page) is switched off: the templates
  themselves still render in full;
- no shrinking: a failing example is reported as found, instead of being shrunk for minutes by
  re-running requests (and hitting the test timeout with nothing reported).
"""

import contextlib
import datetime
import functools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.contrib import messages
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.db import connection, transaction
from django.template import Template
from django.test import Client
from django.test.utils import _TestState
from django.urls import get_resolver, reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlencode, urlsafe_base64_encode
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from sesame.utils import get_query_string

from core.second_factor import recovery_codes_issue, totp_device_enrol
from orders.dosing import DosageForm, Regimen, Step
from orders.models import PatientAccess
from orders.patient_access import (
    INVITATION_SCOPE,
    SIGN_IN_SCOPE,
    diary_entry_record,
    patient_access_invite,
)
from orders.protocols import protocol_save
from orders.services import order_start_review, order_submit
from pharmacy.fulfilment import order_hold
from pharmacy.webhooks import endpoint_create
from prescribers.emails import activation_url
from prescribers.models import MembershipRole, PrescriberStatus
from tests.factories import (
    TEST_PASSWORD,
    TITRATION,
    MembershipFactory,
    PatientFactory,
    PrescriberFactory,
    TOTPDeviceFactory,
    application_form,
    clinic_of,
    order_form,
    submit_order,
)
from tests.signing_in import totp_code

pytestmark = [pytest.mark.django_db, pytest.mark.fuzz, pytest.mark.postgresql]

FUZZ = settings(
    # On PostgreSQL too (the postgresql suite), with fewer examples: it refuses what SQLite
    # accepts (a NUL in text), and each request costs more there.
    max_examples=250 if connection.vendor == "sqlite" else 100,
    deadline=None,
    database=None,  # no .hypothesis/ example files
    phases=[Phase.explicit, Phase.generate],
    # One prescriber, patient and order serve every example: each example rolls back its own
    # writes (a savepoint), so the function-scoped fixtures are the same for all of them.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
NEW_PASSWORD = "a-long-new-secret-42"
PROJECT_APPS = ("core", "prescribers", "orders", "pharmacy")


# --- What a submission may be -----------------------------------------------------------------

ODD_TEXT = [
    "", " ", "\x00", "a\x00b", "\t\n\r", "\u200b", "\ufeff", "\U0001f600", "ǅ", "İ", "ß" * 3,
    "Robert'); DROP TABLE orders_order;--", "<script>alert(1)</script>", "{{ form }}", "{% now %}",
    "%s%s%n", "../../etc/passwd", "null", "None", "true", "[]", "{}", "NaN", "-Infinity",
]  # fmt: skip
ODD_NUMBERS = [
    "0", "-0", "-1", "1e999999999", "-1e-999999999", "1E+2", "0x1A", "1_000", "٣", "½", "+5",
    " 7 ", "3.", ".5", "4,5", "9" * 30, "-" + "9" * 30, "1" + "0" * 5000, "0." + "0" * 400 + "1",
    "2147483648", "9223372036854775808", "-9223372036854775809", "32768", "65536", "1.0000001",
]  # fmt: skip
ODD_DATES = [
    "0000-00-00", "0001-01-01", "9999-12-31", "10000-01-01", "-0001-01-01", "2024-02-30",
    "2023-02-29", "1899-12-31", "1900-01-01", "00/00/0000", "13/45/2020", "02/30/2024", "2020-1-1",
    "2020-W01-1", "20200101", "today", "1e9", "2038-01-19T03:14:08Z",
]  # fmt: skip

long_text = st.builds(
    lambda piece, times: piece * times, st.text(min_size=1, max_size=3), st.integers(200, 5000)
)
numbers = (
    st.sampled_from(ODD_NUMBERS)
    | st.integers(min_value=-(10**30), max_value=10**30).map(str)
    | st.decimals(allow_nan=True, allow_infinity=True).map(str)
    | st.floats().map(repr)
)
dates = (
    st.sampled_from(ODD_DATES)
    | st.dates().map(str)
    | st.dates().map(lambda day: f"{day.month:02d}/{day.day:02d}/{day.year:04d}")
)
scalar = st.text() | st.sampled_from(ODD_TEXT) | numbers | dates | long_text
# A list where one value belongs: the field name repeated in the POST body.
form_value = scalar | st.lists(scalar, min_size=2, max_size=4)


@functools.cache
def submissions(names: tuple[str, ...]) -> st.SearchStrategy[dict]:
    """Changes to a valid submission with these fields: one to three fields spoiled or left out
    (a value of None), or garbage in place of the whole submission. Made once per form."""

    spoiled = st.dictionaries(
        st.sampled_from(names), st.none() | form_value, min_size=1, max_size=3
    ).map(lambda changes: ("near_valid", changes))
    garbage = st.dictionaries(
        st.sampled_from(names) | st.text(max_size=20), form_value, max_size=8
    ).map(lambda fields: ("garbage", fields))
    return spoiled | garbage


def submission(valid: dict, drawn: tuple[str, dict]) -> dict:
    kind, fields = drawn
    if kind == "garbage":
        return fields
    changed = {**valid, **fields}
    return {name: value for name, value in changed.items() if value is not None}


def json_values(depth_limit: int = 3) -> st.SearchStrategy:
    leaves = (
        st.none() | st.booleans() | st.integers() | st.floats() | st.text() | numbers | dates
        | st.decimals(allow_nan=False, allow_infinity=False).map(str) | long_text
    )  # fmt: skip
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner),
        max_leaves=12,
    )


def deeply_nested(opening: str, closing: str, depth: int) -> str:
    return opening * depth + closing * depth


DOSE_CHECK_EXAMPLE = {
    "dosage_form": "capsule",
    "steps": [{"dose_mg": "1.5", "days": 14}, {"dose_mg": "3", "days": 14},
              {"dose_mg": "4.5", "days": 30}],
    "doses_per_day": 1, "quantity": "58", "days_supply": 58, "refills": 2,
    "patient": {"date_of_birth": "1980-04-02", "takes_opioids": False, "medications": "",
                "pregnant_or_breastfeeding": False, "liver_disease": False},
    "diagnosis_codes": ["M79.7"],
}  # fmt: skip


@st.composite
def dose_check_bodies(draw) -> str | bytes:
    """Near-valid requests (one key, one step field or one patient fact spoiled), any JSON, or
    bytes that are not JSON at all."""
    kind = draw(st.sampled_from(["key", "step", "patient", "json", "bytes", "nested"]))
    body = json.loads(json.dumps(DOSE_CHECK_EXAMPLE))
    if kind == "key":
        key = draw(st.sampled_from([*DOSE_CHECK_EXAMPLE, "patient_id", "time_of_day",
                                    "concentration_mg_per_ml"]))  # fmt: skip
        body[key] = draw(json_values())
    elif kind == "step":
        step = draw(st.sampled_from(body["steps"]))
        step[draw(st.sampled_from(["dose_mg", "days", "x"]))] = draw(json_values())
    elif kind == "patient":
        key = draw(st.sampled_from([*body["patient"], "x"]))
        body["patient"][key] = draw(json_values())
    elif kind == "json":
        body = draw(json_values())
    elif kind == "bytes":
        return draw(st.binary(max_size=200))
    else:  # deeper than any parser's recursion limit
        opening, closing = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        return deeply_nested(opening, closing, draw(st.integers(10, 200_000)))
    return json.dumps(body, default=str, allow_nan=True)


# --- Running one submission ---------------------------------------------------------------------


@functools.cache
def _counting_query() -> tuple[list[str], str]:
    tables = sorted(
        model._meta.db_table
        for label in PROJECT_APPS
        for model in apps.get_app_config(label).get_models(include_auto_created=True)
    )
    quote = connection.ops.quote_name
    counts = ", ".join(f"(SELECT COUNT(*) FROM {quote(table)})" for table in tables)
    return tables, f"SELECT {counts}"


def row_counts() -> dict[str, int]:
    """The number of rows of every table of the portal's apps (history and through tables
    too), in one query."""
    tables, query = _counting_query()
    with connection.cursor() as cursor:
        cursor.execute(query)
        return dict(zip(tables, cursor.fetchone(), strict=True))


@contextlib.contextmanager
def rolled_back():
    """A savepoint undone at the end: each example starts from the same rows."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def refused(response) -> bool:
    """A form that comes back (with its messages), or a redirect with an error message. A 201
    is a record made and shown once on the page itself (an API key)."""
    if response.status_code == 201:
        return False
    if response.status_code != 302:
        return True
    levels = {message.level for message in messages.get_messages(response.wsgi_request)}
    return messages.ERROR in levels


@dataclass
class Form:
    """One form of the portal: where it posts, a submission it accepts, and who sends it."""

    client: Client
    url: str
    valid: dict = field(default_factory=dict)
    method: str = "post"
    finds: str = ""  # a search: what its valid query finds
    # The client's cookies between examples: a signed-in session, or a session holding the
    # token of a password link.
    cookies: dict = field(default_factory=dict)

    def __post_init__(self):
        self.cookies = {name: morsel.value for name, morsel in self.client.cookies.items()}

    def submit(self, data):
        self.client.cookies.clear()
        for name, value in self.cookies.items():
            self.client.cookies[name] = value
        mail.outbox = []
        if self.method == "get":
            return self.client.get(self.url, data)
        # As a browser posts a form (and cheaper to parse than multipart).
        return self.client.post(
            self.url, urlencode(data, doseq=True), content_type="application/x-www-form-urlencoded"
        )


# --- The forms ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _templates_without_test_instrumentation(monkeypatch):
    """The templates render as in production, without the test client's signal per template."""
    monkeypatch.setattr(Template, "_render", _TestState.saved_data.template_render)


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def order_patient(prescriber):
    """A patient with nothing that raises a warning."""
    return PatientFactory(
        clinic=clinic_of(prescriber), created_by=prescriber.user, takes_opioids=False,
        date_of_birth=datetime.date(1975, 3, 9), current_medications="Vitamin D 1000 IU daily",
    )  # fmt: skip


@pytest.fixture
def submitted_order(prescriber, order_patient):
    regimen = Regimen(
        dosage_form=DosageForm.CAPSULE, steps=(Step(Decimal("1.5"), 14), Step(Decimal("3"), 30)),
        doses_per_day=1, quantity=Decimal("44"), days_supply=44, refills=2,
    )  # fmt: skip
    return submit_order(prescriber, order_patient, regimen)


@pytest.fixture
def held_order(submitted_order, pharmacist):
    order = order_start_review(order=submitted_order, actor=pharmacist)
    return order_hold(order=order, actor=pharmacist, question="Has the patient stopped tramadol?")


def password_link(client: Client, url: str) -> str:
    """Open a password link as the email's reader would: the token goes into the session and
    the browser lands on the form's own address."""
    response = client.get(url, follow=True)
    assert 'name="new_password1"' in response.content.decode()  # the link is valid
    return response.redirect_chain[-1][0]


def reset_link(user) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": token})


PATIENT_DATA = {
    "first_name": "Wren", "last_name": "Halloway", "date_of_birth": "1968-07-21", "sex": "F",
    "phone": "(217) 555-0190", "address_line1": "4 Birch Road", "address_line2": "",
    "city": "Urbana", "state": "IL", "postal_code": "61801", "allergies": "NKDA",
    "current_medications": "", "takes_opioids": "no", "pregnant_or_breastfeeding": "",
    "liver_disease": "",
}  # fmt: skip
SET_PASSWORD = {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}


def login_form(request):
    prescriber = request.getfixturevalue("prescriber")
    return Form(Client(), reverse("login"),
                {"username": prescriber.user.email, "password": TEST_PASSWORD})  # fmt: skip


def password_reset_form(request):
    prescriber = request.getfixturevalue("prescriber")
    return Form(Client(), reverse("password_reset"), {"email": prescriber.user.email})


def password_reset_confirm_form(request):
    user = request.getfixturevalue("prescriber").user
    client = Client()
    return Form(client, password_link(client, reset_link(user)), SET_PASSWORD)


def account_activation_form(request):
    approved = PrescriberFactory(status=PrescriberStatus.APPROVED, user__password=None)
    approved.user.set_unusable_password()
    approved.user.save()
    client = Client()
    link = activation_url(approved.user).removeprefix(django_settings.PORTAL_BASE_URL)
    return Form(client, password_link(client, link), SET_PASSWORD)


def password_change_form(request):
    user = request.getfixturevalue("prescriber").user
    return Form(signed_in(user), reverse("password_change"),
                {"old_password": TEST_PASSWORD, **SET_PASSWORD})  # fmt: skip


def prescriber_application_form(request):
    return Form(Client(), reverse("prescriber_apply"), application_form())


def patient_create_form(request):
    prescriber = request.getfixturevalue("prescriber")
    return Form(signed_in(prescriber.user), reverse("patient_create"), PATIENT_DATA)


def patient_edit_form(request):
    prescriber, patient = (request.getfixturevalue(name) for name in ("prescriber", "patient"))
    return Form(signed_in(prescriber.user), reverse("patient_update", args=[patient.pk]),
                PATIENT_DATA)  # fmt: skip


def order_create_form(request):
    prescriber, patient = (request.getfixturevalue(n) for n in ("prescriber", "order_patient"))
    return Form(
        signed_in(prescriber.user), reverse("order_create", args=[patient.pk]),
        order_form(idempotency_key=str(uuid.uuid4())),
    )  # fmt: skip


def order_amend_form(request):
    prescriber, order = (request.getfixturevalue(n) for n in ("prescriber", "held_order"))
    return Form(signed_in(prescriber.user), reverse("order_amend", args=[order.pk]),
                order_form(answer="Starting lower."))  # fmt: skip


def order_answer_form(request):
    prescriber, order = (request.getfixturevalue(n) for n in ("prescriber", "held_order"))
    return Form(signed_in(prescriber.user), reverse("order_answer", args=[order.pk]),
                {"answer": "Yes, three weeks ago."})  # fmt: skip


def order_cancel_form(request):
    prescriber, order = (request.getfixturevalue(n) for n in ("prescriber", "submitted_order"))
    return Form(signed_in(prescriber.user), reverse("order_cancel", args=[order.pk]),
                {"reason": "The patient moved."})  # fmt: skip


def prescription_refill_form(request):
    prescriber, order = (request.getfixturevalue(n) for n in ("prescriber", "submitted_order"))
    return Form(
        signed_in(prescriber.user), reverse("prescription_refill", args=[order.prescription_id]),
        # Right after the first fill: an early refill, confirmed with a reason.
        {"ship_to": "clinic", "needed_by": "", "idempotency_key": str(uuid.uuid4()),
         "acknowledge": "refill.too_soon@refill", "reason": "The patient travels."},
    )  # fmt: skip


def patient_search_form(request):
    prescriber = request.getfixturevalue("prescriber")
    patient = request.getfixturevalue("patient")
    return Form(signed_in(prescriber.user), reverse("patient_list"), {"q": "05/17/1980"},
                method="get", finds=patient.last_name)  # fmt: skip


def order_search_form(request):
    prescriber, order = (request.getfixturevalue(n) for n in ("prescriber", "submitted_order"))
    valid = {"q": order.number, "status": "submitted"}
    return Form(signed_in(prescriber.user), reverse("order_list"), valid, method="get",
                finds=order.number)  # fmt: skip


def clinic_switch_form(request):
    prescriber = request.getfixturevalue("prescriber")
    other = MembershipFactory(user=prescriber.user).clinic  # a second clinic of theirs
    return Form(signed_in(prescriber.user), reverse("clinic_switch"), {"clinic": str(other.pk)})


def staff_order_create_form(request):
    """Clinic staff draft the order for the clinic's prescriber to sign."""
    prescriber, patient = (request.getfixturevalue(n) for n in ("prescriber", "order_patient"))
    nurse = MembershipFactory(clinic=patient.clinic, role=MembershipRole.STAFF).user
    return Form(
        signed_in(nurse), reverse("order_create", args=[patient.pk]),
        order_form(idempotency_key=str(uuid.uuid4()), signer=str(prescriber.pk)),
    )  # fmt: skip


def order_sign_form(request):
    prescriber, patient = (request.getfixturevalue(n) for n in ("prescriber", "order_patient"))
    nurse = MembershipFactory(clinic=patient.clinic, role=MembershipRole.STAFF).user
    draft = order_submit(
        actor=nurse, patient=patient, regimen=TITRATION, diagnosis_codes=["M79.7"],
        reason_for_compounding="Strength not available commercially", ship_to="clinic",
        needed_by=None, acknowledged=[], idempotency_key=uuid.uuid4(), signer=prescriber,
    )  # fmt: skip
    return Form(signed_in(prescriber.user), reverse("order_sign"),
                {"order": str(draft.pk), "password": TEST_PASSWORD})  # fmt: skip


def api_key_form(request):
    prescriber = request.getfixturevalue("prescriber")
    key = {"name": "Clinic EHR", "can_sign": "on", "password": TEST_PASSWORD}
    return Form(signed_in(prescriber.user), reverse("api_key_list"), key)


def clinic_team_form(request):
    prescriber = request.getfixturevalue("prescriber")
    nurse = {"first_name": "Nell", "last_name": "Nurse", "email": "nell@clinic.test"}
    return Form(signed_in(prescriber.user), reverse("clinic_team"), nurse)


PROTOCOL = {
    "name": "Standard 1.5 to 4.5 mg", "dosage_form": "capsule", "concentration_mg_per_ml": "",
    "steps": "1.5 x 14, 3 x 14, 4.5 x 30", "doses_per_day": "1", "time_of_day": "bedtime",
    "days_supply": "58", "refills": "2",
}  # fmt: skip


def protocol_create_form(request):
    prescriber = request.getfixturevalue("prescriber")
    return Form(signed_in(prescriber.user), reverse("protocol_list"), PROTOCOL)


def protocol_update_form(request):
    prescriber = request.getfixturevalue("prescriber")
    protocol = protocol_save(
        actor=prescriber.user, clinic_id=clinic_of(prescriber).pk,
        **{**PROTOCOL, "concentration_mg_per_ml": None, "name": "Sensitive", "doses_per_day": 1,
           "days_supply": 58, "refills": 2},
    )  # fmt: skip
    return Form(signed_in(prescriber.user), reverse("protocol_update", args=[protocol.pk]),
                PROTOCOL)  # fmt: skip


# A public address (no name to resolve): nothing is sent while fuzzing, no publisher runs.
WEBHOOK_ENDPOINT = {
    "url": "https://93.184.215.14/hooks", "description": "Clinic EHR",
    "events": ["order.status_changed", "order.on_hold", "recall.notice"],
}  # fmt: skip


def webhook_endpoint_create_form(request):
    prescriber = request.getfixturevalue("prescriber")
    return Form(signed_in(prescriber.user), reverse("webhook_endpoint_create"), WEBHOOK_ENDPOINT)


def webhook_endpoint_update_form(request):
    prescriber = request.getfixturevalue("prescriber")
    endpoint = endpoint_create(
        actor=prescriber.user, clinic_id=clinic_of(prescriber).pk,
        url="https://93.184.215.15/old", events=["order.shipped"],
    )  # fmt: skip
    url = reverse("webhook_endpoint_update", args=[endpoint.pk])
    return Form(signed_in(prescriber.user), url, {**WEBHOOK_ENDPOINT, "enabled": "on"})


def _with_app(user) -> TOTPDevice:
    return TOTPDeviceFactory(user=user)


def second_factor_verify_form(request):
    """After the password: a recovery code instead of the app's (a code that is not time's)."""
    user = request.getfixturevalue("prescriber").user
    _with_app(user)
    codes = recovery_codes_issue(actor=user)
    return Form(signed_in(user), reverse("second_factor_verify"),
                {"code": codes[0], "next": "/patients/"})  # fmt: skip


def security_form(request):
    user = request.getfixturevalue("prescriber").user
    device = _with_app(user)
    recovery_codes_issue(actor=user)
    client = signed_in(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id  # this session gave the app's code
    session.save()
    return Form(client, reverse("security"), {"password": TEST_PASSWORD, "action": "turn_off"})


def security_app_form(request):
    user = request.getfixturevalue("prescriber").user
    client = signed_in(user)
    device = totp_device_enrol(actor=user)
    # Accepted, it shows the recovery codes (once: on the page, never in a redirect's session).
    return Form(client, reverse("security_app"), {"code": totp_code(device)},
                finds="Your recovery codes")  # fmt: skip


# --- The patient's side ---


def patient_invite_form(request):
    prescriber, patient = (request.getfixturevalue(n) for n in ("prescriber", "order_patient"))
    invitation = {"email": "wren@mail.test", "diary_frequency": "weekly", "remind_clinic": "on"}
    return Form(signed_in(prescriber.user), reverse("patient_invite", args=[patient.pk]),
                invitation)  # fmt: skip


def _patient_access(request) -> PatientAccess:
    prescriber, patient = (request.getfixturevalue(n) for n in ("prescriber", "order_patient"))
    return patient_access_invite(patient=patient, email="wren@mail.test", actor=prescriber.user)


def patient_invitation_form(request):
    """The invitation's link: the date of birth and the terms (each example rolled back: the
    link stays good)."""
    access = _patient_access(request)
    url = f"{reverse('patient_invitation')}{get_query_string(access.user, INVITATION_SCOPE)}"
    answer = {"date_of_birth": access.patient.date_of_birth.isoformat(), "accept_terms": "on"}
    return Form(Client(), url, answer)


def patient_link_form(request):
    access = _patient_access(request)
    PatientAccess.objects.filter(pk=access.pk).update(accepted_at=timezone.now())
    url = f"{reverse('patient_link')}{get_query_string(access.user, SIGN_IN_SCOPE)}"
    return Form(Client(), url, {"date_of_birth": access.patient.date_of_birth.isoformat()})


def patient_sign_in_form(request):
    return Form(Client(), reverse("patient_sign_in"), {"email": "wren@mail.test"})


def _signed_in_patient(request) -> tuple[Client, PatientAccess]:
    access = _patient_access(request)
    PatientAccess.objects.filter(pk=access.pk).update(accepted_at=timezone.now())
    access.refresh_from_db()
    client = Client()
    client.force_login(access.user, backend="core.auth.LinkBackend")
    return client, access


DIARY_ENTRY = {
    "dose_taken": "yes", "dose_mg": "1.5", "time_taken": "bedtime", "score": "6",
    "sleep_quality": "4", "side_effects": ["vivid_dreams", "other"],
    "other_side_effect": "dry mouth", "note": "Slept late.",
}  # fmt: skip


def diary_entry_create_form(request):
    client, _ = _signed_in_patient(request)
    entry = {**DIARY_ENTRY, "day": timezone.localdate().isoformat()}
    return Form(client, reverse("diary_entry_create"), entry)


def diary_entry_update_form(request):
    client, access = _signed_in_patient(request)
    entry = diary_entry_record(access=access, actor=access.user, day=timezone.localdate(),
                               dose_taken=False, score=3, sleep_quality=5)  # fmt: skip
    return Form(client, reverse("diary_entry_update", args=[entry.pk]), DIARY_ENTRY)


def patient_settings_form(request):
    client, _ = _signed_in_patient(request)
    return Form(client, reverse("patient_settings"), {"diary_frequency": "daily"})


FORMS: dict[str, Callable] = {
    maker.__name__: maker
    for maker in (
        login_form, password_reset_form, password_reset_confirm_form, account_activation_form,
        password_change_form, prescriber_application_form, patient_create_form,
        patient_edit_form, order_create_form, order_amend_form, order_answer_form,
        order_cancel_form, prescription_refill_form, patient_search_form, order_search_form,
        clinic_switch_form, staff_order_create_form, order_sign_form, clinic_team_form,
        second_factor_verify_form, security_form, security_app_form, protocol_create_form,
        protocol_update_form, api_key_form, webhook_endpoint_create_form,
        webhook_endpoint_update_form, patient_invite_form, patient_invitation_form,
        patient_link_form, patient_sign_in_form, diary_entry_create_form,
        diary_entry_update_form, patient_settings_form,
    )
}  # fmt: skip


@pytest.fixture(params=sorted(FORMS))
def form(request) -> Form:
    return FORMS[request.param](request)


# --- The tests ----------------------------------------------------------------------------------


def test_every_form_of_the_portal_is_fuzzed():
    """A page added to the URLs is either fuzzed here or listed as one without input."""
    fuzzed = {
        "login", "password_reset", "password_reset_confirm", "account_activate",
        "password_change", "prescriber_apply", "patient_create", "patient_update",
        "patient_list", "order_create", "order_amend", "order_answer", "order_cancel",
        "prescription_refill", "order_list", "dose_check", "medication_screen", "clinic_switch",
        "order_sign", "clinic_team", "second_factor_verify", "security", "security_app",
        "protocol_list", "protocol_update", "api_key_list", "webhook_endpoint_create",
        "webhook_endpoint_update", "patient_invite", "patient_invitation", "patient_link",
        "patient_sign_in", "diary_entry_create", "diary_entry_update", "patient_settings",
    }  # fmt: skip
    without_input = {  # pages, a PDF, the health check, metrics, and logout (nothing to type)
        "home", "prescriber_apply_done", "patient_detail", "order_detail", "order_label",
        "logout", "password_change_done", "password_reset_done", "password_reset_complete",
        "health", "membership_end", "membership_accept", "recall_notice_list",
        "recall_notice_detail", "protocol_delete", "favicon", "api_key_revoke",
        "health_detail", "metrics",
        "webhook_endpoint_list", "webhook_endpoint_detail", "webhook_endpoint_rotate",
        "webhook_endpoint_delete", "webhook_delivery_resend",
        # the patient's pages without input (a refill request is a button)
        "patient_home", "patient_terms", "patient_refill", "patient_revoke",
        # the partner API's own documents (its routes: schemathesis, tests/integration)
        "api_problem", "api_schema", "api_docs",
    }  # fmt: skip
    named = {name for name in get_resolver().reverse_dict if isinstance(name, str)}
    # The partner API's routes are fuzzed from its schema (tests/integration/test_api_schema.py);
    # the FHIR routes by tests/orders/test_fhir.py (parse_bundle on any JSON) and
    # tests/orders/test_fhir_api.py (any body POSTed to the Bundle endpoint).
    portal = {name for name in named if not name.startswith(("admin", "api-", "fhir-"))}
    assert portal == fuzzed | without_input
    # The two JSON checks have tests of their own; the order form is fuzzed twice (a
    # prescriber's, and the draft of clinic staff).
    assert len(FORMS) + 2 - 1 == len(fuzzed)


def test_the_valid_submission_of_each_form_is_accepted(form):
    """The near-valid submissions start from one that works (else the fuzzing would only ever
    see refusals)."""
    response = form.submit(form.valid)
    if form.finds:
        assert response.status_code == 200
        assert form.finds in response.content.decode()
    else:
        assert response.status_code in (201, 302)
        assert not refused(response)


@FUZZ
@given(data=st.data())
def test_no_submission_makes_a_server_error_and_a_refused_one_writes_nothing(form, data):
    posted = submission(form.valid, data.draw(submissions(tuple(sorted(form.valid)))))
    note(f"posted {posted!r}")
    before = row_counts()
    with rolled_back():
        response = form.submit(posted)
        after = row_counts()
    assert response.status_code < 500
    if refused(response):
        assert after == before


def test_the_valid_dose_check_answers(prescriber_client, order_patient):
    response = prescriber_client.post(
        reverse("dose_check"),
        {**DOSE_CHECK_EXAMPLE, "patient": None, "patient_id": order_patient.pk},
        content_type="application/json",
    )
    assert response.status_code == 200 and response.json()["ok"] is True


def answers_json_and_writes_nothing(client, url: str, body) -> None:
    before = row_counts()
    with rolled_back():
        response = client.post(url, body, content_type="application/json")
        after = row_counts()
    assert response.status_code in (200, 400)
    assert response["Content-Type"] == "application/json"
    assert after == before


@FUZZ
@given(body=dose_check_bodies())
def test_the_dose_check_answers_any_body_and_writes_nothing(prescriber_client, body):
    answers_json_and_writes_nothing(prescriber_client, reverse("dose_check"), body)


@st.composite
def medication_screen_bodies(draw) -> str | bytes:
    """A medication list of any text, any JSON, or bytes that are not JSON at all."""
    kind = draw(st.sampled_from(["text", "json", "bytes", "nested"]))
    if kind == "text":
        return json.dumps({"medications": draw(st.text(max_size=300))})
    if kind == "json":
        return json.dumps(draw(json_values()), default=str, allow_nan=True)
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    opening, closing = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    return deeply_nested(opening, closing, draw(st.integers(10, 200_000)))


def test_the_valid_medication_screen_answers(prescriber_client):
    response = prescriber_client.post(
        reverse("medication_screen"),
        {"medications": "Tramadol50mg"},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert [o["drug"] for o in response.json()["opioids"]] == ["tramadol"]


@FUZZ
@given(body=medication_screen_bodies())
def test_the_medication_screen_answers_any_body_and_writes_nothing(prescriber_client, body):
    answers_json_and_writes_nothing(prescriber_client, reverse("medication_screen"), body)


def test_a_json_nested_deeper_than_the_parser_goes_is_a_400(prescriber_client):
    response = prescriber_client.post(
        reverse("dose_check"), deeply_nested("[", "]", 100_000), content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json() == {"errors": [{"field": "", "message": "Send valid JSON."}]}
