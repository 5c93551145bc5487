"""Settings come from the environment; each case starts a fresh interpreter to read them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The settings alone, read without loading the apps (django.setup() takes seconds: the ICD-10-CM
# vocabulary and WeasyPrint are loaded with them).
SHOW = """
import json
from django.conf import settings as s
print(json.dumps({
    "debug": s.DEBUG,
    "engine": s.DATABASES["default"]["ENGINE"],
    "db_name": str(s.DATABASES["default"]["NAME"]),
    "db_host": s.DATABASES["default"].get("HOST", ""),
    "eager": s.CELERY_TASK_ALWAYS_EAGER,
    "broker": s.CELERY_BROKER_URL,
    "email_backend": s.EMAIL_BACKEND,
    "email_transport": s.OUTBOX_EMAIL_BACKEND,
    "email_host": getattr(s, "EMAIL_HOST", ""),
    "email_port": getattr(s, "EMAIL_PORT", 0),
    "email_dir": str(getattr(s, "EMAIL_FILE_PATH", "")),
    "media_root": str(s.MEDIA_ROOT),
}))
"""
SERVICE_VARIABLES = {
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "EMAIL_URL",
    "DJANGO_DEBUG",
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "PHARMACY_VAR_DIR",
    "MEDIA_ROOT",
    "SESSION_IDLE_TIMEOUT_STAFF",
    "SESSION_IDLE_TIMEOUT_PRESCRIBER",
    "SESSION_ABSOLUTE_TIMEOUT",
    "DJANGO_BEHIND_PROXY",
    "LOGIN_FAILURE_LIMIT",
    "LICENCE_EXPIRY_NOTICE_DAYS",
    "LOGIN_ACCOUNT_FAILURE_LIMIT",
    "LOGIN_ADDRESS_FAILURE_LIMIT",
    "LOGIN_LOCKOUT_SECONDS",
    "DJANGO_ENV_FILE",
    "PORTAL_BASE_URL",
    "EMAIL_TIMEOUT",
    "OUTBOX_SEND_TIME_LIMIT",
    "OUTBOX_SENDING_AFTER",
    "OUTBOX_PENDING_AFTER",
    "OUTBOX_SWEEP_EVERY",
    "DATABASE_POOLER",
    "DATABASE_PREPARE_THRESHOLD",
    "MEDIA_S3_BUCKET",
    "MEDIA_S3_ENDPOINT_URL",
    "MEDIA_S3_REGION",
    "MEDIA_S3_PREFIX",
}


def run(env_overrides, code=SHOW):
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", **env_overrides)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def show(tmp_path, code=SHOW, **env):
    result = run({"PHARMACY_VAR_DIR": str(tmp_path / "var"), **env}, code)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_no_configuration_refuses_to_start(tmp_path):
    # DEBUG is off unless asked for, so a server started bare has no key to run with.
    result = run({"PHARMACY_VAR_DIR": str(tmp_path / "var")})
    assert result.returncode != 0
    assert (
        "django.core.exceptions.ImproperlyConfigured: DJANGO_SECRET_KEY must be set when "
        "DJANGO_DEBUG is false (see README, 'Environment')." in result.stderr
    )


def test_development_mode_is_the_embedded_default(tmp_path):
    var = tmp_path / "var"
    assert show(tmp_path, DJANGO_DEBUG="true") == {
        "debug": True,
        "engine": "django.db.backends.sqlite3",
        "db_name": str(var / "db.sqlite3"),
        "db_host": "",
        "eager": True,
        "broker": "memory://",
        # Every email is an outbox row; the workers write them as .eml files.
        "email_backend": "pharmacy.notifications.OutboxEmailBackend",
        "email_transport": "core.mail.EmlFileBackend",
        "email_host": "localhost",
        "email_port": 25,
        "email_dir": str(var / "mail"),
        "media_root": str(var / "media"),
    }


def test_service_urls_switch_to_the_real_services(tmp_path):
    shown = show(
        tmp_path,
        DJANGO_DEBUG="true",
        DATABASE_URL="postgres://portal:secret@db.internal:5432/ldn",
        CELERY_BROKER_URL="redis://cache.internal:6379/0",
        EMAIL_URL="smtp+tls://mailer:pw@smtp.internal:587",
    )
    assert shown["engine"] == "django.db.backends.postgresql"
    assert (shown["db_name"], shown["db_host"]) == ("ldn", "db.internal")
    assert (shown["eager"], shown["broker"]) == (False, "redis://cache.internal:6379/0")
    assert shown["email_backend"] == "pharmacy.notifications.OutboxEmailBackend"
    assert shown["email_transport"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (shown["email_host"], shown["email_port"]) == ("smtp.internal", 587)


def test_an_env_file_is_read_only_when_named(tmp_path):
    env_file = tmp_path / "portal.env"
    env_file.write_text("DJANGO_DEBUG=true\nCELERY_BROKER_URL=redis://from-file.internal:6379/0\n")
    # Named: its variables apply (the environment's own win over it).
    shown = show(tmp_path, DJANGO_ENV_FILE=str(env_file))
    assert (shown["debug"], shown["broker"]) == (True, "redis://from-file.internal:6379/0")
    shown = show(tmp_path, DJANGO_ENV_FILE=str(env_file), CELERY_BROKER_URL="memory://")
    assert shown["broker"] == "memory://"
    # Not named: nothing lying around is read (a file named .env in the project included).
    assert run({"PHARMACY_VAR_DIR": str(tmp_path)}).returncode != 0
    # Named but missing: refused with the reason.
    result = run({"DJANGO_ENV_FILE": str(tmp_path / "missing.env")})
    assert result.returncode != 0
    assert (
        f"ImproperlyConfigured: DJANGO_ENV_FILE names {tmp_path / 'missing.env'}, which is not "
        "a file." in result.stderr
    )


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"DJANGO_ALLOWED_HOSTS": "portal.example.test"}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": "x" * 50}, "DJANGO_ALLOWED_HOSTS"),
    ],
)
def test_production_refuses_to_start_without_secret_or_hosts(tmp_path, env, missing):
    result = run({"DJANGO_DEBUG": "false", "PHARMACY_VAR_DIR": str(tmp_path), **env})
    assert result.returncode != 0
    assert (
        f"django.core.exceptions.ImproperlyConfigured: {missing} must be set when DJANGO_DEBUG "
        "is false (see README, 'Environment')." in result.stderr
    )


def test_production_starts_with_both(tmp_path):
    shown = show(
        tmp_path,
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="x" * 50,
        DJANGO_ALLOWED_HOSTS="portal.example.test",
    )
    assert shown["debug"] is False


SHOW_SESSION_SETTINGS = """
import json
from django.conf import settings as s
print(json.dumps({name: getattr(s, name) for name in (
    "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_AGE", "SESSION_IDLE_TIMEOUT_STAFF", "SESSION_IDLE_TIMEOUT_PRESCRIBER",
    "SESSION_ABSOLUTE_TIMEOUT", "BEHIND_PROXY", "AXES_FAILURE_LIMIT",
    "LOGIN_ACCOUNT_FAILURE_LIMIT", "LOGIN_ADDRESS_FAILURE_LIMIT",
)} | {"AXES_COOLOFF_SECONDS": s.AXES_COOLOFF_TIME.total_seconds()}))
"""
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "x" * 50,
    "DJANGO_ALLOWED_HOSTS": "portal.example.test",
}


def show_session_settings(tmp_path, **env):
    result = run({"PHARMACY_VAR_DIR": str(tmp_path / "var"), **env}, code=SHOW_SESSION_SETTINGS)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_cookies_are_secure_and_http_only(tmp_path):
    assert show_session_settings(tmp_path, **PRODUCTION) == {
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_AGE": 12 * 3600,
        "SESSION_IDLE_TIMEOUT_STAFF": 15 * 60,
        "SESSION_IDLE_TIMEOUT_PRESCRIBER": 30 * 60,
        "SESSION_ABSOLUTE_TIMEOUT": 12 * 3600,
        "BEHIND_PROXY": False,
        "AXES_FAILURE_LIMIT": 5,
        "LOGIN_ACCOUNT_FAILURE_LIMIT": 10,
        "LOGIN_ADDRESS_FAILURE_LIMIT": 100,
        "AXES_COOLOFF_SECONDS": 15 * 60,
    }


def test_session_and_lockout_limits_come_from_the_environment(tmp_path):
    shown = show_session_settings(
        tmp_path,
        **PRODUCTION,
        SESSION_IDLE_TIMEOUT_STAFF="600",
        SESSION_IDLE_TIMEOUT_PRESCRIBER="1200",
        SESSION_ABSOLUTE_TIMEOUT="28800",
        DJANGO_BEHIND_PROXY="true",
        LOGIN_FAILURE_LIMIT="3",
        LOGIN_ACCOUNT_FAILURE_LIMIT="8",
        LOGIN_ADDRESS_FAILURE_LIMIT="250",
        LOGIN_LOCKOUT_SECONDS="1800",
    )
    assert shown == {
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_AGE": 28800,
        "SESSION_IDLE_TIMEOUT_STAFF": 600,
        "SESSION_IDLE_TIMEOUT_PRESCRIBER": 1200,
        "SESSION_ABSOLUTE_TIMEOUT": 28800,
        "BEHIND_PROXY": True,
        "AXES_FAILURE_LIMIT": 3,
        "LOGIN_ACCOUNT_FAILURE_LIMIT": 8,
        "LOGIN_ADDRESS_FAILURE_LIMIT": 250,
        "AXES_COOLOFF_SECONDS": 1800,
    }


def test_a_session_limit_of_zero_is_refused(tmp_path):
    result = run(
        {
            "PHARMACY_VAR_DIR": str(tmp_path),
            "DJANGO_DEBUG": "true",
            "SESSION_IDLE_TIMEOUT_STAFF": "0",
        }
    )
    assert result.returncode != 0
    assert (
        "django.core.exceptions.ImproperlyConfigured: SESSION_IDLE_TIMEOUT_STAFF must be a "
        "positive whole number, not 0." in result.stderr
    )


OUTBOX_LIMITS = """
import json, django
django.setup()
from django.conf import settings as s
from pharmacy.tasks import send_delivery
print(json.dumps({
    "EMAIL_TIMEOUT": s.EMAIL_TIMEOUT, "OUTBOX_SEND_TIME_LIMIT": s.OUTBOX_SEND_TIME_LIMIT,
    "OUTBOX_SENDING_AFTER": s.OUTBOX_SENDING_AFTER, "OUTBOX_SWEEP_EVERY": s.OUTBOX_SWEEP_EVERY,
    "sweep": s.CELERY_BEAT_SCHEDULE["sweep-outbox"]["schedule"],
    "send_limits": [send_delivery.soft_time_limit, send_delivery.time_limit],
}))
"""


def test_a_dead_workers_send_is_taken_back_soon_and_a_live_one_never(tmp_path):
    """A live send ends (SMTP timeout, task limits) before the sweep may take its row back."""
    result = run({"PHARMACY_VAR_DIR": str(tmp_path), "DJANGO_DEBUG": "true"}, OUTBOX_LIMITS)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "EMAIL_TIMEOUT": 10, "OUTBOX_SEND_TIME_LIMIT": 45, "OUTBOX_SENDING_AFTER": 60,
        "OUTBOX_SWEEP_EVERY": 60, "sweep": 60, "send_limits": [36, 45],
    }  # fmt: skip


@pytest.mark.parametrize(
    "limits",
    [{"EMAIL_TIMEOUT": "60"}, {"OUTBOX_SEND_TIME_LIMIT": "60"}, {"OUTBOX_SENDING_AFTER": "30"}],
)
def test_outbox_limits_that_would_send_twice_are_refused(tmp_path, limits):
    result = run({"PHARMACY_VAR_DIR": str(tmp_path), "DJANGO_DEBUG": "true", **limits})
    assert result.returncode != 0
    assert (
        "django.core.exceptions.ImproperlyConfigured: The outbox's limits must grow: "
        "EMAIL_TIMEOUT < OUTBOX_SEND_TIME_LIMIT < OUTBOX_SENDING_AFTER" in result.stderr
    )


SHOW_SERVER_SIDE_CURSORS = """
import json
from django.conf import settings as s
print(json.dumps(s.DATABASES["default"].get("DISABLE_SERVER_SIDE_CURSORS", False)))
"""
POSTGRESQL = "postgres://portal:secret@db.internal:5432/ldn"


@pytest.mark.parametrize(
    ("env", "disabled"),
    [
        ({"DATABASE_URL": POSTGRESQL}, False),
        ({"DATABASE_URL": POSTGRESQL, "DATABASE_POOLER": "false"}, False),
        # PgBouncer in transaction mode: no server-side cursors (Django's documentation).
        ({"DATABASE_URL": POSTGRESQL, "DATABASE_POOLER": "true"}, True),
        # Django's own option in the URL's query is kept, pooler or not.
        ({"DATABASE_URL": POSTGRESQL + "?DISABLE_SERVER_SIDE_CURSORS=True"}, True),
    ],
)
def test_a_connection_pooler_turns_server_side_cursors_off(tmp_path, env, disabled):
    shown = show(tmp_path, SHOW_SERVER_SIDE_CURSORS, DJANGO_DEBUG="true", **env)
    assert shown is disabled


SHOW_PREPARED_STATEMENTS = """
import json
from django.conf import settings as s
options = s.DATABASES["default"].get("OPTIONS", {})
print(json.dumps([options.get("server_side_binding"), options.get("prepare_threshold", "-")]))
"""


@pytest.mark.parametrize(
    ("env", "binding_and_threshold"),
    [
        # PostgreSQL parses and plans a statement once per connection after its fifth run.
        ({"DATABASE_URL": POSTGRESQL}, [True, 5]),
        ({"DATABASE_URL": POSTGRESQL, "DATABASE_PREPARE_THRESHOLD": "0"}, [True, 0]),
        ({"DATABASE_URL": POSTGRESQL, "DATABASE_PREPARE_THRESHOLD": ""}, [True, None]),
        # Transaction pooling: statements prepared on one server connection are not on the next.
        ({"DATABASE_URL": POSTGRESQL, "DATABASE_POOLER": "true"}, [True, None]),
        # ... unless the pooler keeps them (PgBouncer 1.21+, max_prepared_statements).
        ({"DATABASE_URL": POSTGRESQL, "DATABASE_POOLER": "true", "DATABASE_PREPARE_THRESHOLD": "5"},
         [True, 5]),
        ({}, [None, "-"]),  # SQLite: neither
    ],
)  # fmt: skip
def test_statements_are_prepared_unless_a_pooler_would_lose_them(
    tmp_path, env, binding_and_threshold
):
    shown = show(tmp_path, SHOW_PREPARED_STATEMENTS, DJANGO_DEBUG="true", **env)
    assert shown == binding_and_threshold


# The default storage, which the label PDFs' and print jobs' file fields write to (they name no
# other); no request to a bucket: django-storages connects on the first read or write.
SHOW_MEDIA_STORAGE = """
import json
from django.core.files.storage import default_storage as storage
backend = storage.__class__
shown = {"backend": f"{backend.__module__}.{backend.__qualname__}"}
if hasattr(storage, "bucket_name"):
    shown |= {name: getattr(storage, name) for name in (
        "bucket_name", "endpoint_url", "region_name", "location", "default_acl", "file_overwrite",
        "querystring_auth",
    )}
