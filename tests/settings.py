"""The settings of the test suites: the portal's, in development mode (its development key and
local hosts), as `make run` has them; Django's test runner turns DEBUG off in each test. The
tests of the settings themselves start fresh interpreters with config.settings."""

import os

os.environ.setdefault("DJANGO_DEBUG", "true")

from config.settings import *  # noqa: F403

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    # A test needs no durability: a commit does not wait for the disk (locks, isolation and
    # constraints are PostgreSQL's as in production; only a crash could lose the last commits).
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c synchronous_commit=off"  # noqa: F405
