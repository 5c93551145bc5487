"""What a prescription, a patient and an order look like as JSON, both ways: the live dose check
of the order form and the partner API read requests with these serializers (Django REST
framework) and answer with them.

Only types and shapes are checked here; the dose rules run in one place
(checks.prescription_findings, through the services). JSON numbers or strings are both taken
for numbers, but never true/false; true/false is the only boolean; dates are text, YYYY-MM-DD:
a number or null is refused, never read as "unknown" (which would skip the age rules)."""

import datetime
import re
from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from localflavor.us.forms import USZipCodeField
from rest_framework import serializers

from core.serializers import FieldsBuiltOnce

from . import icd10
from .dosing import DOSAGE_FORM_CHOICES, DosageForm, PatientFacts, Regimen, Step
from .forms import REASON_FOR_COMPOUNDING, needed_by_problem, opioid_contradiction
from .icd10 import parse_codes
from .medications import Group, mentions
from .models import (
    Order,
    OrderEvent,
    Patient,
    Prescription,
    PrescriptionStep,
    ShipTo,
    TimeOfDay,
    validate_date_of_birth,
)
from .order_input import COUNT_RANGE, DOSE_DIGITS, MAX_STEPS, QUANTITY_DIGITS

ZIP_CODE = USZipCodeField()
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class _NotBoolean:
    """A number field that takes JSON numbers and numeric strings, never true/false (which
    Python would count as 1 and 0) nor lists or objects."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, str | int | float | Decimal):
            self.fail("invalid")
        return super().to_internal_value(data)


class DecimalNumber(_NotBoolean, serializers.DecimalField):
    default_error_messages = {"invalid": "Enter a number (as a JSON number or a string)."}


class WholeNumber(_NotBoolean, serializers.IntegerField):
    default_error_messages = {"invalid": "Enter a whole number (as a JSON number or a string)."}


class Boolean(serializers.BooleanField):
    default_error_messages = {"invalid": "Enter true or false."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class Text(serializers.CharField):
    default_error_messages = {"invalid": "Enter text."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class IsoDate(serializers.DateField):
    """YYYY-MM-DD as text, with ASCII digits; a date that does not exist is refused."""

    default_error_messages = {
        "invalid": "Send the date as text, YYYY-MM-DD.",
        "no_such_date": "Enter a date that exists, as YYYY-MM-DD.",
    }

    def to_internal_value(self, value):
        if not isinstance(value, str) or not ISO_DATE.fullmatch(value):
            self.fail("invalid")
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            self.fail("no_such_date")


class StepSerializer(FieldsBuiltOnce, serializers.Serializer):
    dose_mg = DecimalNumber(**DOSE_DIGITS, help_text="mg per dose")
    days = WholeNumber(**COUNT_RANGE, help_text="days at this dose")


class RegimenSerializer(FieldsBuiltOnce, serializers.Serializer):
    """The prescription's regimen. Out-of-range values the rules know (a dose above the
    ceiling, a negative count) pass here and come back as the rules' findings."""

    dosage_form = serializers.ChoiceField(choices=DOSAGE_FORM_CHOICES)
    concentration_mg_per_ml = DecimalNumber(
        **DOSE_DIGITS, required=False, allow_null=True,
        help_text="For liquids, drops and cream; not for capsules.",
    )  # fmt: skip
    steps = StepSerializer(many=True, allow_empty=False, max_length=MAX_STEPS)
    doses_per_day = WholeNumber(**COUNT_RANGE)
    quantity = DecimalNumber(
        **QUANTITY_DIGITS, required=False, allow_null=True,
        help_text="Capsules, or mL for liquids, drops and cream.",
    )  # fmt: skip
    days_supply = WholeNumber(**COUNT_RANGE)
    refills = WholeNumber(**COUNT_RANGE)
    time_of_day = serializers.ChoiceField(
        choices=TimeOfDay.choices, required=False, allow_null=True, default=TimeOfDay.BEDTIME
    )
    diagnosis_codes = serializers.ListField(
        child=Text(allow_blank=True, trim_whitespace=False), required=False, allow_null=True,
        default=list, help_text="ICD-10-CM codes, e.g. M79.7",
    )  # fmt: skip

    def validate(self, attrs):
        capsules = attrs.get("dosage_form") == DosageForm.CAPSULE
        if not capsules and attrs.get("concentration_mg_per_ml") is None:
            raise serializers.ValidationError(
                {"concentration_mg_per_ml": "This field is required."}, code="required"
            )
        attrs["time_of_day"] = attrs.get("time_of_day") or TimeOfDay.BEDTIME
        attrs["diagnosis_codes"] = attrs.get("diagnosis_codes") or []
        return attrs

    def regimen(self) -> Regimen:
        data = self.validated_data
        capsules = data["dosage_form"] == DosageForm.CAPSULE
        return Regimen(
            dosage_form=DosageForm(data["dosage_form"]),
            steps=tuple(Step(dose_mg=s["dose_mg"], days=s["days"]) for s in data["steps"]),
            doses_per_day=data["doses_per_day"],
            quantity=data.get("quantity"),
            days_supply=data["days_supply"],
            refills=data["refills"],
            concentration_mg_per_ml=None if capsules else data["concentration_mg_per_ml"],
            time_of_day=data["time_of_day"],
        )


