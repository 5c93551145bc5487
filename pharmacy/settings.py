"""Settings of the LDN order portal, read from the environment (django-environ).

With no configuration the portal runs on its embedded default: SQLite under var/, Celery tasks
executed in-process, email written as .eml files under var/mail/, media under var/media/.
DATABASE_URL, CELERY_BROKER_URL and EMAIL_URL switch to PostgreSQL, Redis and SMTP.
"""

from pathlib import Path

import environ
import font_lato
import xstatic.pkg.bootstrap
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional; a missing file is ignored

DEBUG = env.bool("DJANGO_DEBUG", default=True)


def _required_in_production(name: str, value):
    if not DEBUG and not value:
        raise ImproperlyConfigured(
            f"{name} must be set when DJANGO_DEBUG is false (see README, 'Environment')."
        )
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
# Label size for the label printer, e.g. "4in 2in" (CSS page size).
LABEL_PAGE_SIZE = env.str("LABEL_PAGE_SIZE", default="4in 2in")

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
    "pharmacy",
    "prescribers",
    "orders",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "pharmacy.urls"
WSGI_APPLICATION = "pharmacy.wsgi.application"

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
                "pharmacy.context_processors.portal",
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
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "pharmacy.User"
AUTHENTICATION_BACKENDS = ["pharmacy.auth.PortalBackend"]
LOGIN_URL = "login"
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
# The one-time link that lets an approved prescriber set a password, and password reset links.
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", default=3 * 24 * 3600)

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
    EMAIL_BACKEND = "pharmacy.mail.EmlFileBackend"
    EMAIL_FILE_PATH = VAR_DIR / "mail"
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
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
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
if env.bool("DJANGO_BEHIND_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
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
OUTBOX_PENDING_AFTER = env.int("OUTBOX_PENDING_AFTER", default=120)  # seconds
OUTBOX_SENDING_AFTER = env.int("OUTBOX_SENDING_AFTER", default=600)  # longer than any send
OUTBOX_RETRY_BASE_DELAY = env.int("OUTBOX_RETRY_BASE_DELAY", default=10)
OUTBOX_RETRY_MAX_DELAY = env.int("OUTBOX_RETRY_MAX_DELAY", default=900)
# Rendering and mail run on queues of their own (a render worker recycles its processes).
CELERY_TASK_ROUTES = {
    "pharmacy.tasks.render_label": {"queue": "render"},
    "pharmacy.tasks.send_delivery": {"queue": "mail"},
    "pharmacy.tasks.render_print_job": {"queue": "render"},
}
CELERY_BEAT_SCHEDULE = {
    "sweep-outbox": {"task": "pharmacy.tasks.sweep_deliveries", "schedule": 60.0},
}
