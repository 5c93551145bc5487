"""The portal's settings plus what the order-submit benchmark adds: its baseline app and URLs.

Used only by `python -m bench submit` (in-process and in the server it starts)."""

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.baseline"]
ROOT_URLCONF = "bench.urls"
