"""Who may open which page: every URL of the portal and the admin, for every role, by GET and
by POST (with a valid CSRF token and an empty body: the access decision, not the form).

The expected outcomes are the one table ACCESS below. The rules it follows (DESIGN.md, Access):
the portal is for approved prescribers and their clinics' staff (who draft, and never sign,
amend a prescription or manage the team), and every portal page filters by the clinic the
person acts for (another clinic's patient, order or prescription answers 404, never 403,
also to a prescriber of both clinics acting for the other); the admin is
for staff, whose rights come from the Pharmacist and Technician groups (a staff account in
neither group reaches only the admin's index and its own password); only a pharmacist reviews
and verifies orders, releases batches and recalls. A patient the clinic invited (signed in by an
emailed link) opens only their own pages: every clinic, staff and account page is refused
(their own diary entry is in the URLs; another patient's is a 404: tests/orders/
test_patient_portal.py).

The URLs carry clinic A's objects (tests/url_catalogue.py). A denied request (any outcome but
"ok") must also leave every table as it was. When the table and the code disagree, the test
prints the observed entries in the table's own form."""

import contextlib
import copy
import logging
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.middleware.csrf import CSRF_SESSION_KEY, _get_new_csrf_string
from django.test import Client
from django.urls import reverse

from core.sessions import PATIENT, session_role_set
from prescribers.access import ACTING_CLINIC
from tests import url_catalogue
from tests.signing_in import verified_staff_login
from tests.url_catalogue import (
    Uncatalogued,
    build_world,
    catalogue,
    changed_tables,
    database_state,
    url_patterns,
)

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "prescriber_a", "prescriber_b", "prescriber_ab", "clinic_staff_a",
         "clinic_staff_b", "suspended", "staff", "technician", "pharmacist", "unverified",
         "superuser", "patient_a")  # fmt: skip
METHODS = ("GET", "POST")

# Outcomes:
#   ok     2xx, or a redirect to a page other than a sign-in page (a form shown again counts)
#   login  a redirect to a sign-in page: the portal's, the admin's or the patients'
#   no     a redirect with a warning or an error message: the view ran and refused, or the
#          object is not there (nothing changed)
#   400 403 404 405   that status code
DENIED = {"login", "no", "400", "401", "403", "404", "405"}

