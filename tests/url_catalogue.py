"""Every URL of the portal and of the admin, each with a concrete path filled from real objects
of two clinics, so that the security tests visit them all.

The patterns come from the URL resolver itself (recursively through includes, so every page of
every registered ModelAdmin and the admin's own views are there). A pattern whose parameters
this module cannot fill stops the tests with a message naming it: a new page is either covered
or named, never silently skipped.

Clinic A holds the objects put in the URLs; clinic B's prescriber must not reach them.
"""

import datetime
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.auth.tokens import default_token_generator
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.db import connection
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.regex_helper import normalize

from core.models import AccessAction, AccessEvent, User
from orders.dosing import DosageForm, Regimen, Step
from orders.models import (
    DiaryEntry,
    Formulation,
    FormulationVersionStatus,
    Order,
    Patient,
    PatientAccess,
)
from orders.patient_access import diary_entry_record
from orders.protocols import protocol_save
from orders.services import order_start_review, order_submit, order_verify
from pharmacy.fulfilment import order_hold
from pharmacy.models import (
    BatchStatus,
    Delivery,
    DeliveryStatus,
    Dispense,
    LabelDocument,
    LotStatus,
    PrintJob,
    PrintStation,
    Recall,
    RecallNotice,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEventType,
)
from pharmacy.webhooks import endpoint_create, new_message_id, order_event_payload
from prescribers.api_keys import api_key_create, api_key_revoke
from prescribers.models import (
    ApiKey,
    Membership,
    MembershipRole,
    MembershipStatus,
    PrescriberStatus,
)
from tests.factories import (
    TEST_PASSWORD,
    BatchFactory,
    FormulationVersionFactory,
    IngredientFactory,
    IngredientLotFactory,
    MembershipFactory,
    PatientFactory,
    PrescriberFactory,
    StaffFactory,
    clinic_of,
    submit_order,
)
from tests.signing_in import staff_device

REGIMEN = Regimen(
    dosage_form=DosageForm.CAPSULE, steps=(Step(Decimal("1.5"), 30),), doses_per_day=1,
    quantity=Decimal("30"), days_supply=30, refills=2,
)  # fmt: skip


@dataclass
class World:
    """The objects the URLs are filled with: clinic A's (in the URLs) and clinic B's."""

    prescriber_a: Any
    prescriber_b: Any
    prescriber_ab: Any  # a prescriber of clinic A and of clinic B
    clinic_staff_a: Any  # a nurse of clinic A: drafts for its prescribers
    clinic_staff_b: Any  # a nurse of clinic B
    suspended_a: Any  # a suspended prescriber of clinic A
    activating_a: Any  # approved, has not chosen a password yet (the emailed link)
    staff: Any  # a staff account in neither staff group
    technician: Any
    pharmacist: Any
    superuser: Any
    patient_a: Patient
    patient_b: Patient
    order_a: Order  # submitted: the prescriber may cancel it, a pharmacist starts its review
    order_a_on_hold: Order  # with the pharmacy's question: answered or amended by the prescriber
    order_a_verified: Order  # with an Rx number, a dispense and a label
    order_b: Order
    order_a_draft: Order  # drafted by clinic A's nurse for prescriber A to sign
    recall_notice_a: Any  # the pharmacy's notice to clinic A of a recall reaching its patient
    protocol_a: Any  # a titration protocol of clinic A
    # One object of each model registered in the admin, for the admin's object URLs.
    admin_objects: dict[type, Any] = field(default_factory=dict)
    api_keys: dict[str, str] = field(default_factory=dict)  # role -> the key itself
    api_key_a: Any = None  # clinic A's key, for its page's revoke button
    webhook_endpoint_a: Any = None  # clinic A's webhook endpoint
    webhook_delivery_a: Any = None  # a failed delivery to it, which its prescribers send again
    patient_access_a: Any = None  # patient A's own access to the portal (signed in by a link)
    diary_entry_a: Any = None  # an entry of patient A's diary

    @property
    def clinic_a(self):
        return clinic_of(self.prescriber_a)

    @property
    def clinic_b(self):
        return clinic_of(self.prescriber_b)


