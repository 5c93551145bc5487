"""The Celery app. Configuration comes from Django settings under the CELERY_ namespace."""

import contextlib
import os

from celery import Celery, signals, states
from django.db import DatabaseError, close_old_connections, connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("pharmacy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# A worker process keeps its database connection from one task to the next, as a web process
# keeps it from one request to the next: for CONN_MAX_AGE, checked before it is used again
# (CONN_HEALTH_CHECKS). Celery's Django fixup would otherwise close it after every task, and
# every task (two per label email) would connect to PostgreSQL again: a server process started
# and authenticated, several milliseconds each. The fixup still closes it every this many tasks.
app.conf.update(CELERY_DB_REUSE_MAX=1000)


@signals.task_prerun.connect
def _connections_checked(task, **_):
    """Before a task, as before a request: a connection too old or broken is closed."""
    if not task.request.is_eager:
        close_old_connections()


@signals.task_postrun.connect
def _connections_kept_or_closed(task, state, **_):
    """After a task that succeeded, its connection is kept unless too old or broken. After one
    that did not, it is closed, as Celery closes it after every task: a time limit may have
    interrupted a query and left the connection in a state it cannot tell."""
    if task.request.is_eager:  # in-process: the connection is the caller's
        return
    if state == states.SUCCESS:
        close_old_connections()
        return
    for connection in connections.all(initialized_only=True):
        with contextlib.suppress(DatabaseError):
            connection.close()
