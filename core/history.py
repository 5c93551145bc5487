"""The history of records (django-simple-history), with its manager class built once.

simple-history's `history` descriptor builds a new manager class from the historical queryset
class every time it is read (`HistoryDescriptor.__get__` calls `Manager.from_queryset`, which
goes over every method of the queryset class with `inspect`), and every history row written
reads it once: 7 % of the processor time of an order's submit in the portal's process. The class
built is the same every time, so it is built once per queryset class here; each read still gets
a manager of its own, for its model and instance."""

import functools

from simple_history import manager, models


class HistoryManager(manager.HistoryManager):
    @classmethod
    @functools.cache
    def from_queryset(cls, queryset_class, class_name=None):
        return super().from_queryset(queryset_class, class_name)


class HistoricalRecords(models.HistoricalRecords):
    """simple_history.models.HistoricalRecords whose `history` manager class is built once."""

    def __init__(self, *args, history_manager=HistoryManager, **kwargs):
        super().__init__(*args, history_manager=history_manager, **kwargs)
