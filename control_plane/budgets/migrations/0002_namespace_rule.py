import control_plane.sync.namespaces
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("budgets", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="budget",
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
                    model_name="budget",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("namespace__regex", "^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?$")),
                        name="budgets_budget_namespace_valid",
                        violation_error_message="A namespace is empty (global) or 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit.",
                    ),
                )
            ],
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE budgets_budget ADD CONSTRAINT budgets_budget_namespace_valid CHECK (namespace ~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?$') NOT VALID",
                    "ALTER TABLE budgets_budget DROP CONSTRAINT IF EXISTS budgets_budget_namespace_valid",
                )
            ],
        ),
    ]
