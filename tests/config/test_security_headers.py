"""Security headers and the Content-Security-Policy: the exact policy on every page, no inline
script, style or event handler anywhere the browser renders (which the policy would block), the
production headers on a real response, and `check --deploy` clean with production variables."""

import json
import os
import re
import secrets
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import simple_history
from django.contrib import admin
from django.template.loader import render_to_string
from django.urls import reverse

from tests.config.test_settings import ROOT, SERVICE_VARIABLES, run
from tests.factories import StaffFactory, clinic_of
from tests.pharmacy.test_admin_queries import make_world, orders
from tests.signing_in import staff_device, verified_staff_login

# The enforced policy, directive by directive (django-csp writes them in no fixed order).
POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_ALLOWED_HOSTS": "portal.example.test",
    "DATABASE_URL": "postgres://portal:secret@db.internal:5432/ldn",
    "CELERY_BROKER_URL": "redis://cache.internal:6379/0",
    "EMAIL_URL": "smtp+tls://mailer:pw@smtp.internal:587",
    "PORTAL_BASE_URL": "https://portal.example.test",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://portal.example.test",
    "DJANGO_BEHIND_PROXY": "true",
}


def production(tmp_path, **overrides) -> dict[str, str]:
    return {
        **PRODUCTION,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "PHARMACY_VAR_DIR": str(tmp_path / "var"),
        **overrides,
    }


def parse_policy(header: str) -> dict[str, list[str]]:
    directives = [part.split() for part in header.split(";") if part.strip()]
    return {name: values for name, *values in directives}


