"""The catalogue a process keeps for the prescriber's pages (orders.checks.Catalogue.current)."""

from decimal import Decimal

import pytest

from orders import checks
from orders.checks import Catalogue
from orders.models import Formulation

# The approved master formulation records with their product, and their excipients.
CATALOGUE_QUERIES = 2


def capsule(strength: str) -> Formulation:
    return Formulation.objects.get(dosage_form="capsule", strength_mg=Decimal(strength))


# Transactional: outside a transaction, as a request runs in production, the copy is kept.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_copy_is_kept_until_a_formulation_changes_or_it_is_too_old(
    django_assert_num_queries, monkeypatch
):
    Catalogue.forget()
    with django_assert_num_queries(CATALOGUE_QUERIES):
        first = Catalogue.current()
    with django_assert_num_queries(0):
        assert Catalogue.current() is first

    stopped = capsule("4.5")
    stopped.is_active = False
    stopped.save()  # in this process: read again at once
    with django_assert_num_queries(CATALOGUE_QUERIES):
        assert Decimal("4.5") not in Catalogue.current().capsule_strengths_mg

    monkeypatch.setattr(checks, "CATALOGUE_MAX_AGE", -1.0)  # every copy is too old
    Formulation.objects.filter(pk=stopped.pk).update(is_active=True)  # no signal
    with django_assert_num_queries(CATALOGUE_QUERIES):
        assert Decimal("4.5") in Catalogue.current().capsule_strengths_mg


@pytest.mark.django_db
def test_inside_a_transaction_the_catalogue_is_read_every_time(django_assert_num_queries):
    Catalogue.forget()
    Catalogue.current()
    stopped = capsule("0.5")
    Formulation.objects.filter(pk=stopped.pk).update(is_active=False)  # no signal
    with django_assert_num_queries(CATALOGUE_QUERIES):
        assert Decimal("0.5") not in Catalogue.current().capsule_strengths_mg