class PatientFactsSerializer(FieldsBuiltOnce, serializers.Serializer):
    """A patient's facts for a check without a record (a new patient not saved yet)."""

    date_of_birth = IsoDate()
    takes_opioids = Boolean()
    medications = Text(required=False, allow_blank=True, trim_whitespace=False, default="")
    pregnant_or_breastfeeding = Boolean(required=False, default=False)
    liver_disease = Boolean(required=False, default=False)


class DoseCheckSerializer(RegimenSerializer):
    """The live check: a regimen for a patient of the clinic (`patient_id`) or for facts typed
    in (`patient`), one of the two."""

    patient_id = WholeNumber(required=False, allow_null=True)
    patient = PatientFactsSerializer(required=False, allow_null=True)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if (attrs.get("patient_id") is None) == (attrs.get("patient") is None):
            raise serializers.ValidationError(
                {"patient": 'Send either "patient_id" or "patient", not both.'}, code="one_of"
            )
        return attrs

    def facts(self) -> PatientFacts | None:
        patient = self.validated_data.get("patient")
        if patient is None:
            return None
        codes = tuple(self.validated_data["diagnosis_codes"])
        return PatientFacts(**patient, diagnosis_codes=codes)


class DoseCheckResultSerializer(serializers.Serializer):
    """What the check answers (documentation of the answer; the view builds it)."""

    ok = serializers.BooleanField(help_text="No error: the prescription may be ordered.")
    findings = serializers.ListField(child=serializers.DictField())
    products = serializers.ListField(child=serializers.DictField())
    directions = serializers.CharField()
    quantity_needed = serializers.CharField(allow_null=True)
    days_in_schedule = serializers.IntegerField()
    capsule_lines = serializers.ListField(child=serializers.DictField())
    refill_plan = serializers.CharField()


# --- The partner API's records ------------------------------------------------------------------


class PatientSerializer(FieldsBuiltOnce, serializers.ModelSerializer):
    """A patient of the clinic. `conditions` are ICD-10-CM codes of the problem list."""

    takes_opioids = Boolean(help_text="Always answered: naltrexone is contraindicated with them.")
    pregnant_or_breastfeeding = Boolean(required=False, default=False)
    liver_disease = Boolean(required=False, default=False)
    date_of_birth = IsoDate(validators=[validate_date_of_birth])
    conditions = serializers.ListField(child=Text(), required=False, default=list)
    confirm_not_duplicate = Boolean(
        write_only=True, required=False, default=False,
        help_text="True when this is a different person with the same name and date of birth "
        "as a patient of the clinic (refused otherwise).",
    )  # fmt: skip

    class Meta:
        model = Patient
        fields = ["id", *Patient.EDITABLE_FIELDS, "confirm_not_duplicate", "created_at",
                  "updated_at"]  # fmt: skip
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_postal_code(self, code):
        """As the portal's form checks it (localflavor): 12345 or 12345-6789."""
        try:
            return ZIP_CODE.clean(code)
        except DjangoValidationError as refused:
            raise serializers.ValidationError(refused.messages) from refused

    def validate_conditions(self, codes):
        codes = parse_codes(", ".join(codes))
        unknown = [code for code in codes if not icd10.is_code(code)]
        if unknown:
            raise serializers.ValidationError(
                f"Not an ICD-10-CM code: {', '.join(unknown)}. Write codes such as E06.3."
            )
        return codes

    def validate(self, attrs):
        """The portal's patient form's checks: no "no opioids" above a list naming one, and no
        second record of the same person unless confirmed."""
        confirmed = attrs.pop("confirm_not_duplicate", False)
        merged = {name: getattr(self.instance, name, None) for name in Patient.EDITABLE_FIELDS}
        merged |= attrs
        if merged.get("takes_opioids") is False:
            found = mentions(merged.get("current_medications") or "", Group.OPIOID)
            if found:
                raise serializers.ValidationError({"takes_opioids": opioid_contradiction(found)})
        if not confirmed and all(
            merged.get(k) for k in ("first_name", "last_name", "date_of_birth")
        ):
            duplicates = Patient.objects.likely_duplicates(
                clinic_id=self.context["clinic_id"], first_name=merged["first_name"],
                last_name=merged["last_name"], date_of_birth=merged["date_of_birth"],
            )  # fmt: skip
            if self.instance is not None:
                duplicates = duplicates.exclude(pk=self.instance.pk)
            existing = duplicates.first()
            if existing is not None:
                raise serializers.ValidationError(
                    {"confirm_not_duplicate": f"The clinic already has this patient (id "
                     f"{existing.pk}); send true if this is a different person."}
                )  # fmt: skip
        return attrs

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["phone"] = instance.phone.as_e164 if instance.phone else ""
        return data


