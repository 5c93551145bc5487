"""Reads of orders that the pharmacy's pages need, so that they write no query against this
app's models. What prescribers can order now is the catalogue (checks.Catalogue.current())."""

from collections.abc import Iterable, Mapping

from django.db.models import Count, Q

from .models import Order, OrderStatus


def order_counts(groups: Mapping[str, Iterable[OrderStatus]]) -> dict[str, int]:
    """How many orders have one of each group's statuses, every group in one query."""
    return Order.objects.aggregate(
        **{
            name: Count("pk", filter=Q(status__in=list(statuses)))
            for name, statuses in groups.items()
        }
    )
