import control_plane.sync.namespaces
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="configchange",
            name="attempts",
            field=models.PositiveIntegerField(default=0, help_text="failed publication attempts so far"),
        ),
        migrations.AddField(
            model_name="configchange",
            name="dead_lettered_at",
            field=models.DateTimeField(
                blank=True,
                db_index=True,
                help_text="set aside after repeated failures; retry from the admin",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="configchange",
            name="last_error",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.AddField(
            model_name="configchange",
            name="next_attempt_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="configchange",
            name="namespace",
            field=models.CharField(
                blank=True,
                db_index=True,
                default="",
                max_length=100,
                validators=[control_plane.sync.namespaces.validate_namespace],
            ),
        ),
        # the constraint as model state; in the database NOT VALID: rows written before the rule
        # are kept (control_plane/sync/namespaces.py), every new or edited row is checked
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name="configchange",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("namespace__regex", "^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?$")),
                        name="sync_configchange_namespace_valid",
                        violation_error_message="A namespace is empty (global) or 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit.",
                    ),
                )
            ],
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE sync_configchange ADD CONSTRAINT sync_configchange_namespace_valid CHECK (namespace ~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?$') NOT VALID",
                    "ALTER TABLE sync_configchange DROP CONSTRAINT IF EXISTS sync_configchange_namespace_valid",
                )
            ],
        ),
    ]