def _order(prescriber, patient) -> Order:
    return submit_order(prescriber, patient, REGIMEN)


def _patient(clinic) -> Patient:
    return PatientFactory(
        clinic=clinic, takes_opioids=False, current_medications="",
        date_of_birth=datetime.date(1970, 5, 5),
    )  # fmt: skip


def _activating(clinic):
    """An approved prescriber who has not yet chosen a password from the approval email."""
    prescriber = PrescriberFactory(clinic=clinic)
    prescriber.user.set_unusable_password()
    prescriber.user.save(update_fields=["password"])
    return prescriber


def _clinic_staff(clinic):
    return MembershipFactory(clinic=clinic, role=MembershipRole.STAFF).user


def _draft(staff, prescriber, patient) -> Order:
    return order_submit(
        actor=staff, patient=patient, regimen=REGIMEN, diagnosis_codes=["M79.7"],
        reason_for_compounding="Strength not available commercially", ship_to="clinic",
        needed_by=None, acknowledged=[], idempotency_key=None, signer=prescriber,
    )  # fmt: skip


def _of_both(clinic_a, clinic_b):
    prescriber = PrescriberFactory(clinic=clinic_a)
    MembershipFactory(user=prescriber.user, clinic=clinic_b)
    return prescriber


def _sign_in_records() -> list:
    """What the sign-in lockout (django-axes) keeps: a failed attempt, its log, a sign-in."""
    # Not the address of anyone these tests sign in: a sign-in clears that address's attempts.
    seen = {"username": "someone@example.test", "ip_address": "203.0.113.7",
            "user_agent": "Firefox", "http_accept": "text/html",
            "path_info": "/admin/login/"}  # fmt: skip
    return [
        AccessAttempt.objects.create(**seen, get_data="", post_data="", failures_since_start=1),
        AccessFailureLog.objects.create(**seen),
        AccessLog.objects.create(**seen),
    ]


def _access_event(user, patient) -> AccessEvent:
    """The record that user saw the patient's record."""
    return AccessEvent.objects.create(
        user=user, user_email=user.email, action=AccessAction.VIEWED_PATIENT,
        content_type=ContentType.objects.get_for_model(Patient), object_id=patient.pk,
        object_description=f"Patient {patient.pk}", path=f"/patients/{patient.pk}/",
    )  # fmt: skip


