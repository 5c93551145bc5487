"""The pharmacy's catalogue of LDN formulations, and the staff groups' rights on the new
prescription and order tables.

Capsules in 0.5 mg steps from 0.5 to 4.5 mg; oral liquid 1 mg/mL; sublingual drops 1 mg/mL;
topical cream 0.5 mg/mL (the usual LDN preparations: liquids are usually 1 mg/mL,
cream about 0.5 mg/mL).
"""

from decimal import Decimal

from django.db import migrations

from core.staff_groups import grant_group_permissions

CAPSULE_STRENGTHS = [Decimal(tenths) / 10 for tenths in range(5, 46, 5)]
OTHER_FORMS = [
    ("oral_liquid", "Naltrexone HCl 1 mg/mL oral liquid", Decimal("1")),
    ("sublingual_drops", "Naltrexone HCl 1 mg/mL sublingual drops", Decimal("1")),
    ("topical_cream", "Naltrexone HCl 0.5 mg/mL topical cream", Decimal("0.5")),
]
GROUP_PERMISSIONS = {
    "Pharmacist": [
        ("pharmacy", "view_formulation"),
        ("pharmacy", "change_formulation"),
        ("orders", "view_prescription"),
        ("orders", "view_order"),
        ("orders", "view_orderevent"),
    ],
    "Technician": [
        ("pharmacy", "view_formulation"),
        ("orders", "view_prescription"),
        ("orders", "view_order"),
        ("orders", "view_orderevent"),
    ],
}


def seed(apps, schema_editor):
    Formulation = apps.get_model("pharmacy", "Formulation")
    for strength in CAPSULE_STRENGTHS:
        Formulation.objects.get_or_create(
            name=f"Naltrexone HCl {strength.normalize():f} mg capsule",
            defaults={"dosage_form": "capsule", "strength_mg": strength, "unit": "capsule"},
        )
    for dosage_form, name, concentration in OTHER_FORMS:
        Formulation.objects.get_or_create(
            name=name,
            defaults={
                "dosage_form": dosage_form,
                "concentration_mg_per_ml": concentration,
                "unit": "mL",
            },
        )
    grant_group_permissions(apps, GROUP_PERMISSIONS)


def unseed(apps, schema_editor):
    apps.get_model("pharmacy", "Formulation").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("pharmacy", "0003_formulation"),
        ("orders", "0002_prescriptions_and_orders"),
    ]

    operations = [migrations.RunPython(seed, unseed)]
