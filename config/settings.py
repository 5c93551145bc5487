"""Settings of the LDN order portal, read from the environment (django-environ).

Without service URLs the portal runs on its embedded default: SQLite under var/, Celery tasks
executed in-process, email written as .eml files under var/mail/, media under var/media/.
DATABASE_URL, CELERY_BROKER_URL and EMAIL_URL switch to PostgreSQL, Redis and SMTP. DEBUG is
off unless DJANGO_DEBUG turns it on (`make run` does); with it off, DJANGO_SECRET_KEY and
DJANGO_ALLOWED_HOSTS are required.
"""

from datetime import timedelta
from pathlib import Path

import environ
import font_lato
import xstatic.pkg.bootstrap
from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from localflavor.us.us_states import STATES_NORMALIZED

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A file of variables is read only when DJANGO_ENV_FILE names it (relative to the project):
# nothing lying in the folder changes the settings unasked.
if env_file := env.str("DJANGO_ENV_FILE", default=""):
    if not (BASE_DIR / env_file).is_file():
        raise ImproperlyConfigured(f"DJANGO_ENV_FILE names {env_file}, which is not a file.")
    environ.Env.read_env(BASE_DIR / env_file, overwrite=False)

# Off unless the environment turns it on (`make run` does, for development): a server started
# without configuration refuses to start rather than serve with a development key.
DEBUG = env.bool("DJANGO_DEBUG", default=False)


def _required_in_production(name: str, value):
    if not DEBUG and not value:
        raise ImproperlyConfigured(
            f"{name} must be set when DJANGO_DEBUG is false (see README, 'Environment')."
        )
    return value


def _positive(name: str, default: int) -> int:
    value = env.int(name, default=default)
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive whole number, not {value}.")
    return value


SECRET_KEY = _required_in_production(
    "DJANGO_SECRET_KEY",
    env.str("DJANGO_SECRET_KEY", default="" if not DEBUG else "insecure-development-key-only"),
)
ALLOWED_HOSTS = _required_in_production(
    "DJANGO_ALLOWED_HOSTS",
    env.list(
        "DJANGO_ALLOWED_HOSTS", default=[] if not DEBUG else ["127.0.0.1", "localhost", "[::1]"]
    ),
)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# Where the embedded default keeps its database, mail and media.
VAR_DIR = Path(env.str("PHARMACY_VAR_DIR", default=str(BASE_DIR / "var")))

# The portal's own address, for links in emails sent by workers (no request there).
PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
PHARMACY_NAME = env.str("PHARMACY_NAME", default="Demo Compounding Pharmacy")
# Printed on every label (the demo values are invented).
PHARMACY_ADDRESS = env.str("PHARMACY_ADDRESS", default="1 Example Plaza, Springfield, IL 62701")
PHARMACY_PHONE = env.str("PHARMACY_PHONE", default="(217) 555-0100")
# The states whose boards of pharmacy license this pharmacy: it fills prescriptions only for
# patients there (two-letter codes, comma-separated). The demo pharmacy serves the Midwest.
PHARMACY_LICENSED_STATES = frozenset(
    code.strip().upper()
    for code in env.list(
        "PHARMACY_LICENSED_STATES", default=["IL", "IN", "IA", "MI", "MN", "MO", "OH", "WI"]
    )
)
if unknown_states := PHARMACY_LICENSED_STATES - set(STATES_NORMALIZED.values()):
    raise ImproperlyConfigured(
        f"PHARMACY_LICENSED_STATES names no US state: {', '.join(sorted(unknown_states))}."
    )
# Label size for the label printer, e.g. "4in 2in" (CSS page size).
LABEL_PAGE_SIZE = env.str("LABEL_PAGE_SIZE", default="4in 2in")
# A prescriber's state licence expiring within this many days is flagged on the portal's
# dashboard and in the admin, and the prescriber gets one email about it (the issue's 30 days:
# time to renew with the state board before orders for that state are held).
LICENCE_EXPIRY_NOTICE_DAYS = _positive("LICENCE_EXPIRY_NOTICE_DAYS", 30)