class StepOutSerializer(FieldsBuiltOnce, serializers.ModelSerializer):
    class Meta:
        model = PrescriptionStep
        fields = ["dose_mg", "days"]


class PrescriptionSerializer(FieldsBuiltOnce, serializers.ModelSerializer):
    steps = StepOutSerializer(many=True, read_only=True)
    refills = serializers.IntegerField(source="refills_authorized", read_only=True)

    class Meta:
        model = Prescription
        fields = [
            "id", "rx_number", "dosage_form", "concentration_mg_per_ml", "steps",
            "doses_per_day", "time_of_day", "directions", "days_supply", "refills",
            "diagnosis_codes", "reason_for_compounding", "written_on", "expires_on",
        ]  # fmt: skip
        read_only_fields = fields


class OrderSerializer(FieldsBuiltOnce, serializers.ModelSerializer):
    number = serializers.CharField(read_only=True)
    patient_id = serializers.IntegerField(source="prescription.patient_id", read_only=True)
    prescription = PrescriptionSerializer(read_only=True)
    signer = serializers.StringRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = Order
        fields = [
            "id", "number", "status", "kind", "fill_number", "patient_id", "prescription",
            "ship_to", "needed_by", "signer", "carrier", "tracking_number", "findings",
            "acknowledged_warnings", "created_at", "status_changed_at",
        ]  # fmt: skip
        read_only_fields = fields


class OrderCreateSerializer(RegimenSerializer):
    """A new prescription and its first order: the regimen, for a patient of the clinic."""

    patient_id = WholeNumber(min_value=1)
    quantity = DecimalNumber(
        **QUANTITY_DIGITS, help_text="Capsules, or mL for liquids, drops and cream."
    )
    reason_for_compounding = Text(required=False, default=REASON_FOR_COMPOUNDING, max_length=2000)
    ship_to = serializers.ChoiceField(choices=ShipTo.choices, required=False, default=ShipTo.CLINIC)
    needed_by = IsoDate(required=False, allow_null=True, default=None)
    acknowledged = serializers.ListField(
        child=Text(), required=False, default=list,
        help_text="The `key` of each warning the prescriber has reviewed.",
    )  # fmt: skip
    reason = Text(
        required=False, allow_blank=True, default="", max_length=500,
        help_text="Why, for a warning that needs a reason (duplicate therapy, early refill).",
    )  # fmt: skip
    signer_id = WholeNumber(
        required=False, allow_null=True, default=None,
        help_text="For a draft: the prescriber of the clinic who signs it (the key's owner if "
        "not given).",
    )  # fmt: skip

    def validate_needed_by(self, needed_by):
        if problem := needed_by_problem(needed_by):
            raise serializers.ValidationError(problem)
        return needed_by

    def validate_reason_for_compounding(self, text):
        if not text.strip():
            raise serializers.ValidationError("Write the reason for compounding.")
        return text.strip()


class RefillCreateSerializer(FieldsBuiltOnce, serializers.Serializer):
    ship_to = serializers.ChoiceField(choices=ShipTo.choices, required=False, default=ShipTo.CLINIC)
    needed_by = IsoDate(required=False, allow_null=True, default=None)
    retitrate = Boolean(
        required=False, default=False,
        help_text="Titrate again from the first step (after a break) instead of continuing at "
        "the maintenance dose.",
    )  # fmt: skip
    acknowledged = serializers.ListField(child=Text(), required=False, default=list)
    reason = Text(required=False, allow_blank=True, default="", max_length=500)
    signer_id = WholeNumber(required=False, allow_null=True, default=None)

    validate_needed_by = OrderCreateSerializer.validate_needed_by


class CancelSerializer(FieldsBuiltOnce, serializers.Serializer):
    reason = Text(required=False, allow_blank=True, default="", max_length=500)


class OrderEventSerializer(FieldsBuiltOnce, serializers.ModelSerializer):
    detail = serializers.CharField(read_only=True)
    by = serializers.SerializerMethodField()

    class Meta:
        model = OrderEvent
        fields = [
            "id", "kind", "from_status", "to_status", "detail", "note", "signed_by",
            "signature_meaning", "by", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_by(self, event) -> str:
        return event.actor.get_full_name() if event.actor_id else ""
