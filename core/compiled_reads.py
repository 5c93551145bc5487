"""A read whose SQL Django compiles once, then runs again with other keys.

Django compiles a queryset's SQL each time it runs it. For a read of many joins and correlated
subqueries (the label's: nine tables and five subqueries) compiling costs Django more than
PostgreSQL takes to run the statement, and for the small reads every order and dose check
makes (the patient, their open orders, the prescriber's licence) it is still about half a
millisecond each, while the statement is the same every time but for the keys it is filtered
by. CompiledRead compiles it once per database and number of keys and then only puts the new
keys into the parameters; the rows become model instances (or the values asked for) by
Django's own iterable, with their select_related objects and annotations, exactly as the
queryset itself would make them.

The keys go where the compiled parameters hold stand-ins: negative numbers for whole-number
keys (primary and foreign keys are positive), improbable strings for text keys. Nothing else in
the read may equal a stand-in (checked when it compiles), and nothing in it may change between
calls: a read that compares with the time or the date takes it as a key, never as a value
computed when the queryset was built. A whole number beyond the largest key a column holds
(64 bits), and one below 1, matches nothing, as it does in Django's own lookups (no row has
such a key).
"""

import copy
import threading

from django.db import connections
from django.db.models import QuerySet

_LARGEST_KEY = 2**63 - 1  # a bigint column's largest value
# Each number of keys is a statement of its own: a read of more keys than this is compiled for
# that call alone, so that a read of ever new sizes cannot fill the memory.
MOST_KEYS_KEPT = 100


class CompiledRead:
    """`read(field=[keys], ...)`: the rows of `queryset.filter(field__in=[keys], ...)`, in the
    queryset's order, from SQL compiled once per database and number of keys of each field."""

    def __init__(self, queryset: QuerySet, *fields: str):
        if not fields:
            raise ValueError("A compiled read is filtered by at least one field.")
        self._queryset = queryset
        self._fields = fields
        self._compiled: dict[tuple, tuple] = {}
        self._lock = threading.Lock()

    def __call__(self, **keys: list) -> list:
        if set(keys) != set(self._fields):
            raise TypeError(f"Give keys for {', '.join(self._fields)}, not {', '.join(keys)}.")
        keys = {field: list(keys[field]) for field in self._fields}
        kinds = {field: _kind(values) for field, values in keys.items()}
        for field, kind in kinds.items():
            if kind is int:  # no row has a key below 1 or beyond a bigint
                keys[field] = [value for value in keys[field] if 0 < value <= _LARGEST_KEY]
        if not all(keys.values()):
            return []
        shape = tuple((field, len(values), kinds[field]) for field, values in keys.items())
        queryset = self._queryset.all()
        connection = connections[queryset.db]
        cache_key = (queryset.db, connection.vendor, shape)
        with self._lock:
            compiled = self._compiled.get(cache_key)
            if compiled is None:
                compiled = self._compile(queryset.db, shape)
                if all(count <= MOST_KEYS_KEPT for _, count, _ in shape):
                    self._compiled[cache_key] = compiled
        template, sql, params, slots = compiled
        params = list(params)
        for field, values in keys.items():
            for slot, value in zip(slots[field], values, strict=True):
                params[slot] = value
        compiler = copy.copy(template)
        compiler.connection = connection
        compiler.as_sql = lambda *args, **kwargs: (sql, tuple(params))
        # Django's iterable asks the query for its compiler and runs it: this one has its SQL.
        queryset.query.get_compiler = lambda *args, **kwargs: compiler
        return list(queryset)

    def _compile(self, alias: str, shape: tuple) -> tuple:
        numbers = iter(range(1, 1 + sum(count for _, count, _ in shape)))
        stand_ins = {
            field: [_stand_in(kind, next(numbers)) for _ in range(count)]
            for field, count, kind in shape
        }
        filtered = self._queryset.filter(
            **{f"{field}__in": values for field, values in stand_ins.items()}
        )
        compiler = filtered.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        slots = {}
        for field, values in stand_ins.items():
            slots[field] = []
            for stand_in in values:
                found = [i for i, value in enumerate(params) if value == stand_in]
                if len(found) != 1:
                    raise ValueError(
                        f"The compiled read holds {stand_in!r} {len(found)} times: it cannot "
                        "say where its keys go."
                    )
                slots[field].append(found[0])
        return compiler, sql, tuple(params), slots


def _kind(values: list) -> type:
    if not values:
        return int
    if all(type(value) is int for value in values):
        return int
    if all(type(value) is str for value in values):
        return str
    raise ValueError(f"Keys are whole numbers or texts, not {values!r}.")


def _stand_in(kind: type, number: int):
    """A key that no row has and no read holds otherwise, each one different."""
    return -number if kind is int else f"\x1fcompiled read, key {number}\x1f"
