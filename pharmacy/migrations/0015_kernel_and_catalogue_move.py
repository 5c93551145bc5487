# The user model and the access events move to the kernel (core), the catalogue and its master
# formulation records to orders: in Django's state only. The tables keep their names and every
# row; the content types move with them, so the permissions of the Pharmacist and Technician
# groups (and of any user) keep pointing at the same models under their new app.
# The outbox also takes account emails (password resets, prescribers' decisions).

import django.db.models.deletion
from django.db import migrations, models

# app the model moved to -> its models (lower case, as content types name them)
MOVED = {
    "core": ["user", "accessevent"],
    "orders": [
        "formulation",
        "historicalformulation",
        "ingredient",
        "formulationversion",
        "historicalformulationversion",
        "formulationingredient",
    ],
}


def move_content_types(apps, schema_editor):
    """Re-point each moved model's content type at its new app. A database made from scratch
    already has a second content type for some of them (the permissions of every model in
    Django's state were made by the group migrations), so there the grants of the old one
    move to the new one and the old one goes."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    LogEntry = apps.get_model("admin", "LogEntry")
    for app_label, models_ in MOVED.items():
        for model in models_:
            old = ContentType.objects.filter(app_label="pharmacy", model=model).first()
            if old is None:
                continue
            new = ContentType.objects.filter(app_label=app_label, model=model).first()
            if new is None:
                old.app_label = app_label
                old.save(update_fields=["app_label"])
                continue
            for permission in Permission.objects.filter(content_type=old):
                twin = Permission.objects.filter(
                    content_type=new, codename=permission.codename
                ).first()
                if twin is None:
                    permission.content_type = new
                    permission.save(update_fields=["content_type"])
                    continue
                for group in permission.group_set.all():
                    group.permissions.add(twin)
                for user in permission.user_set.all():
                    user.user_permissions.add(twin)
                permission.delete()
            LogEntry.objects.filter(content_type=old).update(content_type=new)
            old.delete()


def move_content_types_back(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for app_label, models_ in MOVED.items():
        ContentType.objects.filter(app_label=app_label, model__in=models_).update(
            app_label="pharmacy"
        )


class Migration(migrations.Migration):

    dependencies = [
        ('admin', '0003_logentry_add_action_flag_choices'),
        ('auth', '0012_alter_user_first_name_max_length'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('core', '0002_access_events'),
        ('orders', '0006_catalogue_and_event_kinds'),
        ('pharmacy', '0014_formulation_water_activity_and_preservative'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='formulationversion',
                    name='formulation',
                ),
                migrations.RemoveField(
                    model_name='historicalformulationversion',
                    name='formulation',
                ),
                migrations.RemoveField(
                    model_name='formulationingredient',
                    name='ingredient',
                ),
                migrations.RemoveField(
                    model_name='formulationingredient',
                    name='version',
                ),
                migrations.RemoveField(
                    model_name='formulationversion',
                    name='approved_by',
                ),
                migrations.RemoveField(
                    model_name='formulationversion',
                    name='author',
                ),
                migrations.AlterField(
                    model_name='batch',
                    name='formulation_version',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='batches', to='orders.formulationversion'),
                ),
                migrations.AlterField(
                    model_name='historicalbatch',
                    name='formulation_version',
                    field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='orders.formulationversion'),
                ),
                migrations.RemoveField(
                    model_name='historicalformulation',
                    name='history_user',
                ),
                migrations.RemoveField(
                    model_name='historicalformulationversion',
                    name='approved_by',
                ),
                migrations.RemoveField(
                    model_name='historicalformulationversion',
                    name='author',
                ),
                migrations.RemoveField(
                    model_name='historicalformulationversion',
                    name='history_user',
                ),
                migrations.AlterField(
                    model_name='historicalingredientlot',
                    name='ingredient',
                    field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='orders.ingredient'),
                ),
                migrations.AlterField(
                    model_name='ingredientlot',
                    name='ingredient',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='lots', to='orders.ingredient'),
                ),
                migrations.RemoveField(
                    model_name='user',
                    name='groups',
                ),
                migrations.RemoveField(
                    model_name='user',
                    name='user_permissions',
                ),
                migrations.DeleteModel(
                    name='AccessEvent',
                ),
                migrations.DeleteModel(
                    name='Formulation',
                ),
                migrations.DeleteModel(
                    name='FormulationIngredient',
                ),
                migrations.DeleteModel(
                    name='FormulationVersion',
                ),
                migrations.DeleteModel(
                    name='HistoricalFormulation',
                ),
                migrations.DeleteModel(
                    name='HistoricalFormulationVersion',
                ),
                migrations.DeleteModel(
                    name='Ingredient',
                ),
                migrations.DeleteModel(
                    name='User',
                ),
            ],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
        migrations.AddField(
            model_name='delivery',
            name='message',
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AlterField(
            model_name='delivery',
            name='kind',
            field=models.CharField(choices=[('label_ready', 'Label ready'), ('on_hold', 'Order on hold'), ('rejected', 'Order rejected'), ('shipped', 'Order shipped'), ('recall_notice', 'Recall notice'), ('account', 'Account email')], max_length=20),
        ),
    ]