def build_world() -> World:
    """Two clinics with a prescriber, patients and orders each, the pharmacy's staff, and one
    record of every kind the admin shows."""
    prescriber_a = PrescriberFactory()
    prescriber_b = PrescriberFactory()
    clinic_a = clinic_of(prescriber_a)
    pharmacist = StaffFactory(group="Pharmacist")
    technician = StaffFactory(group="Technician")
    patient_a, patient_b = _patient(clinic_a), _patient(clinic_of(prescriber_b))

    order_a = _order(prescriber_a, patient_a)
    order_a_on_hold = order_start_review(order=_order(prescriber_a, patient_a), actor=pharmacist)
    order_a_on_hold = order_hold(order=order_a_on_hold, actor=pharmacist,
                                 question="Has the patient stopped tramadol?")  # fmt: skip
    order_a_verified = order_start_review(order=_order(prescriber_a, patient_a), actor=pharmacist)
    order_a_verified = order_verify(order=order_a_verified, actor=pharmacist,
                                    password=TEST_PASSWORD)  # fmt: skip

    capsule = Formulation.objects.get(dosage_form="capsule", strength_mg=Decimal("1.5"))
    capsule.save()  # the catalogue comes from a migration: this gives it a history record
    approved = FormulationVersionFactory(formulation=capsule, author=pharmacist)
    draft = FormulationVersionFactory(
        formulation=capsule, author=pharmacist, status=FormulationVersionStatus.DRAFT
    )
    released = BatchFactory(formulation_version=approved, compounded_by=technician)
    in_progress = BatchFactory(
        formulation_version=approved, compounded_by=technician, status=BatchStatus.IN_PROGRESS,
        actual_units=None, units_remaining=Decimal("0"), beyond_use_date=None,
        bud_explanation="",
    )  # fmt: skip
    dispense = Dispense.objects.create(
        order=order_a_verified, line=order_a_verified.lines().get(), batch=released,
        units=Decimal("30"), dispensed_by=technician,
    )  # fmt: skip
    recall = Recall.objects.create(batch=released, reason="Capsule weight out of range",
                                   initiated_by=pharmacist)  # fmt: skip
    recall_notice_a = RecallNotice.objects.create(recall=recall, clinic=clinic_a)
    label = LabelDocument(order=order_a_verified, version=1, created_by=technician)
    label.file.save(f"{order_a_verified.number}-v1.pdf", ContentFile(b"%PDF-1.4\n%%EOF\n"))
    print_job = PrintJob(created_by=technician, order_ids=[order_a_verified.pk], total=1,
                         done=1, status=PrintJob.Status.DONE)  # fmt: skip
    print_job.file.save("labels-1.pdf", ContentFile(b"%PDF-1.4\n%%EOF\n"))

    clinic_staff_a = _clinic_staff(clinic_a)
    MembershipFactory(clinic=clinic_a, status=MembershipStatus.PENDING)  # asked to join
    protocol_a = protocol_save(
        actor=prescriber_a.user, clinic_id=clinic_a.pk, name="Standard 1.5 to 4.5 mg",
        dosage_form="capsule", concentration_mg_per_ml=None, steps="1.5 x 14, 3 x 14, 4.5 x 30",
        doses_per_day=1, time_of_day="bedtime", days_supply=58, refills=2,
    )  # fmt: skip
    world = World(
        prescriber_a=prescriber_a,
        prescriber_b=prescriber_b,
        prescriber_ab=_of_both(clinic_a, clinic_of(prescriber_b)),
        clinic_staff_a=clinic_staff_a,
        clinic_staff_b=_clinic_staff(clinic_of(prescriber_b)),
        suspended_a=PrescriberFactory(clinic=clinic_a, status=PrescriberStatus.SUSPENDED),
        activating_a=_activating(clinic_a),
        staff=StaffFactory(),
        technician=technician,
        pharmacist=pharmacist,
        superuser=StaffFactory(is_superuser=True),
        patient_a=patient_a,
        patient_b=patient_b,
        order_a=order_a,
        order_a_on_hold=order_a_on_hold,
        order_a_verified=order_a_verified,
        order_b=_order(prescriber_b, patient_b),
        order_a_draft=_draft(clinic_staff_a, prescriber_a, _patient(clinic_a)),
        recall_notice_a=recall_notice_a,
        protocol_a=protocol_a,
    )
    world.api_keys = _api_keys(world)
    world.api_key_a = ApiKey.objects.get(prefix=world.api_keys["key_a"].split(".")[0])
    world.webhook_endpoint_a, world.webhook_delivery_a = _webhook(world)
    world.patient_access_a, world.diary_entry_a = _patient_portal(world)
    world.admin_objects = {
        type(obj): obj
        for obj in [
            prescriber_a.user, Group.objects.get(name="Pharmacist"), capsule,
            IngredientFactory(), draft,
            IngredientLotFactory(status=LotStatus.QUARANTINE, received_by=technician),
            in_progress, dispense, Delivery.objects.get(order=order_a_on_hold), print_job,
            PrintStation.objects.create(name="Counter", output_format="zpl", dpi=203),
            recall, clinic_a, prescriber_a, prescriber_a.licences.first(),
            patient_a, order_a_verified.prescription,
            order_a_verified, staff_device(technician), *_sign_in_records(),
            _access_event(pharmacist, patient_a), world.webhook_endpoint_a,
            world.webhook_delivery_a,
        ]
    }  # fmt: skip
    return world


