"""FieldsBuiltOnce: a ModelSerializer's fields worked out from the model once per class, and
copied for each serializer: a field as it is, one that holds others made again."""

from decimal import Decimal

from rest_framework import serializers

from core.serializers import FieldsBuiltOnce
from orders.models import PrescriptionStep
from orders.serializers import OrderCreateSerializer
from tests.orders.test_api import ORDER


class EveryTime(serializers.ModelSerializer):
    class Meta:
        model = PrescriptionStep
        fields = ["dose_mg", "days"]


class Once(FieldsBuiltOnce, EveryTime):
    pass


class OnceWithMore(Once):
    class Meta(EveryTime.Meta):
        fields = ["position", "dose_mg", "days"]


STEP = PrescriptionStep(position=1, dose_mg=Decimal("1.5"), days=14)


def counting_builds(monkeypatch) -> list[type]:
    built = []
    framework_get_fields = serializers.ModelSerializer.get_fields

    def get_fields(self):
        built.append(type(self))
        return framework_get_fields(self)

    monkeypatch.setattr(serializers.ModelSerializer, "get_fields", get_fields)
    return built


def test_the_fields_answer_as_the_framework_builds_them():
    assert Once(STEP).data == EveryTime(STEP).data == {"dose_mg": "1.500", "days": 14}
    assert OnceWithMore(STEP).data == {"position": 1, "dose_mg": "1.500", "days": 14}


def test_the_model_is_read_once_per_class(monkeypatch):
    built = counting_builds(monkeypatch)
    for cls in (EveryTime, Once, OnceWithMore):
        if "_fields_built" in cls.__dict__:  # built by another test
            delattr(cls, "_fields_built")
        for _ in range(3):
            assert list(cls(STEP).fields)
    assert built == [EveryTime] * 3 + [Once, OnceWithMore]


def test_each_serializer_binds_its_own_copies():
    first, second = Once(STEP), Once(STEP)
    assert first.fields["days"] is not second.fields["days"]
    assert (first.fields["days"].parent, second.fields["days"].parent) == (first, second)
    assert Once._fields_built["days"].parent is None  # the kept ones are never bound


class Item(serializers.Serializer):
    dose = serializers.DecimalField(max_digits=4, decimal_places=1, min_value=0)


class Sent(serializers.Serializer):
    """Every kind of field the API's serializers declare: with choices, validators, a default, a
    list of fields and a nested list of serializers."""

    form = serializers.ChoiceField(choices=["capsule", "cream"])
    note = serializers.CharField(max_length=5, required=False, default="none")
    codes = serializers.ListField(child=serializers.CharField(max_length=3), default=list)
    items = Item(many=True, allow_empty=False)


class SentOnce(FieldsBuiltOnce, Sent):
    pass


GOOD = {"form": "cream", "codes": ["a", "b"], "items": [{"dose": "1.5"}]}
BAD = {"form": "tablet", "note": "too long", "codes": ["long"], "items": [{"dose": "-1"}]}


def outcome(serializer_class, data) -> tuple[bool, dict]:
    sent = serializer_class(data=data)
    valid = sent.is_valid()
    return valid, (sent.validated_data if valid else sent.errors)


def test_copied_fields_validate_as_the_framework_s_own_every_time():
    expected = [outcome(Sent, data) for data in (GOOD, BAD, GOOD, BAD)]
    assert expected[0] == (
        True,
        {"form": "cream", "note": "none", "codes": ["a", "b"], "items": [{"dose": Decimal("1.5")}]},
    )
    assert set(expected[1][1]) == {"form", "note", "codes", "items"}
    # Alternating good and bad input, so that nothing one serializer met stays for the next.
    assert [outcome(SentOnce, data) for data in (GOOD, BAD, GOOD, BAD)] == expected


def test_a_field_that_holds_others_is_made_again_for_each_serializer():
    first, second = SentOnce(data=GOOD), SentOnce(data=GOOD)
    for name in ("codes", "items"):
        assert first.fields[name] is not second.fields[name]
        assert first.fields[name].child is not second.fields[name].child
        assert first.fields[name].child.parent is first.fields[name]
        assert first.fields[name].root is first
    assert first.fields["note"] is not second.fields["note"]
    assert first.fields["note"].validators == second.fields["note"].validators  # only read


def test_the_api_s_order_validates_as_before():
    class EveryTimeOrder(OrderCreateSerializer):
        get_fields = serializers.Serializer.get_fields

    order = {**ORDER, "patient_id": 1}
    for data in (order, {**order, "steps": [{"dose_mg": "x", "days": 0}], "ship_to": "moon"}):
        assert outcome(OrderCreateSerializer, data) == outcome(EveryTimeOrder, data)