class InlineCode(HTMLParser):
    """Collects what a policy without 'unsafe-inline' refuses: inline scripts, <style> blocks,
    style attributes, event-handler attributes and javascript: URLs."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        named = dict(attrs)
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.found.append(f"<{tag} {name}={value!r}>")
            if (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}={value!r}>")
        if tag == "style":
            self.found.append("<style> block")
        if tag == "script" and "src" not in named and named.get("type") != "application/json":
            self.found.append("inline <script>")


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    parser.close()
    return parser.found


def test_the_inline_code_finder_finds_each_kind():
    html = (
        '<p style="color:red"><a href="javascript:go()" onclick="go()">x</a></p>'
        "<style>p{}</style><script>go()</script>"
        '<script src="/static/a.js"></script><script type="application/json">{}</script>'
    )
    assert inline_code(html) == [
        "<p style='color:red'>",
        "<a href='javascript:go()'>",
        "<a onclick='go()'>",
        "<style> block",
        "inline <script>",
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/accounts/login/", "/apply/", "/admin/login/"])
def test_every_page_carries_the_enforced_policy(client, url):
    response = client.get(url)
    assert response.status_code == 200
    assert parse_policy(response.headers["Content-Security-Policy"]) == POLICY
    assert "Content-Security-Policy-Report-Only" not in response.headers
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"


@pytest.mark.django_db
def test_the_dose_check_answer_carries_the_policy_too(prescriber_client):
    response = prescriber_client.post(
        reverse("dose_check"), data="{}", content_type="application/json"
    )
    assert response.status_code == 400
    assert parse_policy(response.headers["Content-Security-Policy"]) == POLICY


TEMPLATE_DIRS = [ROOT / "templates", *ROOT.glob("*/templates")]
INLINE_IN_SOURCE = re.compile(
    r"<script(?![^>]*\bsrc=)(?![^>]*application/json)|<style\b|\sstyle=|\son[a-z]+=|javascript:",
    re.I,
)


def test_no_template_has_inline_script_style_or_handler():
    templates = [path for folder in TEMPLATE_DIRS for path in folder.rglob("*.html")]
    assert ROOT / "templates/base.html" in templates and len(templates) > 30
    found = {
        str(path.relative_to(ROOT)): INLINE_IN_SOURCE.findall(path.read_text())
        for path in templates
    }
    assert {path: hits for path, hits in found.items() if hits} == {}


def portal_pages(prescriber) -> list[str]:
    patient = clinic_of(prescriber).patients.first()
    order = clinic_of(prescriber).orders.first()
    return [
        reverse("home"),
        reverse("patient_list"),
        reverse("patient_create"),
        reverse("patient_detail", args=[patient.pk]),
        reverse("patient_update", args=[patient.pk]),
        reverse("order_create", args=[patient.pk]),
        reverse("order_list"),
        reverse("order_detail", args=[order.pk]),
        reverse("password_change"),
    ]


def admin_pages(request) -> list[str]:
    """Each registered model's changelist, add page, first object's page and its history."""
    urls = [reverse("admin:index")]
    for model, model_admin in admin.site._registry.items():
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        urls.append(reverse(f"{name}_changelist"))
        if model_admin.has_add_permission(request):
            urls.append(reverse(f"{name}_add"))
        first = model.objects.order_by("pk").first()
        if first is not None:
            urls.append(reverse(f"{name}_change", args=[first.pk]))
            urls.append(reverse(f"{name}_history", args=[first.pk]))
    return urls


@pytest.mark.django_db
def test_no_page_renders_inline_script_style_or_handler(client, rf, superuser):
    world = make_world()
    orders(world, 2)
    prescriber = world["prescriber"]
    pages = {}
    for url in ["/accounts/login/", "/apply/", "/accounts/password_reset/"]:
        pages[url] = client.get(url)
    client.force_login(prescriber.user)
    for url in portal_pages(prescriber):
        pages[url] = client.get(url)
    # The second-factor pages: setting up the app, then the code at a later sign-in.
    technician = StaffFactory(group="Technician")
    client.force_login(technician)
    pages["/admin/otp/enrol/"] = client.get(reverse("admin:otp_enrol"))
    staff_device(technician)
    client.force_login(technician)
    pages["/admin/otp/verify/"] = client.get(reverse("admin:otp_verify"))
    verified_staff_login(client, superuser)
    request = rf.get("/admin/")
    request.user = superuser
    for url in admin_pages(request):
        pages[url] = client.get(url)

    assert {url: r.status_code for url, r in pages.items() if r.status_code != 200} == {}
    assert len(pages) > 50
    found = {url: inline_code(r.content.decode()) for url, r in pages.items()}
    assert {url: hits for url, hits in found.items() if hits} == {}


@pytest.mark.parametrize("template", ["403.html", "404.html", "500.html"])
def test_error_pages_have_no_inline_code(rf, template):
    html = render_to_string(template, request=None if template == "500.html" else rf.get("/"))
    assert inline_code(html) == []


def test_the_field_history_list_is_the_librarys_without_its_style_attribute():
    """The admin's history page uses a copy of django-simple-history's list template whose one
    style attribute is a rule in css/admin.css; after an upgrade of the library this fails until
    the copy is taken again."""
    library = Path(simple_history.__file__).parent / "templates/simple_history"
    original = (library / "object_history_list.html").read_text()
    ours = (ROOT / "templates/admin/record_history_list.html").read_text()
    ours = re.sub(r"\A\{% comment %\}.*?\{% endcomment %\}\n", "", ours, flags=re.S)
    assert original.count(' style="border-top: 0"') == 1
    assert ours == original.replace(' style="border-top: 0"', "")


def test_every_changelist_keeps_an_actions_bar():
    """Django's change_list.html writes an inline <style> block when a changelist shows no
    actions bar at all (actions_on_top and actions_on_bottom both off): the policy would refuse
    it, so no admin of the portal turns both off."""
    without = [
        type(model_admin).__name__
        for model_admin in admin.site._registry.values()
        if not (model_admin.actions_on_top or model_admin.actions_on_bottom)
    ]
    assert without == []


HEADERS = """
import json, django
django.setup()
from django.conf import settings
# Static files are not under test here: without collectstatic there is no manifest to read.
settings.STORAGES = {**settings.STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
from django.test import Client
client = Client(raise_request_exception=True)
host = {"host": "portal.example.test"}
secure = client.get("/accounts/login/", secure=True, headers=host)
plain = client.get("/accounts/login/", headers=host)
print(json.dumps({
    "status": secure.status_code,
    "headers": {name: secure.headers.get(name) for name in [
        "Strict-Transport-Security", "Content-Security-Policy",
        "Content-Security-Policy-Report-Only", "X-Content-Type-Options", "X-Frame-Options",
        "Referrer-Policy", "Cross-Origin-Opener-Policy"]},
    "plain": [plain.status_code, plain.headers.get("Location")],
}))
"""


def production_response(tmp_path, **overrides) -> dict:
    env = production(tmp_path, **overrides)
    del env["DATABASE_URL"]  # the login page reads nothing; SQLite needs no server
    result = run(env, code=HEADERS)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_response_carries_every_security_header(tmp_path):
    shown = production_response(tmp_path)
    assert shown["status"] == 200
    headers = shown["headers"]
    assert parse_policy(headers.pop("Content-Security-Policy")) == POLICY
    assert headers == {
        "Strict-Transport-Security": "max-age=31536000; includeSubDomains; preload",
        "Content-Security-Policy-Report-Only": None,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    # Plain HTTP is sent to HTTPS before any page.
    assert shown["plain"] == [301, "https://portal.example.test/accounts/login/"]


def test_hsts_preload_and_max_age_come_from_the_environment(tmp_path):
    shown = production_response(
        tmp_path, DJANGO_SECURE_HSTS_PRELOAD="false", DJANGO_SECURE_HSTS_SECONDS="3600"
    )
    assert shown["headers"]["Strict-Transport-Security"] == "max-age=3600; includeSubDomains"


def test_check_deploy_finds_no_issue_with_the_production_variables(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # manage.py names the settings itself
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT, env={**env, **production(tmp_path)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "System check identified no issues (0 silenced).\n",
        "",
    )