def _api_keys(world: World) -> dict[str, str]:
    """The partner API's keys: clinic A's (one that signs, one revoked) and clinic B's."""
    a, b = world.prescriber_a, world.prescriber_b
    keys = {
        "key_a": api_key_create(clinic=world.clinic_a, actor=a.user, name="A's EHR")[1],
        "key_a_signs": api_key_create(
            clinic=world.clinic_a,
            actor=a.user,
            name="A's signing",
            can_sign=True,
            password=TEST_PASSWORD,
        )[1],
        "key_b": api_key_create(clinic=clinic_of(b), actor=b.user, name="B's EHR")[1],
    }
    revoked, keys["key_a_revoked"] = api_key_create(
        clinic=world.clinic_a, actor=a.user, name="A's old EHR"
    )
    api_key_revoke(key=revoked, actor=a.user)
    # As if each had just been used: a request does not write its time of use again (a refused
    # request would otherwise seem to change the key's row).
    ApiKey.objects.update(last_used_at=timezone.now() + datetime.timedelta(days=1))
    return keys


def _patient_portal(world: World) -> tuple[PatientAccess, DiaryEntry]:
    """Patient A, invited and signed in, with an entry in their diary."""
    user = User.objects.create_user(email="patient.a@mail.test")
    now = timezone.now()
    access = PatientAccess.objects.create(
        patient=world.patient_a, user=user, invited_by=world.prescriber_a.user, invited_at=now,
        accepted_at=now, terms_accepted_at=now,
    )  # fmt: skip
    entry = diary_entry_record(
        access=access, actor=user, day=timezone.localdate(), dose_taken=True,
        dose_mg=Decimal("1.5"), time_taken="bedtime", score=5, sleep_quality=6,
    )  # fmt: skip
    return access, entry


def _webhook(world: World) -> tuple[WebhookEndpoint, WebhookDelivery]:
    """Clinic A's webhook endpoint (a public address: nothing is sent here), and a delivery to
    it that failed."""
    endpoint = endpoint_create(
        actor=world.prescriber_a.user, clinic_id=world.clinic_a.pk,
        url="https://93.184.215.14/hooks", events=list(WebhookEventType.values),
    )  # fmt: skip
    event = world.order_a.events.get()
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, order_event=event, event_type=WebhookEventType.ORDER_STATUS_CHANGED,
        message_id=new_message_id(), status=DeliveryStatus.FAILED, attempts=1,
        payload=order_event_payload(event, WebhookEventType.ORDER_STATUS_CHANGED),
        last_error="HTTP 500",
    )  # fmt: skip
    WebhookAttempt.objects.create(
        delivery=delivery, attempted_at=timezone.now(), response_status=500, error="HTTP 500",
        duration_ms=12,
    )  # fmt: skip
    return endpoint, delivery


# --- What fills each parameter ------------------------------------------------------------------

# The prescriber's pages: url name -> {parameter: the World attribute whose pk it takes}.
PORTAL_OBJECTS = {
    "patient_detail": {"pk": "patient_a"},
    "patient_update": {"pk": "patient_a"},
    "order_create": {"patient_pk": "patient_a"},
    "order_detail": {"pk": "order_a"},
    "order_cancel": {"pk": "order_a"},
    "order_label": {"pk": "order_a_verified"},
    "order_answer": {"pk": "order_a_on_hold"},
    "order_amend": {"pk": "order_a_on_hold"},
    "recall_notice_detail": {"pk": "recall_notice_a"},
    "protocol_update": {"pk": "protocol_a"},
    "protocol_delete": {"pk": "protocol_a"},
    "api_key_revoke": {"pk": "api_key_a"},
    "patient_invite": {"pk": "patient_a"},
    "patient_revoke": {"pk": "patient_a"},
    "diary_entry_update": {"pk": "diary_entry_a"},
    "webhook_endpoint_detail": {"pk": "webhook_endpoint_a"},
    "webhook_endpoint_update": {"pk": "webhook_endpoint_a"},
    "webhook_endpoint_rotate": {"pk": "webhook_endpoint_a"},
    "webhook_endpoint_delete": {"pk": "webhook_endpoint_a"},
    "webhook_delivery_resend": {"pk": "webhook_delivery_a"},
    # The partner API (a key of clinic A; tests/test_api_access_matrix.py for the keys' roles).
    "api-patient-detail": {"pk": "patient_a"},
    "api-order-detail": {"pk": "order_a"},
    "api-order-cancel": {"pk": "order_a"},
    "api-order-timeline": {"pk": "order_a"},
    "api-order-label": {"pk": "order_a_verified"},
}


