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
    ]