INSTALLED_APPS = [
    "whitenoise.runserver_nostatic",
    "pharmacy.apps.PharmacyAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "crispy_forms",
    "crispy_bootstrap5",
    "localflavor",
    "phonenumber_field",
    "simple_history",
    "axes",
    # The layers, lowest first (README, "Layout").
    "core",
    "prescribers",
    "orders",
    "pharmacy",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Before any view or query: a control character in the address is a 400 that says why.
    "core.middleware.ControlCharactersMiddleware",
    # After authentication and messages: signs out idle or too old sessions, with a message.
    "core.sessions.SessionTimeoutMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.context_processors.portal",
                "pharmacy.context_processors.recall_banner",
            ],
        },
    },
]

if not env.str("DATABASE_URL", default=""):
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # SQLite creates the file, not its folder
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Behind a pooler in transaction mode (PgBouncer), consecutive transactions of one Django
    # connection may run on different server connections, which breaks the server-side cursors
    # of .iterator() (Django's documentation, "Transaction pooling and server-side cursors") and
    # statements prepared on another server connection.
    pooled = env.bool("DATABASE_POOLER", default=False)
    if pooled:
        DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    # Parameters travel apart from the SQL (server-side binding), so that psycopg prepares a
    # statement once the connection has run it 5 times: PostgreSQL then parses and plans it once
    # per connection instead of on every request (the order form's and the live dose check's
    # rule reads, the label's read: the same few statements all day). Not behind a pooler unless
    # it keeps prepared statements (PgBouncer 1.21+ with max_prepared_statements): then set
    # DATABASE_PREPARE_THRESHOLD=5 there.
    prepare_after = env.str("DATABASE_PREPARE_THRESHOLD", default="" if pooled else "5")
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        server_side_binding=True, prepare_threshold=int(prepare_after) if prepare_after else None
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The cache (the pharmacy's dashboard figures): each process's memory unless CACHE_URL names a
# shared one (redis://host:6379/1), so that several web processes compute them once between them.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

AUTH_USER_MODEL = "core.User"
# django-axes first: it refuses a locked-out sign-in before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "core.auth.PortalBackend",
    # A patient signs in by an emailed link, never a password (orders/patient_access.py).
    "core.auth.LinkBackend",
]
# The patient's links (django-sesame): each works once (a sign-in changes the account's last
# login, which the link is signed with) and for SESAME_MAX_AGE unless the page says less or more
# (an invitation: PATIENT_INVITATION_DAYS).
SESAME_ONE_TIME = True
SESAME_MAX_AGE = timedelta(minutes=_positive("PATIENT_SIGN_IN_LINK_MINUTES", 30))
PATIENT_INVITATION_DAYS = _positive("PATIENT_INVITATION_DAYS", 7)
LOGIN_URL = "login"
PATIENT_LOGIN_URL = "patient_sign_in"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Sign-in lockout (django-axes, counted by core.auth.LockoutHandler), per OWASP: failures are
# counted per account and client address (LOGIN_FAILURE_LIMIT: one person mistyping), per
# account from any address (LOGIN_ACCOUNT_FAILURE_LIMIT: guesses spread over addresses), and per
# address for every account (LOGIN_ADDRESS_FAILURE_LIMIT, much higher: a clinic's staff share one
# internet address, and one person's typos must not lock them all out). Reaching any of them
# pauses those sign-ins for LOGIN_LOCKOUT_SECONDS after the last failure.
AXES_HANDLER = "core.auth.LockoutHandler"
AXES_FAILURE_LIMIT = _positive("LOGIN_FAILURE_LIMIT", 5)
LOGIN_ACCOUNT_FAILURE_LIMIT = _positive("LOGIN_ACCOUNT_FAILURE_LIMIT", 10)
LOGIN_ADDRESS_FAILURE_LIMIT = _positive("LOGIN_ADDRESS_FAILURE_LIMIT", 100)
AXES_COOLOFF_TIME = timedelta(seconds=_positive("LOGIN_LOCKOUT_SECONDS", 15 * 60))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# Tries while locked out neither count nor prolong the lockout: it ends at the stated time.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_USERNAME_FORM_FIELD = "username"  # the login forms' field (the email), portal and admin
AXES_USERNAME_CALLABLE = "core.auth.lockout_username"
AXES_CLIENT_IP_CALLABLE = "core.auth.client_ip"
AXES_LOCKOUT_CALLABLE = "core.auth.lockout_response"
# Quiet: no start-up banner, no email or IP address in log lines (they are masked), and no
# CSRF token copied into the attempt rows.
AXES_VERBOSE = False
# Only the failures are kept (rows that expire with the cool-off); no row per sign-in.
AXES_DISABLE_ACCESS_LOG = True
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "csrfmiddlewaretoken"]