def _activation_link(world: World) -> dict[str, str]:
    user = world.activating_a.user
    return {
        "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
        "token": default_token_generator.make_token(user),
    }


def _named_values(world: World) -> dict[str, dict[str, Any]]:
    """Parameters of URLs that are not "one object of the page's model"."""
    return {
        "account_activate": _activation_link(world),
        "password_reset_confirm": _activation_link(world),
        "prescription_refill": {"pk": world.order_a_verified.prescription_id},
        "api-prescription-refills": {"pk": world.order_a_verified.prescription_id},
        "api_problem": {"slug": "not-found"},
        # FHIR reads an order by its number (its MedicationRequest's id)
        "fhir-medication-request": {"number": world.order_a.number},
        "fhir-no-such-route": {"route": "Patient/1"},  # any address with no interaction
        # clinic A's nurse: a prescriber of A may end their place there
        "membership_end": {
            "pk": Membership.objects.get(user=world.clinic_staff_a, clinic=world.clinic_a).pk
        },
        # someone who asked to join clinic A: its prescribers accept them
        "membership_accept": {
            "pk": Membership.objects.get(clinic=world.clinic_a, status="pending").pk
        },
        # the order's next move, made by a pharmacist only (a technician is refused)
        "admin:orders_order_move": {"object_id": world.order_a.pk, "to_status": "in_review"},
        "admin:orders_order_dispense": {"object_id": world.order_a_verified.pk},
        "admin:orders_order_label": {"object_id": world.order_a_verified.pk, "version": 1},
        "admin:orders_order_rerender_label": {"object_id": world.order_a_verified.pk},
        "admin:auth_user_password_change": {"id": world.prescriber_a.user_id},
        "admin:view_on_site": {
            "content_type_id": ContentType.objects.get_for_model(Patient).pk,
            "object_id": world.patient_a.pk,
        },
        "admin:app_list": {"app_label": "orders"},
        "admin/(?P<url>.*)$": {"url": "no-such-page/"},  # the admin's final catch-all
    }


# Query strings that make a page do its work (the path alone would be refused as incomplete).
QUERY = {
    "admin:autocomplete": {"app_label": "orders", "model_name": "patient", "field_name": "clinic"},
}


# --- The resolver's patterns --------------------------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    """One URL pattern as the resolver holds it."""

    key: str  # its namespaced name ("admin:orders_order_change"), or its route if unnamed
    name: str | None
    route: str  # as ResolverMatch.route spells it
    view: Any
    levels: tuple  # the pattern of each include level, outermost first
    model: type | None  # the model of the ModelAdmin it belongs to, if any


@dataclass(frozen=True)
class Page:
    """A pattern with a concrete path."""

    key: str
    name: str | None
    route: str
    path: str  # with a query string where the page needs one
    view: Any


def _admin_models() -> dict[str, type]:
    return {f"{m._meta.app_label}/{m._meta.model_name}/": m for m in admin.site._registry}


def url_patterns() -> list[Pattern]:
    """Every pattern the resolver holds, in resolution order."""
    patterns: list[Pattern] = []
    admin_models = _admin_models()

    def walk(resolver, levels, route, namespace, model):
        for entry in resolver.url_patterns:
            entry_route = URLResolver._join_route(route, str(entry.pattern))
            if isinstance(entry, URLResolver):
                inner = namespace
                if entry.namespace:
                    inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
                in_admin = inner == admin.site.name
                walk(entry, (*levels, entry.pattern), entry_route, inner,
                     admin_models.get(str(entry.pattern)) if in_admin else model)  # fmt: skip
            else:
                assert isinstance(entry, URLPattern)
                name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
                patterns.append(Pattern(
                    key=name or entry_route, name=name, route=entry_route, view=entry.callback,
                    levels=(*levels, entry.pattern), model=model,
                ))  # fmt: skip

    walk(get_resolver(), (), "", None, None)
    return patterns


