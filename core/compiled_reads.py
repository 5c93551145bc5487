"""A read whose SQL Django compiles once, then runs again with other keys.

Django compiles a queryset's SQL each time it runs it. For most reads that is a small part of
the time; for a read of many joins and correlated subqueries (the label's: nine tables and five
subqueries) compiling costs Django more than PostgreSQL takes to run the statement, and the
statement is the same every time but for the keys it is filtered by. CompiledRead compiles it
once per database and number of keys and then only puts the new keys into the parameters;
the rows become model instances by Django's own iterable, with their select_related objects
and annotations, exactly as the queryset itself would make them.

The keys are put in where the compiled parameters hold stand-ins that no row has (negative
numbers): the read must be filtered by whole positive numbers (primary or foreign keys), and
nothing else in it may be a negative number equal to a stand-in (checked when it compiles).
"""

import copy
import threading

from django.db import connections
from django.db.models import QuerySet


class CompiledRead:
    """`read(keys)`: the instances of `queryset.filter(<field>__in=keys)`, in no particular
    order, from SQL compiled once per database and number of keys."""

    def __init__(self, queryset: QuerySet, field: str):
        self._queryset = queryset
        self._lookup = f"{field}__in"
        self._compiled: dict[tuple[str, str, int], tuple] = {}
        self._lock = threading.Lock()

    def __call__(self, keys: list[int]) -> list:
        keys = list(keys)
        if not keys:
            return []
        if any(not isinstance(key, int) or key <= 0 for key in keys):
            raise ValueError(f"Keys are whole positive numbers, not {keys!r}.")
        queryset = self._queryset.all()
        connection = connections[queryset.db]
        template, sql, params, slots = self._compiled_for(queryset.db, connection, len(keys))
        for slot, key in zip(slots, keys, strict=True):
            params[slot] = key
        compiler = copy.copy(template)
        compiler.connection = connection
        compiler.as_sql = lambda *args, **kwargs: (sql, tuple(params))
        # Django's iterable asks the query for its compiler and runs it: this one has its SQL.
        queryset.query.get_compiler = lambda *args, **kwargs: compiler
        return list(queryset)

    def _compiled_for(self, alias: str, connection, count: int) -> tuple:
        key = (alias, connection.vendor, count)
        with self._lock:
            if key not in self._compiled:
                self._compiled[key] = self._compile(alias, count)
        template, sql, params, slots = self._compiled[key]
        return template, sql, list(params), slots

    def _compile(self, alias: str, count: int) -> tuple:
        stand_ins = list(range(-1, -count - 1, -1))
        query = self._queryset.filter(**{self._lookup: stand_ins}).query
        compiler = query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        params = list(params)
        slots = []
        for stand_in in stand_ins:
            found = [i for i, value in enumerate(params) if value == stand_in]
            if len(found) != 1:
                raise ValueError(
                    f"The compiled read holds {stand_in} {len(found)} times: it cannot say "
                    "where its keys go."
                )
            slots.append(found[0])
        return compiler, sql, tuple(params), slots