# Sessions: a new key at sign-in (Django), ended server-side at sign-out, signed out after a
# time without activity (staff sooner: the admin reaches every clinic's patients) and at the
# latest SESSION_ABSOLUTE_TIMEOUT after signing in (pharmacy/sessions.py). All in seconds.
SESSION_IDLE_TIMEOUT_STAFF = _positive("SESSION_IDLE_TIMEOUT_STAFF", 15 * 60)
SESSION_IDLE_TIMEOUT_PRESCRIBER = _positive("SESSION_IDLE_TIMEOUT_PRESCRIBER", 30 * 60)
SESSION_IDLE_TIMEOUT_PATIENT = _positive("SESSION_IDLE_TIMEOUT_PATIENT", 15 * 60)
SESSION_ABSOLUTE_TIMEOUT = _positive("SESSION_ABSOLUTE_TIMEOUT", 12 * 3600)
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_TIMEOUT

# The one-time link that lets an approved prescriber set a password, and password reset links.
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", default=3 * 24 * 3600)
# At most this many reset emails to one address an hour, however often the page is sent.
PASSWORD_RESET_EMAILS_PER_HOUR = _positive("PASSWORD_RESET_EMAILS_PER_HOUR", 3)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("PHARMACY_TIME_ZONE", default="America/New_York")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# Bootstrap comes from the xstatic-bootstrap wheel and is served by the portal itself (no CDN).
# The label font (Lato, SIL Open Font License) comes from the font-lato wheel, embedded in PDFs.
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("bootstrap", xstatic.pkg.bootstrap.BASE_DIR),
    ("fonts/lato", Path(font_lato.__file__).parent / "files"),
]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# Label PDFs and print jobs: files under MEDIA_ROOT (one machine, or a folder every machine
# mounts), or an S3-compatible bucket (django-storages) that every web process and worker shares
# when MEDIA_S3_BUCKET names one. The portal streams each file through its own views (the access
# audit sees every download), never a bucket address, so the bucket stays private; boto3 takes
# its credentials from its own variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or the
# machine's role, never from these settings.
if media_bucket := env.str("MEDIA_S3_BUCKET", default=""):
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": media_bucket,
            "endpoint_url": env.str("MEDIA_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("MEDIA_S3_REGION", default="") or None,
            "location": env.str("MEDIA_S3_PREFIX", default=""),
            "default_acl": None,  # the bucket's own policy: private
            "file_overwrite": False,  # a file is never written over (label versions are kept)
        },
    }

# In development whitenoise serves straight from the app folders (no collectstatic needed).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# Field history is a record: the admin shows it and never reverts to an old version.
SIMPLE_HISTORY_REVERT_DISABLED = True

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"
PHONENUMBER_DEFAULT_REGION = "US"
PHONENUMBER_DEFAULT_FORMAT = "NATIONAL"

# Email: SMTP when EMAIL_URL is set (smtp://user:pass@host:587, smtp+tls://..., smtp+ssl://...),
# otherwise one .eml file per message under var/mail/.
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = "core.mail.EmlFileBackend"
    EMAIL_FILE_PATH = VAR_DIR / "mail"