def _parameters(pattern: Pattern) -> tuple[str, list[str]]:
    """The path as a %-format string and the names of its parameters (_0, _1 when unnamed)."""
    text, names = "", []
    for level in pattern.levels:
        regex = level.regex.pattern.removeprefix("^")
        fmt, params = normalize(regex)[0]
        text += fmt
        names += params
    return text, names


def _history_id(obj) -> int | None:
    record = obj.history.order_by("-history_date", "-history_id").first()
    return None if record is None else record.history_id


def _values(pattern: Pattern, world: World, named: dict) -> tuple[dict[str, Any], list[str]]:
    """The value of each parameter of the pattern, and what could not be filled."""
    _, params = _parameters(pattern)
    values = dict(named.get(pattern.key, {}))
    portal = PORTAL_OBJECTS.get(pattern.key, {})
    obj = world.admin_objects.get(pattern.model) if pattern.model else None
    missing = []
    for param in params:
        if param in values:
            continue
        if param in portal:
            values[param] = getattr(world, portal[param]).pk
        elif obj is not None and param in ("object_id", "pk", "_0"):
            values[param] = obj.pk
        elif obj is not None and param == "_1" and hasattr(obj, "history"):
            values[param] = _history_id(obj)
        if values.get(param) is None:
            missing.append(param)
    return values, missing


class Uncatalogued(AssertionError):
    pass


def catalogue(world: World) -> tuple[dict[str, Page], list[Pattern]]:
    """Every reachable URL with its concrete path, and the patterns that no path reaches
    because an earlier pattern with the same route answers first (shadowed).

    Raises Uncatalogued naming every pattern it cannot fill."""
    named = _named_values(world)
    pages: dict[str, Page] = {}
    shadowed: list[Pattern] = []
    problems: list[str] = []
    for pattern in url_patterns():
        if pattern.model is not None and pattern.model not in world.admin_objects:
            problems.append(
                f"{pattern.key} ({pattern.route}): the admin shows {pattern.model.__name__}; "
                "add one to World.admin_objects"
            )
            continue
        values, missing = _values(pattern, world, named)
        if missing:
            problems.append(
                f"{pattern.key} ({pattern.route}): nothing fills {missing}; "
                "add it to PORTAL_OBJECTS or _named_values in tests/url_catalogue.py"
            )
            continue
        fmt, _ = _parameters(pattern)
        path = "/" + fmt % {name: str(value) for name, value in values.items()}
        match = resolve(path)
        if match.func is not pattern.view or match.route != pattern.route:
            shadowed.append(pattern)
            continue
        key = pattern.key if pattern.key not in pages else f"{pattern.key} {pattern.route}"
        if pattern.key in QUERY:
            path += "?" + urlencode(QUERY[pattern.key])
        pages[key] = Page(key=key, name=pattern.name, route=pattern.route, path=path,
                          view=pattern.view)  # fmt: skip
    if problems:
        raise Uncatalogued("URL patterns the catalogue cannot fill:\n" + "\n".join(problems))
    return pages, shadowed


# --- The database, to prove that a refused request changed nothing -----------------------------

# Rows a request may write whatever it is allowed to do (the session of the signed-in user).
UNCOMPARED_TABLES = {"django_session"}


def database_state() -> dict[str, list[tuple]]:
    """Every row of every table of the portal (except UNCOMPARED_TABLES)."""
    state = {}
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.django_table_names(only_existing=True)):
            if table in UNCOMPARED_TABLES:
                continue
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            # Sorted here: a history table's first column (the record's id) repeats.
            state[table] = sorted(cursor.fetchall(), key=repr)
    return state


def changed_tables(before: dict, after: dict) -> list[str]:
    return sorted(table for table in before.keys() | after.keys()
                  if before.get(table) != after.get(table))  # fmt: skip
