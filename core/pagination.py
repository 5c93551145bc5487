"""Counting large lists without scanning them.

A list page needs a count for its page links. An exact count(*) of a million orders reads a
million index entries on every view; this paginator counts exactly up to EXACT_UP_TO rows and
above that takes PostgreSQL's planner estimate (EXPLAIN), in the same single query. Lists of
up to ten thousand rows (a filtered queue, a search) are exact; longer ones say "about".
"""

from django.core.exceptions import EmptyResultSet
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

EXACT_UP_TO = 10_000


class EstimatedCountPaginator(Paginator):
    estimated = False  # True when count is the planner's estimate
    exact_up_to = EXACT_UP_TO

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return super().count
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return super().count  # SQLite (tests, the embedded default): small tables
        keys = queryset.order_by().values("pk")
        try:
            capped_sql, capped_params = keys[: self.exact_up_to + 1].query.sql_with_params()
            whole = connection.ops.compose_sql(*keys.query.sql_with_params())
        except EmptyResultSet:  # a filter that matches nothing (.none(), pk__in=[]): no query
            return 0
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT counted.n, CASE WHEN counted.n > %s THEN portal_count_estimate(%s) END "
                f"FROM (SELECT count(*) AS n FROM ({capped_sql}) AS capped) AS counted",
                [self.exact_up_to, whole, *capped_params],
            )
            exact, estimate = cursor.fetchone()
        if estimate is None:
            return exact
        self.estimated = True
        return max(estimate, exact)