# Every email is first an outbox row, written in the transaction of the change that causes it
# (pharmacy/notifications.py); the workers send the rows through the transport chosen above.
OUTBOX_EMAIL_BACKEND = EMAIL_BACKEND
EMAIL_BACKEND = "pharmacy.notifications.OutboxEmailBackend"
DEFAULT_FROM_EMAIL = env.str(
    "DEFAULT_FROM_EMAIL", default=f"{PHARMACY_NAME} <portal@pharmacy.test>"
)
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Celery: workers on Redis when CELERY_BROKER_URL is set; otherwise tasks run in-process.
CELERY_TASK_ALWAYS_EAGER = not env.str("CELERY_BROKER_URL", default="")
# In-process, Celery still wants a transport for its producers: an in-memory one.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="memory://")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="default")
# A task is acknowledged after it ran, and given back if its worker dies, so none is lost.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=90)
# Redis redelivers an unacknowledged task after this; it must exceed any task's run time.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Production hardening; DJANGO_DEBUG=false turns these on.
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Behind the HTTPS proxy, which must set X-Forwarded-Proto and X-Forwarded-For (replacing what the
# client sent): the scheme and, for the sign-in lockout, the client's address come from them.
BEHIND_PROXY = env.bool("DJANGO_BEHIND_PROXY", default=False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Security headers and Content-Security-Policy ------------------------------------------
# Every response says: HTTPS only (HSTS, production), no MIME sniffing, never in a frame, the
# full URL only to the portal itself, a browsing context of its own (no cross-origin opener),
# and what the page may load. The CSP is enforced, with no 'unsafe-inline' and no nonces: the
# portal and the admin load every script and stylesheet from their own static files.
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
# Preload lets the domain join the browsers' HSTS preload list; false if a subdomain is not HTTPS.
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
INSTALLED_APPS += ["csp"]  # its system checks
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "csp.middleware.CSPMiddleware",
)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # Bootstrap draws its select arrows, check marks and menu icon as data: SVG images.
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],  # the order form's live dose check
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"client_errors": {"()": "core.log_filters.ClientErrorsWithoutTraceback"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["client_errors"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # Django's own console handler would print each of its records a second time.
    "loggers": {
        "django": {"handlers": [], "propagate": True},
        # Never patient data in logs, whatever LOG_LEVEL: at DEBUG these two log each SQL
        # statement with its parameters (when DEBUG is on) and each template variable that
        # failed to resolve with the template's context.
        "django.db.backends": {"level": "INFO"},
        "django.template": {"level": "INFO"},
        "weasyprint.progress": {"level": "WARNING"},  # a line per rendering step otherwise
        "axes": {"level": "WARNING"},  # a line per sign-in otherwise; failures still show
    },
}

# The password of the accounts made by `manage.py seed_demo` (never used in production).
DEMO_PASSWORD = env.str("DEMO_PASSWORD", default="ldn-demo-2026")

# Overrides of the LDN dose rules (orders/dosing.py, DosingPolicy), e.g. {"max_days_supply": 60}.
LDN_DOSING_POLICY = env.json("LDN_DOSING_POLICY", default={})
# A prescription may be filled this many months after the date written (most US states: 1 year).
PRESCRIPTION_VALID_MONTHS = env.int("PRESCRIPTION_VALID_MONTHS", default=12)
# Rx numbers are this plus the prescription's id: unique, given at verification.
RX_NUMBER_START = env.int("RX_NUMBER_START", default=7000000)
# USP <795>: which day counts as day 1 of a beyond-use date (default: the day after compounding).
BUD_COMPOUNDING_DATE_IS_DAY_ONE = env.bool("BUD_COMPOUNDING_DATE_IS_DAY_ONE", default=False)

# The outbox (pharmacy/notifications.py): when the sweep re-queues stuck rows, and retries.
# All in seconds. Each SMTP operation gives up after EMAIL_TIMEOUT, and one send (composing the
# message, rendering its label if it has none, SMTP) is stopped after OUTBOX_SEND_TIME_LIMIT
# (the task's hard limit; its soft limit a fifth earlier puts the row back with the reason). So
# a row still "sending" after OUTBOX_SENDING_AFTER was claimed by a worker that died, and the
# sweep (every OUTBOX_SWEEP_EVERY) gives it back: a message the SMTP server accepted just
# before its worker died goes again within OUTBOX_SENDING_AFTER + OUTBOX_SWEEP_EVERY, with the
# same Message-ID.
EMAIL_TIMEOUT = _positive("EMAIL_TIMEOUT", 10)
OUTBOX_SEND_TIME_LIMIT = _positive("OUTBOX_SEND_TIME_LIMIT", 45)
OUTBOX_SENDING_AFTER = _positive("OUTBOX_SENDING_AFTER", 60)
if not EMAIL_TIMEOUT < OUTBOX_SEND_TIME_LIMIT < OUTBOX_SENDING_AFTER:
    raise ImproperlyConfigured(
        "The outbox's limits must grow: EMAIL_TIMEOUT < OUTBOX_SEND_TIME_LIMIT < "
        f"OUTBOX_SENDING_AFTER, not {EMAIL_TIMEOUT}, {OUTBOX_SEND_TIME_LIMIT}, "
        f"{OUTBOX_SENDING_AFTER} (a live send would be taken for a dead one and sent twice)."
    )
OUTBOX_PENDING_AFTER = _positive("OUTBOX_PENDING_AFTER", 120)
OUTBOX_SWEEP_EVERY = _positive("OUTBOX_SWEEP_EVERY", 60)
# The staff's health detail (/health/detail/) warns when the oldest waiting email or webhook
# delivery has waited longer than this (the sweep re-queues at OUTBOX_PENDING_AFTER).
OUTBOX_BACKLOG_WARN_AFTER = _positive("OUTBOX_BACKLOG_WARN_AFTER", 10 * 60)
OUTBOX_RETRY_BASE_DELAY = env.int("OUTBOX_RETRY_BASE_DELAY", default=10)
OUTBOX_RETRY_MAX_DELAY = env.int("OUTBOX_RETRY_MAX_DELAY", default=900)
# Webhooks to clinics' systems (pharmacy/webhooks.py): every message is an outbox row too, made
# from the order's events by the publisher (beat, every WEBHOOK_PUBLISH_EVERY seconds, and the
# outbox sweep). One HTTP operation (connect, each read) gives up after WEBHOOK_TIMEOUT; a send
# is stopped, like an email's, after OUTBOX_SEND_TIME_LIMIT, and a row still "sending" after
# OUTBOX_SENDING_AFTER is given back by the sweep. An endpoint whose deliveries have all failed
# for WEBHOOK_DISABLE_AFTER is turned off (its clinic's prescribers are emailed), and a delivery
# that has failed that long is given up. After a secret is rotated, messages carry signatures by
# the old and the new one for WEBHOOK_SECRET_ROTATION_GRACE (the Standard Webhooks way).
WEBHOOK_PUBLISH_EVERY = _positive("WEBHOOK_PUBLISH_EVERY", 5)
WEBHOOK_TIMEOUT = _positive("WEBHOOK_TIMEOUT", 10)
if not WEBHOOK_TIMEOUT < OUTBOX_SEND_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"WEBHOOK_TIMEOUT ({WEBHOOK_TIMEOUT}) must be shorter than OUTBOX_SEND_TIME_LIMIT "
        f"({OUTBOX_SEND_TIME_LIMIT}): a live send would be taken for a dead one."
    )
