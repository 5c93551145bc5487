"""Django's migrate, able to bring forward a database made before the kernel (core) existed.

The kernel's first migration takes over the user model in Django's state only: its table was
made by the pharmacy app's first migration and keeps its name and rows. The user model is
swappable, so every migration that points at users (Django's admin, the other apps) now depends
on that first kernel migration; in a database made before it existed, those migrations are
applied and it is not, which Django refuses as an inconsistent history. It has nothing to do
in such a database, so it is recorded as applied there first; then everything else migrates as
usual."""

from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder

KERNEL_FIRST = ("core", "0001_initial")
USER_TABLE_MADE_BY = ("pharmacy", "0001_initial")


def record_kernel_takeover(connection) -> bool:
    """Record the kernel's first migration as applied where the user table exists already.
    Returns whether it recorded it."""
    recorder = MigrationRecorder(connection)
    if not recorder.has_table():
        return False
    applied = recorder.applied_migrations()
    if USER_TABLE_MADE_BY in applied and KERNEL_FIRST not in applied:
        recorder.record_applied(*KERNEL_FIRST)
        return True
    return False


class Command(DjangoMigrate):
    def handle(self, *args, **options):
        if record_kernel_takeover(connections[options["database"]]) and options["verbosity"]:
            self.stdout.write(
                f"Recorded {KERNEL_FIRST[0]}.{KERNEL_FIRST[1]} (the user table exists)"
            )
        return super().handle(*args, **options)