else:
    shown["location"] = storage.location
print(json.dumps(shown))
"""


def test_labels_are_files_under_media_root_without_a_bucket(tmp_path):
    assert show(tmp_path, SHOW_MEDIA_STORAGE, DJANGO_DEBUG="true") == {
        "backend": "django.core.files.storage.filesystem.FileSystemStorage",
        "location": str(tmp_path / "var" / "media"),
    }


def test_a_bucket_puts_labels_on_s3_compatible_storage(tmp_path):
    shown = show(
        tmp_path,
        SHOW_MEDIA_STORAGE,
        DJANGO_DEBUG="true",
        MEDIA_S3_BUCKET="pharmacy-labels",
        MEDIA_S3_ENDPOINT_URL="https://objects.example.test",
        MEDIA_S3_REGION="us-east-2",
        MEDIA_S3_PREFIX="portal",
    )
    assert shown == {
        "backend": "storages.backends.s3.S3Storage",
        "bucket_name": "pharmacy-labels",
        "endpoint_url": "https://objects.example.test",
        "region_name": "us-east-2",
        "location": "portal",
        "default_acl": None,  # private: the bucket's own policy
        "file_overwrite": False,  # a label version is never written over
        "querystring_auth": True,  # any address of a file is signed and expires
    }


def test_a_bucket_alone_uses_the_providers_defaults(tmp_path):
    shown = show(
        tmp_path, SHOW_MEDIA_STORAGE, DJANGO_DEBUG="true", MEDIA_S3_BUCKET="pharmacy-labels"
    )
    assert (shown["backend"], shown["bucket_name"]) == (
        "storages.backends.s3.S3Storage",
        "pharmacy-labels",
    )
    assert (shown["endpoint_url"], shown["region_name"], shown["location"]) == (None, None, "")


def test_make_run_turns_development_mode_on_with_its_own_address():
    # `make run` says development mode explicitly, and links in emails point at its port.
    result = subprocess.run(
        ["make", "--dry-run", "--always-make", "run", "PORT=8811"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if "manage.py" in line]
    development = "DJANGO_DEBUG=true PORTAL_BASE_URL=http://127.0.0.1:8811 "
    assert [line.split(development)[1] for line in commands] == [
        ".venv/bin/python manage.py migrate --noinput",
        ".venv/bin/python manage.py seed_demo",
        ".venv/bin/python manage.py runserver 127.0.0.1:8811",
    ]
