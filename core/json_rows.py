"""A page's related rows inside its main query: one correlated subquery per relation that
gathers the rows as a JSON list (PostgreSQL's jsonb_agg, SQLite's json_group_array), read back
as unsaved model instances for the template. The order page needs six relations; as six
prefetches they would be six more queries on every view of it.

The instances carry only the fields asked for (the others have their defaults) and are never
saved: they are for display. A rule that only reads a few values takes them as values() instead:
a model instance costs more to make than the row costs to read.
"""

import datetime
from decimal import Decimal

from django.db.models import (
    Aggregate,
    CharField,
    DecimalField,
    F,
    Func,
    JSONField,
    OuterRef,
    Subquery,
    Value,
)
from django.db.models.functions import Cast, Coalesce, JSONObject
from django.utils import timezone


class _JSONArrayAgg(Aggregate):
    function = "JSONB_AGG"
    output_field = JSONField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, function="JSON_GROUP_ARRAY", **extra_context)


class _JSONValue(Func):
    """A JSON column as a JSON value inside the row object (SQLite keeps JSON as text, which
    json_object would quote as a string; PostgreSQL's jsonb is a value already)."""

    output_field = JSONField()

    def as_sql(self, compiler, connection, **extra_context):
        return compiler.compile(self.source_expressions[0])

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, function="JSON", **extra_context)


def _value(model, path: str):
    field = _field(model, path)
    if isinstance(field, DecimalField):
        return Cast(path, CharField())
    if isinstance(field, JSONField):
        return _JSONValue(F(path))
    return path


def _field(model, path: str):
    *relations, name = path.split("__")
    for relation in relations:
        model = model._meta.get_field(relation).related_model
    return model._meta.get_field(name)


def json_rows(queryset, link: str, *paths: str, outer: str = "pk") -> Coalesce:
    """The rows of `queryset` whose foreign key `link` points at the outer row's `outer` field,
    as a JSON list of objects with these fields (paths through foreign keys, such as
    "actor__email", too).
    Decimals travel as text so that no digit is lost to a JSON number; JSON fields as JSON."""
    model = queryset.model
    values = {path: _value(model, path) for path in paths}
    rows = (
        queryset.filter(**{link: OuterRef(outer)})
        .order_by()
        .values(link)
        .annotate(rows=_JSONArrayAgg(JSONObject(**values)))
        .values("rows")
    )
    return Coalesce(Subquery(rows), Value([], output_field=JSONField()))


def instances(model, rows: list[dict], order_by: tuple[str, ...] = ("pk",)) -> list:
    """Unsaved instances of `model` from json_rows() output, sorted by these fields."""
    made = [_instance(model, row) for row in rows]
    return sorted(made, key=lambda obj: tuple(getattr(obj, name) for name in order_by))


def values(model, rows: list[dict], order_by: tuple[str, ...]) -> list[dict]:
    """json_rows() output as dicts of Python values by path (a Decimal, an aware datetime),
    sorted by these paths: what instances() would carry, without making instances."""
    if not rows:
        return []
    fields = {path: _field(model, path) for path in rows[0]}  # every row has the same paths
    made = [{path: _python(fields[path], value) for path, value in row.items()} for row in rows]
    return sorted(made, key=lambda row: tuple(row[path] for path in order_by))


def _instance(model, row: dict):
    own, related = {}, {}
    for path, value in row.items():
        name, _, rest = path.partition("__")
        if rest:
            related.setdefault(name, {})[rest] = value
        else:
            own[model._meta.get_field(name).attname] = _python(model._meta.get_field(name), value)
    obj = model(**own)
    for name, values in related.items():
        field = model._meta.get_field(name)
        nested = _instance(field.related_model, values)
        setattr(obj, name, nested if any(v is not None for v in values.values()) else None)
    return obj


def _python(field, value):
    if value is None:
        return None
    if isinstance(field, DecimalField):
        return Decimal(value)
    value = field.to_python(value)
    if isinstance(value, datetime.datetime) and timezone.is_naive(value):
        return timezone.make_aware(value, datetime.UTC)  # SQLite keeps UTC without an offset
    return value
