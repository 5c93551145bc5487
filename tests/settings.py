"""The settings of the test suites: the portal's, in development mode (its development key and
local hosts), as `make run` has them; Django's test runner turns DEBUG off in each test. The
tests of the settings themselves start fresh interpreters with config.settings."""

import os

os.environ.setdefault("DJANGO_DEBUG", "true")

from config.settings import *  # noqa: F403
