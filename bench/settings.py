"""The portal's settings plus what the order-submit benchmark adds: its baseline app and URLs.

Used by `python -m bench submit` and `python -m bench dose_check` (in-process and in the servers
they start)."""

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.baseline"]
ROOT_URLCONF = "bench.urls"
