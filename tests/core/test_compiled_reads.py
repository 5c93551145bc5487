import pytest
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Value
from django.db.models.sql.compiler import SQLCompiler
from django.test.utils import CaptureQueriesContext

from core.compiled_reads import MOST_KEYS_KEPT, CompiledRead
from prescribers.models import Licence, Prescriber
from tests.factories import LicenceFactory, PrescriberFactory

pytestmark = pytest.mark.django_db


def _read_of(queryset) -> CompiledRead:
    return CompiledRead(queryset, "pk")


def _prescribers():
    return Prescriber.objects.select_related("user").annotate(
        licensed=Exists(Licence.objects.filter(prescriber=OuterRef("pk"), state="WI")),
        licence_count=Count("licences"),
    )


def _seen(prescribers) -> list[tuple]:
    return sorted(
        (p.pk, p.user.email, p.last_name, p.licensed, p.licence_count) for p in prescribers
    )


def test_a_compiled_read_gives_what_the_queryset_gives_with_its_related_rows_in_one_query():
    first, second, third = PrescriberFactory.create_batch(3)
    LicenceFactory(prescriber=second, state="WI")
    read = _read_of(_prescribers())

    with CaptureQueriesContext(connection) as queries:
        found = read(pk=[third.pk, first.pk])
        seen = _seen(found)  # the users come with them

    assert len(queries) == 1
    assert seen == _seen(_prescribers().filter(pk__in=[first.pk, third.pk]))
    assert seen == sorted(
        [(first.pk, first.user.email, first.last_name, False, 1),
         (third.pk, third.user.email, third.last_name, False, 1)]
    )  # fmt: skip
    assert _seen(read(pk=[second.pk])) == [
        (second.pk, second.user.email, second.last_name, True, 2)
    ]


def test_it_compiles_once_per_number_of_keys_and_puts_each_call_s_keys_in(monkeypatch):
    prescribers = PrescriberFactory.create_batch(4)
    read = _read_of(_prescribers())
    compiled = []
    as_sql = SQLCompiler.as_sql

    def counting(compiler, *args, **kwargs):
        compiled.append(compiler.query.model)
        return as_sql(compiler, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", counting)
    a, b, c, d = (p.pk for p in prescribers)

    assert [p.pk for p in read(pk=[a])] == [a]
    assert [p.pk for p in read(pk=[b])] == [b]
    assert sorted(p.pk for p in read(pk=[c, d])) == sorted([c, d])
    assert sorted(p.pk for p in read(pk=[a, b])) == sorted([a, b])
    assert sorted(p.pk for p in read(pk=[a, b, d])) == sorted([a, b, d])

    # One compile for one key, one for two, one for three: the calls after reuse them.
    assert compiled.count(Prescriber) == 3

    # More keys than are kept compiled: compiled for each call, and still right.
    many = [a, b, c, d, *range(10**9, 10**9 + MOST_KEYS_KEPT)]
    assert sorted(p.pk for p in read(pk=many)) == sorted([a, b, c, d])
    assert sorted(p.pk for p in read(pk=many)) == sorted([a, b, c, d])
    assert compiled.count(Prescriber) == 5


def test_no_keys_read_nothing_and_keys_must_be_whole_positive_numbers():
    prescriber = PrescriberFactory()
    read = _read_of(_prescribers())

    with CaptureQueriesContext(connection) as queries:
        assert read(pk=[]) == []
    assert len(queries) == 0
    for keys in ([True], [prescriber.pk, "7"], [1.5], [None]):
        with pytest.raises(ValueError, match="whole numbers or texts"):
            read(pk=keys)
    # Keys no row can have match nothing (as Django's lookups say), whatever the column holds.
    with CaptureQueriesContext(connection) as queries:
        assert read(pk=[0]) == read(pk=[-1]) == read(pk=[2**63]) == []
    assert len(queries) == 0
    assert [p.pk for p in read(pk=[prescriber.pk, 10**9, 0, 2**70])] == [prescriber.pk]


def test_a_read_whose_other_values_could_be_taken_for_a_key_is_refused():
    PrescriberFactory()
    read = _read_of(Prescriber.objects.annotate(minus_one=Value(-1)).filter(id__gt=-1))

    with pytest.raises(ValueError, match="cannot say where its keys go"):
        read(pk=[1])


def test_keys_of_several_fields_and_text_keys_each_go_where_they_belong():
    wisconsin, illinois = PrescriberFactory.create_batch(2)
    LicenceFactory(prescriber=wisconsin, state="WI")
    LicenceFactory(prescriber=illinois, state="WI")
    read = CompiledRead(Licence.objects.select_related("prescriber"), "prescriber_id", "state")

    def licences(**keys):
        return sorted((lic.prescriber.pk, lic.state) for lic in read(**keys))

    assert licences(prescriber_id=[wisconsin.pk], state=["WI"]) == [(wisconsin.pk, "WI")]
    assert licences(prescriber_id=[illinois.pk], state=["IL"]) == [(illinois.pk, "IL")]
    assert licences(prescriber_id=[illinois.pk], state=["TX"]) == []
    assert licences(prescriber_id=[wisconsin.pk, illinois.pk], state=["WI"]) == [
        (wisconsin.pk, "WI"), (illinois.pk, "WI")
    ]  # fmt: skip
    assert read(prescriber_id=[wisconsin.pk], state=[]) == []
    with pytest.raises(TypeError, match="Give keys for prescriber_id, state"):
        read(prescriber_id=[wisconsin.pk])
