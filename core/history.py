"""The history of records (django-simple-history), with its manager class built once and only
the indexes its readers use.

simple-history's `history` descriptor builds a new manager class from the historical queryset
class every time it is read (`HistoryDescriptor.__get__` calls `Manager.from_queryset`, which
goes over every method of the queryset class with `inspect`), and every history row written
reads it once: 7 % of the processor time of an order's submit in the portal's process. The class
built is the same every time, so it is built once per queryset class here; each read still gets
a manager of its own, for its model and instance.

A record's history is read by the record's id, newest first (the admin's history page of a
record and its past versions), and simple-history indexes the id, the date and the user who
changed it. The copies of the record's other indexed fields (its foreign keys, its unique
fields) are not indexed: no query reads the history by them, and each index costs every write
(an order's submit writes two history rows)."""

import functools

from simple_history import manager, models


class HistoryManager(manager.HistoryManager):
    @classmethod
    @functools.cache
    def from_queryset(cls, queryset_class, class_name=None):
        return super().from_queryset(queryset_class, class_name)


class HistoricalRecords(models.HistoricalRecords):
    """simple_history.models.HistoricalRecords whose `history` manager class is built once and
    whose rows are indexed by the record's id only (with simple-history's date and user)."""

    def __init__(self, *args, history_manager=HistoryManager, **kwargs):
        super().__init__(*args, history_manager=history_manager, **kwargs)

    def copy_fields(self, model):
        fields = super().copy_fields(model)
        for name, field in fields.items():
            if name != model._meta.pk.name:
                field.db_index = False
        return fields
