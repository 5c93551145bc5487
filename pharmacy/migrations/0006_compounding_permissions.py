"""Staff rights on the compounding records. Pharmacists run them; technicians receive lots,
compound and record QC. Status moves are further limited by role in the services."""

from django.db import migrations

from core.staff_groups import grant_group_permissions


def rights(app_label, verbs, models):
    return [(app_label, f"{verb}_{model}") for model in models for verb in verbs]


RECORDS = ["ingredient", "ingredientlot", "formulationversion", "formulationingredient", "batch",
           "batchingredient", "qcresult"]  # fmt: skip
TRAILS = ["ingredientlotevent", "batchevent", "dispense", "recallnotice"]

GROUP_PERMISSIONS = {
    "Pharmacist": [
        *rights("pharmacy", ["view", "add", "change"], RECORDS),
        *rights("pharmacy", ["view"], TRAILS),
        *rights("pharmacy", ["view", "add"], ["recall"]),
    ],
    "Technician": [
        *rights(
            "pharmacy", ["view"], ["ingredient", "formulationversion", "formulationingredient"]
        ),
        *rights(
            "pharmacy",
            ["view", "add", "change"],
            ["ingredientlot", "batch", "batchingredient", "qcresult"],
        ),  # fmt: skip
        *rights("pharmacy", ["view"], TRAILS),
    ],
}


def grant(apps, schema_editor):
    grant_group_permissions(apps, GROUP_PERMISSIONS)


class Migration(migrations.Migration):
    dependencies = [("pharmacy", "0005_compounding")]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
