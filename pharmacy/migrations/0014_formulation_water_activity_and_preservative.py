"""Master formulation records declare their measured water activity and whether they contain an
antimicrobial preservative: the evidence USP <795> asks for before a record may claim the
nonaqueous (aw < 0.6) or the aqueous, preserved category.

Records written before this already claimed "aqueous, preserved" on the strength of their
preservative, so they are marked as containing one: the new field records what the category
already said, and such a record can still be copied into a new draft. No water activity can be
back-filled: it is a measurement."""

import django.core.validators
from decimal import Decimal
from django.db import migrations, models


def mark_preserved_records(apps, schema_editor):
    FormulationVersion = apps.get_model("pharmacy", "FormulationVersion")
    FormulationVersion.objects.filter(bud_category="aqueous_preserved").update(
        antimicrobial_preservative=True
    )


class Migration(migrations.Migration):

    dependencies = [
        ('pharmacy', '0013_delivery_permissions'),
    ]

    operations = [
        migrations.AddField(
            model_name='formulationversion',
            name='antimicrobial_preservative',
            field=models.BooleanField(default=False, help_text='Needed for the aqueous, preserved category (USP <795>).', verbose_name='contains an antimicrobial preservative'),
        ),
        migrations.AddField(
            model_name='formulationversion',
            name='water_activity',
            field=models.DecimalField(blank=True, decimal_places=3, help_text='Measured water activity (aw), if recorded: below 0.6 the preparation is nonaqueous (USP <795>).', max_digits=4, null=True, validators=[django.core.validators.MinValueValidator(Decimal('0')), django.core.validators.MaxValueValidator(Decimal('1'))], verbose_name='water activity (aw)'),
        ),
        migrations.AddField(
            model_name='historicalformulationversion',
            name='antimicrobial_preservative',
            field=models.BooleanField(default=False, help_text='Needed for the aqueous, preserved category (USP <795>).', verbose_name='contains an antimicrobial preservative'),
        ),
        migrations.AddField(
            model_name='historicalformulationversion',
            name='water_activity',
            field=models.DecimalField(blank=True, decimal_places=3, help_text='Measured water activity (aw), if recorded: below 0.6 the preparation is nonaqueous (USP <795>).', max_digits=4, null=True, validators=[django.core.validators.MinValueValidator(Decimal('0')), django.core.validators.MaxValueValidator(Decimal('1'))], verbose_name='water activity (aw)'),
        ),
        migrations.RunPython(mark_preserved_records, migrations.RunPython.noop),
    ]