# url name: (GET outcomes, POST outcomes), one per role in the order of ROLES.
# fmt: off
ACCESS: dict[str, tuple[str, str]] = {
    #    anon. pres. pres. pres. clin. clin. susp. staff tech. phar. phar. super pati-
    #          A     B     A & B staff staff pres. no          no    user  ent A
    #                      for B of A  of B        group             2FA
    # Signing in and out, passwords, applying for an account: staff go to the admin.
    "home": (
        "login ok    ok    ok    ok    ok    login ok    ok    ok    ok    ok    ok",
        "login 405   405   405   405   405   login ok    ok    ok    ok    ok    ok"),
    "login": (
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok",
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok"),
    # The browser's icon, for everyone.
    "favicon": (
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok",
        "405   405   405   405   405   405   405   405   405   405   405   405   405"),
    # The health check for the load balancer: whether the database answers, nothing else.
    "health": (
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok",
        "405   405   405   405   405   405   405   405   405   405   405   405   405"),
    # Its detail (services, the backlog in counts and ages): staff past the second factor.
    "health_detail": (
        "login 403   403   403   403   403   login ok    ok    ok    login ok    403",
        "login 403   403   403   403   403   login 405   405   405   login 405   403"),
    # Metrics: only with METRICS_TOKEN, which the tests do not configure (tests/pharmacy/
    # test_health_and_metrics.py): not there at all.
    "metrics": (
        "404   404   404   404   404   404   404   404   404   404   404   404   404",
        "404   404   404   404   404   404   404   404   404   404   404   404   404"),
    "password_reset": (
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok",
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok"),
    "account_activate": (
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok",
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok"),
    "logout": (
        "405   405   405   405   405   405   405   405   405   405   405   405   405",
        "login login login login login login login login login login login login login"),
    "password_change": (
        "login ok    ok    ok    ok    ok    login ok    ok    ok    ok    ok    403",
        "login ok    ok    ok    ok    ok    login ok    ok    ok    ok    ok    403"),
    "password_change_done": (
        "login ok    ok    ok    ok    ok    login ok    ok    ok    ok    ok    403",
        "login 405   405   405   405   405   login 405   405   405   405   405   403"),
    "password_reset_done": (
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok",
        "405   405   405   405   405   405   405   405   405   405   405   405   405"),
    "password_reset_confirm": (
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok",
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok"),
    "password_reset_complete": (
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok",
        "405   405   405   405   405   405   405   405   405   405   405   405   405"),
    "prescriber_apply": (
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok",
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok"),
    "prescriber_apply_done": (
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok",
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok"),

    # The portal's second factor: a person's own (pharmacy staff are sent to the admin's).
    "second_factor_verify": (
        "login ok    ok    ok    ok    ok    login ok    ok    ok    ok    ok    403",
        "login ok    ok    ok    ok    ok    login ok    ok    ok    ok    ok    403"),
    "security": (
        "login ok    ok    ok    ok    ok    login ok    ok    ok    ok    ok    403",
        "login ok    ok    ok    ok    ok    login ok    ok    ok    ok    ok    403"),
    "security_app": (
        "login ok    ok    ok    ok    ok    login ok    ok    ok    ok    ok    403",
        "login ok    ok    ok    ok    ok    login ok    ok    ok    ok    ok    403"),
    # A prescriber of several clinics chooses the one they act for (an empty choice is refused).
    "clinic_switch": (
        "login 405   405   405   405   405   login 403   403   403   403   403   403",
        "login no    no    no    no    no    login 403   403   403   403   403   403"),

    # The clinic's team: its prescribers invite staff and end their place (A's nurse in the URL).
    "clinic_team": (
        "login ok    ok    ok    403   403   login 403   403   403   403   403   403",
        "login ok    ok    ok    403   403   login 403   403   403   403   403   403"),
    "membership_accept": (
        "login 405   405   405   403   403   login 403   403   403   403   403   403",
        "login ok    404   404   403   403   login 403   403   403   403   403   403"),
    "membership_end": (
        "login 405   405   405   403   403   login 403   403   403   403   403   403",
        "login ok    404   404   403   403   login 403   403   403   403   403   403"),
    # The clinic's API keys: its prescribers make and revoke them (A's key in the URL).
    "api_key_list": (
        "login ok    ok    ok    403   403   login 403   403   403   403   403   403",
        "login ok    ok    ok    403   403   login 403   403   403   403   403   403"),
    "api_key_revoke": (
        "login 405   405   405   403   403   login 403   403   403   403   403   403",
        "login ok    404   404   403   403   login 403   403   403   403   403   403"),
    # The partner API answers to keys only (tests/test_api_access_matrix.py): a session is
    # not a key. Its schema, its documentation page and its problem types are public; so is
    # the FHIR endpoints' CapabilityStatement.
    **{name: ("401   " * len(ROLES), "401   " * len(ROLES)) for name in (
        "api-dose-check", "api-order-label", "api-prescription-refills", "api-patient-list",
        "api-patient-detail", "api-order-list", "api-order-detail", "api-order-cancel",
        "api-order-timeline", "fhir-bundle", "fhir-medication-request",
        "fhir-medication-dispense", "fhir-no-such-route",
    )},
    **{name: ("ok    " * len(ROLES), "405   " * len(ROLES))
       for name in ("api_problem", "api_schema", "api_docs", "fhir-metadata")},
    # The patient's portal: the clinic (its prescribers and staff) invites and revokes; the
    # patient's own pages are the patient's alone; the links and the sign-in page are public
    # (a link that is not good shows a page saying so).
    "patient_invite": (
        "login ok    404   404   ok    404   login 403   403   403   403   403   403",
        "login ok    404   404   ok    404   login 403   403   403   403   403   403"),
    "patient_revoke": (
        "login 405   405   405   405   405   login 403   403   403   403   403   403",
        "login ok    404   404   ok    404   login 403   403   403   403   403   403"),
    "patient_home": (
        "login 403   403   403   403   403   login 403   403   403   403   403   ok",
        "login 403   403   403   403   403   login 403   403   403   403   403   405"),
    "patient_invitation": (
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok",
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok"),
    "patient_link": (
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok",
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok"),
    "patient_sign_in": (
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok",
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok"),
    "patient_terms": (
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok",
        "405   405   405   405   405   405   405   405   405   405   405   405   405"),
    "patient_refill": (
        "login 403   403   403   403   403   login 403   403   403   403   403   405",
        "login 403   403   403   403   403   login 403   403   403   403   403   no"),
    "diary_entry_create": (
        "login 403   403   403   403   403   login 403   403   403   403   403   ok",
        "login 403   403   403   403   403   login 403   403   403   403   403   ok"),
    "diary_entry_update": (
        "login 403   403   403   403   403   login 403   403   403   403   403   ok",
        "login 403   403   403   403   403   login 403   403   403   403   403   ok"),
    "patient_settings": (
        "login 403   403   403   403   403   login 403   403   403   403   403   ok",
        "login 403   403   403   403   403   login 403   403   403   403   403   ok"),
    # A prescriber signs the drafts of their clinic's staff.
    "order_sign": (
        "login ok    ok    ok    403   403   login 403   403   403   403   403   403",
        "login ok    ok    ok    403   403   login 403   403   403   403   403   403"),

    # The clinic's titration protocols: everyone of the clinic reads them, its prescribers
    # change them (A's protocol in the URL).
    "protocol_list": (
        "login ok    ok    ok    ok    ok    login 403   403   403   403   403   403",
        "login ok    ok    ok    403   403   login 403   403   403   403   403   403"),
    "protocol_update": (
        "login ok    404   404   403   403   login 403   403   403   403   403   403",
        "login ok    404   404   403   403   login 403   403   403   403   403   403"),
    "protocol_delete": (
        "login 405   405   405   403   403   login 403   403   403   403   403   403",
        "login ok    404   404   403   403   login 403   403   403   403   403   403"),

    # The clinic's webhooks: its prescribers register and change endpoints and send a failed
    # delivery again (A's endpoint and delivery in the URLs); never its staff.
    "webhook_endpoint_list": (
        "login ok    ok    ok    403   403   login 403   403   403   403   403   403",
        "login 405   405   405   403   403   login 403   403   403   403   403   403"),
    "webhook_endpoint_create": (
        "login ok    ok    ok    403   403   login 403   403   403   403   403   403",
        "login ok    ok    ok    403   403   login 403   403   403   403   403   403"),
    "webhook_endpoint_detail": (
        "login ok    404   404   403   403   login 403   403   403   403   403   403",
        "login 405   405   405   403   403   login 403   403   403   403   403   403"),
    "webhook_endpoint_update": (
        "login ok    404   404   403   403   login 403   403   403   403   403   403",
        "login ok    404   404   403   403   login 403   403   403   403   403   403"),
    "webhook_endpoint_rotate": (
        "login 405   405   405   403   403   login 403   403   403   403   403   403",
        "login ok    404   404   403   403   login 403   403   403   403   403   403"),
    "webhook_endpoint_delete": (
        "login 405   405   405   403   403   login 403   403   403   403   403   403",
        "login ok    404   404   403   403   login 403   403   403   403   403   403"),
    "webhook_delivery_resend": (
        "login 405   405   405   403   403   login 403   403   403   403   403   403",
        "login ok    404   404   403   403   login 403   403   403   403   403   403"),

    # The pharmacy's recall notices to the clinic: its members read and confirm A's notice.
    "recall_notice_list": (
        "login ok    ok    ok    ok    ok    login 403   403   403   403   403   403",
        "login 405   405   405   405   405   login 403   403   403   403   403   403"),
    "recall_notice_detail": (
        "login ok    404   404   ok    404   login 403   403   403   403   403   403",
        "login ok    404   404   ok    404   login 403   403   403   403   403   403"),

    # The prescriber's portal: approved prescribers only; clinic B's answers 404 for A's objects.
    "patient_list": (
        "login ok    ok    ok    ok    ok    login 403   403   403   403   403   403",
        "login 405   405   405   405   405   login 403   403   403   403   403   403"),
    "patient_create": (
        "login ok    ok    ok    ok    ok    login 403   403   403   403   403   403",
        "login ok    ok    ok    ok    ok    login 403   403   403   403   403   403"),
    "patient_detail": (
        "login ok    404   404   ok    404   login 403   403   403   403   403   403",
        "login 405   405   405   405   405   login 403   403   403   403   403   403"),
    "patient_update": (
        "login ok    404   404   ok    404   login 403   403   403   403   403   403",
        "login ok    404   404   ok    404   login 403   403   403   403   403   403"),
    "order_create": (
        "login ok    404   404   ok    404   login 403   403   403   403   403   403",
        "login ok    404   404   ok    404   login 403   403   403   403   403   403"),
    "order_list": (
        "login ok    ok    ok    ok    ok    login 403   403   403   403   403   403",
        "login 405   405   405   405   405   login 403   403   403   403   403   403"),
    "dose_check": (
        "login 405   405   405   405   405   login 403   403   403   403   403   403",
        "login 400   400   400   400   400   login 403   403   403   403   403   403"),
    "medication_screen": (
        "login 405   405   405   405   405   login 403   403   403   403   403   403",
        "login 400   400   400   400   400   login 403   403   403   403   403   403"),
    "order_detail": (
        "login ok    404   404   ok    404   login 403   403   403   403   403   403",
        "login 405   405   405   405   405   login 403   403   403   403   403   403"),
    "order_cancel": (
        "login 405   405   405   405   405   login 403   403   403   403   403   403",
        "login ok    404   404   no    404   login 403   403   403   403   403   403"),
    "order_label": (
        "login ok    404   404   ok    404   login 403   403   403   403   403   403",
        "login 405   405   405   405   405   login 403   403   403   403   403   403"),
    "order_answer": (
        "login 405   405   405   405   405   login 403   403   403   403   403   403",
        "login no    404   404   no    404   login 403   403   403   403   403   403"),
    "order_amend": (
        "login ok    404   404   403   403   login 403   403   403   403   403   403",
        "login ok    404   404   403   403   login 403   403   403   403   403   403"),
    "prescription_refill": (
        "login ok    404   404   ok    404   login 403   403   403   403   403   403",
        "login ok    404   404   ok    404   login 403   403   403   403   403   403"),

    # The admin: staff only, and past the second factor ("pharmac. no 2FA": signed in without
    # it), except sign-in, sign-out and the second factor's own pages; every other page needs
    # the rights of a group (or superuser).
    "admin:otp_enrol": (
        "login login login login login login login ok    ok    ok    ok    ok    login",
        "login login login login login login login ok    ok    ok    ok    ok    login"),
    "admin:otp_verify": (
        "login login login login login login login ok    ok    ok    ok    ok    login",
        "login login login login login login login ok    ok    ok    ok    ok    login"),
    "admin:logout": (
        "ok    ok    ok    ok    ok    ok    ok    405   405   405   405   405   ok",
        "ok    ok    ok    ok    ok    ok    ok    login login login login login ok"),
    "admin:index": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:login": (
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok",
        "ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok"),
    "admin:password_change": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:password_change_done": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login 405   405   405   login 405   login"),
    "admin:autocomplete": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 405   405   405   login 405   login"),
    "admin:jsi18n": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login 405   405   405   login 405   login"),
    "admin:view_on_site": (
        "login login login login login login login 404   404   404   login 404   login",
        "login login login login login login login 404   404   404   login 404   login"),
    "admin:auth_group_changelist": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:auth_group_add": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:auth_group_history": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:auth_group_delete": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:auth_group_change": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    # The old change address: a redirect to the change page (whose rights are above).
    "admin/auth/group/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    # The sign-in lockout's records (django-axes): the superuser's alone.
    "admin:axes_accessattempt_changelist": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:axes_accessattempt_add": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:axes_accessattempt_history": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:axes_accessattempt_delete": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:axes_accessattempt_change": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin/axes/accessattempt/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:axes_accesslog_changelist": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:axes_accesslog_add": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:axes_accesslog_history": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:axes_accesslog_delete": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:axes_accesslog_change": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin/axes/accesslog/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:axes_accessfailurelog_changelist": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:axes_accessfailurelog_add": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:axes_accessfailurelog_history": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:axes_accessfailurelog_delete": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:axes_accessfailurelog_change": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin/axes/accessfailurelog/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    # Who saw a patient's record (access events): read by a pharmacist, changed by nobody.
    "admin:core_accessevent_changelist": (
        "login login login login login login login 403   403   ok    login ok    login",
        "login login login login login login login 403   403   ok    login ok    login"),
    "admin:core_accessevent_add": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:core_accessevent_history": (
        "login login login login login login login 403   403   ok    login ok    login",
        "login login login login login login login 403   403   ok    login ok    login"),
    "admin:core_accessevent_delete": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:core_accessevent_change": (
        "login login login login login login login 403   403   ok    login ok    login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin/core/accessevent/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:auth_user_password_change": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:core_user_changelist": (
        "login login login login login login login 403   403   ok    login ok    login",
        "login login login login login login login 403   403   ok    login ok    login"),
    "admin:core_user_add": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:core_user_history": (
        "login login login login login login login 403   403   ok    login ok    login",
        "login login login login login login login 403   403   ok    login ok    login"),
    "admin:core_user_delete": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:core_user_change": (
        "login login login login login login login 403   403   ok    login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin/core/user/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:orders_formulation_simple_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:orders_formulation_changelist": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:orders_formulation_add": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:orders_formulation_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:orders_formulation_delete": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:orders_formulation_change": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   ok    login ok    login"),
    "admin/orders/formulation/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:pharmacy_recall_csv": (
        "login login login login login login login 403   403   ok    login ok    login",
        "login login login login login login login 403   403   ok    login ok    login"),
    # The recall page's notices (JSON for its updates), and its one button: replacement orders
    # for the patients who hold recalled units, a pharmacist's (POST only).
    "admin:pharmacy_recall_notices": (
        "login login login login login login login 403   403   ok    login ok    login",
        "login login login login login login login 405   405   405   login 405   login"),
    "admin:pharmacy_recall_replacements": (
        "login login login login login login login 405   405   405   login 405   login",
        "login login login login login login login 403   403   ok    login ok    login"),
    "admin:pharmacy_recall_changelist": (
        "login login login login login login login 403   403   ok    login ok    login",
        "login login login login login login login 403   403   ok    login ok    login"),
    "admin:pharmacy_recall_add": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:pharmacy_recall_history": (
        "login login login login login login login 403   403   ok    login ok    login",
        "login login login login login login login 403   403   ok    login ok    login"),
    "admin:pharmacy_recall_delete": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:pharmacy_recall_change": (
        "login login login login login login login 403   403   ok    login ok    login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin/pharmacy/recall/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:orders_ingredient_changelist": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:orders_ingredient_add": (
        "login login login login login login login 403   403   ok    login ok    login",
        "login login login login login login login 403   403   ok    login ok    login"),
    "admin:orders_ingredient_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:orders_ingredient_delete": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:orders_ingredient_change": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   ok    login ok    login"),
    "admin/orders/ingredient/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:orders_formulationversion_simple_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:orders_formulationversion_changelist": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:orders_formulationversion_add": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:orders_formulationversion_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:orders_formulationversion_delete": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:orders_formulationversion_change": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   ok    login ok    login"),
    "admin/orders/formulationversion/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:pharmacy_ingredientlot_simple_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:pharmacy_ingredientlot_changelist": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:pharmacy_ingredientlot_add": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:pharmacy_ingredientlot_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:pharmacy_ingredientlot_delete": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:pharmacy_ingredientlot_change": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin/pharmacy/ingredientlot/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:pharmacy_batch_simple_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:pharmacy_batch_changelist": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:pharmacy_batch_add": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:pharmacy_batch_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:pharmacy_batch_delete": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:pharmacy_batch_change": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin/pharmacy/batch/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:pharmacy_dispense_changelist": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:pharmacy_dispense_add": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:pharmacy_dispense_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:pharmacy_dispense_delete": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:pharmacy_dispense_change": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin/pharmacy/dispense/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:pharmacy_delivery_changelist": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:pharmacy_delivery_add": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:pharmacy_delivery_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:pharmacy_delivery_delete": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:pharmacy_delivery_change": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   ok    login ok    login"),
    "admin/pharmacy/delivery/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    # Clinics' webhooks: staff read the endpoints (never their secrets, and nobody at the
    # pharmacy changes them) and the deliveries; a pharmacist sends a failed one again.
    "admin:pharmacy_webhookendpoint_simple_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:pharmacy_webhookendpoint_changelist": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:pharmacy_webhookendpoint_add": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:pharmacy_webhookendpoint_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:pharmacy_webhookendpoint_delete": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:pharmacy_webhookendpoint_change": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin/pharmacy/webhookendpoint/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:pharmacy_webhookdelivery_changelist": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:pharmacy_webhookdelivery_add": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:pharmacy_webhookdelivery_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:pharmacy_webhookdelivery_delete": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:pharmacy_webhookdelivery_change": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   ok    login ok    login"),
    "admin/pharmacy/webhookdelivery/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    # A batch's compounding record: for staff who see batches (no patient data in it).
    "admin:pharmacy_batch_worksheet": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    # Print stations: pharmacists add and change them, technicians see them, nobody deletes.
    "admin:pharmacy_printstation_changelist": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:pharmacy_printstation_add": (
        "login login login login login login login 403   403   ok    login ok    login",
        "login login login login login login login 403   403   ok    login ok    login"),
    "admin:pharmacy_printstation_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:pharmacy_printstation_delete": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:pharmacy_printstation_change": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   ok    login ok    login"),
    "admin/pharmacy/printstation/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:pharmacy_printjob_download": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:pharmacy_printjob_changelist": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:pharmacy_printjob_add": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:pharmacy_printjob_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:pharmacy_printjob_delete": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:pharmacy_printjob_change": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin/pharmacy/printjob/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:prescribers_clinic_simple_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:prescribers_clinic_changelist": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:prescribers_clinic_add": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:prescribers_clinic_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:prescribers_clinic_delete": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:prescribers_clinic_change": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   ok    login ok    login"),
    "admin/prescribers/clinic/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:prescribers_prescriber_simple_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   403   login 403   login"),
    # Prescribers' licences: technicians see them, pharmacists record renewals, nobody deletes.
    "admin:prescribers_licence_changelist": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:prescribers_licence_add": (
        "login login login login login login login 403   403   ok    login ok    login",
        "login login login login login login login 403   403   ok    login ok    login"),
    "admin:prescribers_licence_change": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   ok    login ok    login"),
    "admin:prescribers_licence_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:prescribers_licence_simple_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:prescribers_licence_delete": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin/prescribers/licence/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:prescribers_prescriber_changelist": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:prescribers_prescriber_add": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:prescribers_prescriber_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:prescribers_prescriber_delete": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:prescribers_prescriber_change": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   ok    login ok    login"),
    "admin/prescribers/prescriber/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:orders_patient_simple_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:orders_patient_changelist": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:orders_patient_add": (
        "login login login login login login login 403   403   ok    login ok    login",
        "login login login login login login login 403   403   ok    login ok    login"),
    "admin:orders_patient_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:orders_patient_delete": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:orders_patient_change": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   ok    login ok    login"),
    "admin/orders/patient/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:orders_prescription_simple_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:orders_prescription_changelist": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:orders_prescription_add": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:orders_prescription_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:orders_prescription_delete": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:orders_prescription_change": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin/orders/prescription/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    # Start review: a pharmacist's move; a technician is sent back with the refusal.
    "admin:orders_order_move": (
        "login login login login login login login 403   no    ok    login ok    login",
        "login login login login login login login 403   no    ok    login ok    login"),
    "admin:orders_order_rerender_label": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:orders_order_label": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:orders_order_dispense": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:orders_order_simple_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:orders_order_changelist": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:orders_order_add": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:orders_order_history": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   ok    ok    login ok    login"),
    "admin:orders_order_delete": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:orders_order_change": (
        "login login login login login login login 403   ok    ok    login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin/orders/order/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:otp_totp_totpdevice_config": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:otp_totp_totpdevice_qrcode": (
        "login login login login login login login 403   403   403   login 403   login",
        "login login login login login login login 403   403   403   login 403   login"),
    "admin:otp_totp_totpdevice_changelist": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:otp_totp_totpdevice_add": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:otp_totp_totpdevice_history": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:otp_totp_totpdevice_delete": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin:otp_totp_totpdevice_change": (
        "login login login login login login login 403   403   403   login ok    login",
        "login login login login login login login 403   403   403   login ok    login"),
    "admin/otp_totp/totpdevice/<path:object_id>/": (
        "login login login login login login login ok    ok    ok    login ok    login",
        "login login login login login login login ok    ok    ok    login ok    login"),
    "admin:app_list": (
        "login login login login login login login 404   ok    ok    login ok    login",
        "login login login login login login login 404   ok    ok    login ok    login"),
    # The admin's catch-all for unknown addresses.
    "admin/(?P<url>.*)$": (
        "login login login login login login login 404   404   404   login 404   login",
        "login login login login login login login 404   404   404   login 404   login"),
}
# fmt: on