WEBHOOK_DISABLE_AFTER = timedelta(seconds=_positive("WEBHOOK_DISABLE_AFTER", 24 * 3600))
WEBHOOK_SECRET_ROTATION_GRACE = timedelta(
    seconds=_positive("WEBHOOK_SECRET_ROTATION_GRACE", 24 * 3600)
)
# Endpoints must be HTTPS on public addresses (no server-side request forgery into the
# pharmacy's network). Hosts named here may be private and plain HTTP: for local development
# and tests only (e.g. 127.0.0.1,localhost).
WEBHOOK_ALLOWED_PRIVATE_HOSTS = frozenset(
    host.strip().lower() for host in env.list("WEBHOOK_ALLOWED_PRIVATE_HOSTS", default=[])
)
# Rendering and mail run on queues of their own (a render worker recycles its processes), and
# webhooks on theirs (a slow clinic endpoint never holds up the mail).
CELERY_TASK_ROUTES = {
    "pharmacy.tasks.render_label": {"queue": "render"},
    "pharmacy.tasks.send_delivery": {"queue": "mail"},
    "pharmacy.tasks.render_print_job": {"queue": "render"},
    "pharmacy.tasks.send_webhook": {"queue": "webhooks"},
    "pharmacy.tasks.publish_webhook_events": {"queue": "webhooks"},
}
CELERY_BEAT_SCHEDULE = {
    "sweep-outbox": {"task": "pharmacy.tasks.sweep_deliveries", "schedule": OUTBOX_SWEEP_EVERY},
    # The order events become webhook deliveries within seconds; a run not picked up before the
    # next one is due is dropped (the next one does its work), so none pile up while no worker
    # listens.
    "publish-webhooks": {
        "task": "pharmacy.tasks.publish_webhook_events",
        "schedule": WEBHOOK_PUBLISH_EVERY,
        "options": {"expires": WEBHOOK_PUBLISH_EVERY},
    },
    # Once a day (each notice is sent once, so a missed or repeated run does no harm).
    "licence-expiry-notices": {
        "task": "pharmacy.tasks.send_licence_expiry_notices",
        "schedule": 24 * 60 * 60,
    },
    # Every morning in the pharmacy's time zone (CELERY_TIMEZONE), so that a reminder comes
    # at a sensible hour; each is sent once, so a repeated run does no harm.
    "patient-reminders": {
        "task": "pharmacy.tasks.send_patient_reminders",
        "schedule": crontab(hour=8, minute=0),
    },
}

