"""FieldsBuiltOnce: a ModelSerializer's fields worked out from the model once per class, and
copied for each serializer."""

from decimal import Decimal

from rest_framework import serializers

from core.serializers import FieldsBuiltOnce
from orders.models import PrescriptionStep


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