def role_user(role: str, world):
    return {
        "anonymous": None,
        "prescriber_a": world.prescriber_a.user,
        "prescriber_b": world.prescriber_b.user,
        "prescriber_ab": world.prescriber_ab.user,
        "clinic_staff_a": world.clinic_staff_a,
        "clinic_staff_b": world.clinic_staff_b,
        "suspended": world.suspended_a.user,
        "staff": world.staff,
        "technician": world.technician,
        "pharmacist": world.pharmacist,
        "unverified": world.pharmacist,  # signed in, the second factor not yet passed
        "superuser": world.superuser,
        "patient_a": world.patient_access_a.user,
    }[role]


def sign_in(client: Client, role: str, world) -> Client:
    """The one place these tests sign a role in: the session a real sign-in gives (for staff,
    past the second factor, except the "unverified" pharmacist), and a CSRF secret the client
    sends back with every unsafe request."""
    user = role_user(role, world)
    if user is not None and user.is_staff and role != "unverified":
        verified_staff_login(client, user)  # the second factor passed
    elif role == "patient_a":  # as the emailed link signs a patient in
        client.force_login(user, backend="core.auth.LinkBackend")
        session = client.session
        session_role_set(SimpleNamespace(session=session), PATIENT)
        session.save()
    elif user is not None:
        client.force_login(user)
    if role == "prescriber_ab":  # a prescriber of clinics A and B, acting for B
        session = client.session
        session[ACTING_CLINIC] = world.clinic_b.pk
        session.save()
    secret = _get_new_csrf_string()
    if settings.CSRF_USE_SESSIONS:
        session = client.session
        session[CSRF_SESSION_KEY] = secret
        session.save()
    else:
        client.cookies[settings.CSRF_COOKIE_NAME] = secret
    client.defaults["HTTP_X_CSRFTOKEN"] = secret
    return client