# --- The partner API (`/api/v1/`, `/fhir/r4/`): Django REST framework -------------------------
# Clinics' systems authenticate with an API key of the clinic (prescribers/api_auth.py); JSON
# only (no browsable pages), errors as RFC 9457 problem details (core/api.py), the OpenAPI schema
# by drf-spectacular and its Swagger UI served from the portal's own static files (the sidecar).
INSTALLED_APPS += ["rest_framework", "django_filters", "drf_spectacular", "drf_spectacular_sidecar"]
# Requests per key (or, without a key, per client address), e.g. "600/minute"; over it: 429
# with Retry-After. The counts live in the cache (CACHE_URL): shared when it is Redis.
API_RATE_LIMIT = env.str("API_RATE_LIMIT", default="600/minute")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["prescribers.api_auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["prescribers.api_auth.HasClinicKey"],
    "DEFAULT_THROTTLE_CLASSES": ["prescribers.api_auth.ApiKeyThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.api_parsing.SafeJsonParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "core.api_schema.PortalAutoSchema",
    "EXCEPTION_HANDLER": "core.api.problem_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "NUM_PROXIES": 1 if BEHIND_PROXY else 0,
}
SPECTACULAR_SETTINGS = {
    "TITLE": f"{PHARMACY_NAME}: partner API",
    "DESCRIPTION": "Order low-dose naltrexone from a clinic's own system: patients, the live "
    "dose check, orders with their timeline and label, refills. The same rules as the portal.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "orders.models.OrderStatus",
        "DosageFormEnum": "orders.dosing.DOSAGE_FORM_CHOICES",
        "TimeOfDayEnum": "orders.models.TimeOfDay",
        "ShipToEnum": "orders.models.ShipTo",
    },
}
# --- end of the partner API ------------------------------------------------------------------

# --- Second factor for staff (pharmacy/second_factor.py) --------------------------------------
# Every admin page but sign-in, sign-out and the second-factor pages needs a code from the staff
# member's authenticator app (TOTP, django-otp). Prescribers are not asked.
INSTALLED_APPS += [
    "django_otp",
    "core.apps.SecondFactorDevicesConfig",  # otp_totp
    "core.apps.RecoveryCodesConfig",  # otp_static: one-time recovery codes
]
# After AuthenticationMiddleware: request.user.is_verified(), from the user's own query.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
    "core.second_factor.SecondFactorMiddleware",
)
# The name authenticator apps show above the code.
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default=PHARMACY_NAME)
# After n wrong codes in a row the next one is checked only after FACTOR * 2^(n-1) seconds.
OTP_TOTP_THROTTLE_FACTOR = env.int("OTP_TOTP_THROTTLE_FACTOR", default=1)
# The admin never shows an enrolled device's key (nor its QR code) again.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# --- end of the second factor --------------------------------------------------------------------

# --- Metrics for Prometheus (/metrics, README "Health and metrics") ---------------------------
# /metrics answers only a scraper that sends "Authorization: Bearer <METRICS_TOKEN>"; without a
# token configured it does not exist (404). Request latencies per view come from
# django-prometheus' two middlewares: the "before" one first, the "after" one around the views,
# inside everything else but django-axes (which stays last, as it asks, so that its lockout
# page is counted with its own status).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
MIDDLEWARE.insert(0, "django_prometheus.middleware.PrometheusBeforeMiddleware")
MIDDLEWARE.insert(
    MIDDLEWARE.index("axes.middleware.AxesMiddleware"),
    "django_prometheus.middleware.PrometheusAfterMiddleware",
)