def signed_in_clients(world) -> dict[str, Client]:
    return {role: sign_in(Client(enforce_csrf_checks=True), role, world) for role in ROLES}


def fresh_copy(client: Client) -> Client:
    """A client with the same session and CSRF secret (a request that signs out or rotates
    the session then leaves the others untouched)."""
    copied = Client(enforce_csrf_checks=True, raise_request_exception=False)
    copied.cookies = copy.deepcopy(client.cookies)
    copied.defaults = dict(client.defaults)
    return copied


@contextlib.contextmanager
def csrf_refusals():
    """The reasons CsrfViewMiddleware gives for the requests it refuses meanwhile (it logs
    each one on django.security.csrf)."""
    reasons: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: reasons.append(record.getMessage())
    logger = logging.getLogger("django.security.csrf")
    level = logger.level
    logger.setLevel(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield reasons
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def outcome(response) -> str:
    if response.status_code in (301, 302, 303, 307, 308):
        target = urlsplit(response["Location"]).path
        if target in (reverse("login"), reverse("admin:login"), reverse("patient_sign_in")):
            return "login"
        queued = list(messages.get_messages(response.wsgi_request))
        if any(message.level >= messages.WARNING for message in queued):
            return "no"
        return "ok"
    if 200 <= response.status_code < 300:
        return "ok"
    return str(response.status_code)


def observe(client: Client, method: str, path: str, baseline: dict) -> tuple[str, list[str]]:
    """The outcome of one request, and the tables it changed if it was denied. The request
    runs in a savepoint that is rolled back, so every request starts from the baseline."""
    with transaction.atomic(), csrf_refusals() as refused:
        response = client.generic(method, path) if method != "GET" else client.get(path)
        assert not refused, f"{method} {path} sent a valid CSRF token but: {refused}"
        result = outcome(response)
        changed = changed_tables(baseline, database_state()) if result in DENIED else []
        transaction.set_rollback(True)
    return result, changed


def expected(key: str, method: str) -> dict[str, str]:
    row = ACCESS[key][METHODS.index(method)].split()
    assert len(row) == len(ROLES), f"{key} {method}: {len(row)} outcomes for {len(ROLES)} roles"
    return dict(zip(ROLES, row, strict=True))


def table_rows(observed: dict[tuple[str, str, str], str], keys) -> list[str]:
    """The observed outcomes written as ACCESS entries (to compare with, or to paste)."""
    rows = []
    for key in keys:
        rows.append(f'    "{key}": (')
        for method, end in zip(METHODS, (",", "),"), strict=True):
            cells = "".join(f"{observed[key, method, role]:<6}" for role in ROLES).rstrip()
            rows.append(f'        "{cells}"{end}')
    return rows


@pytest.fixture
def world():
    return build_world()


@pytest.fixture
def pages(world):
    return catalogue(world)[0]


def test_the_catalogue_reaches_every_url_pattern_of_the_resolver(world):
    pages, shadowed = catalogue(world)
    assert len(pages) + len(shadowed) == len(url_patterns())
    # Only django.contrib.auth's own login, password reset and password change, which the
    # portal's answer first.
    assert [(p.name, p.route) for p in shadowed] == [
        ("login", "accounts/login/"), ("password_change", "accounts/password_change/"),
        ("password_change_done", "accounts/password_change/done/"),
        ("password_reset", "accounts/password_reset/"),
    ]  # fmt: skip
    for pattern in shadowed:
        assert pages[pattern.name].route == pattern.route


def test_a_url_the_catalogue_cannot_fill_is_named(world, monkeypatch):
    monkeypatch.delitem(url_catalogue.PORTAL_OBJECTS, "order_label")
    del world.admin_objects[type(world.order_a)]
    with pytest.raises(Uncatalogued) as refused:
        catalogue(world)
    message = str(refused.value)
    assert "order_label (orders/<int:pk>/label/): nothing fills ['pk']" in message
    assert "admin:orders_order_change (admin/orders/order/<path:object_id>/change/)" in message
    assert "admin:orders_order_move" in message


def test_the_table_names_every_url_of_the_catalogue_and_nothing_else(pages):
    assert sorted(set(pages) - set(ACCESS)) == [], "URLs missing from ACCESS"
    assert sorted(set(ACCESS) - set(pages)) == [], "ACCESS names URLs that no longer exist"


# The URLs are shared out over this many tests per method, so that the test runner's workers
# share them too (one test of every URL took minutes on one worker while the other idled).
SHARDS = 4


@pytest.mark.parametrize("shard", range(SHARDS))
@pytest.mark.parametrize("method", METHODS)
def test_every_url_answers_every_role_as_the_table_says(world, pages, method, shard):
    """One request per URL and role, each in a savepoint rolled back after it: all mismatches
    are collected and reported at once, with the observed entries in the table's form. Each
    shard takes every SHARDS-th URL in name order: together they take every URL once."""
    clients = signed_in_clients(world)
    baseline = database_state()
    other = METHODS[1 - METHODS.index(method)]
    mismatches, changes, observed, wrong = [], [], {}, {}
    for key in sorted(pages)[shard::SHARDS]:
        page = pages[key]
        want = expected(key, method) if key in ACCESS else {}
        for role in ROLES:
            got, changed = observe(fresh_copy(clients[role]), method, page.path, baseline)
            observed[key, method, role] = got
            observed[key, other, role] = expected(key, other)[role] if key in ACCESS else "?"
            if want.get(role) != got:
                wrong[key] = True
                mismatches.append(f"{key} {method} as {role}: expected {want.get(role)}, got {got}")
            if changed:
                changes.append(
                    f"{key} {method} as {role} was refused ({got}) but changed {changed}"
                )
    report = [*mismatches, *changes, "Observed:", *table_rows(observed, wrong)]
    assert not mismatches and not changes, "\n".join(report)
