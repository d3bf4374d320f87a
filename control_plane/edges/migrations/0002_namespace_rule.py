import control_plane.sync.namespaces
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("edges", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="edgeinstance",
            name="namespace",
            field=models.CharField(
                blank=True,
                db_index=True,
                default="",
                max_length=63,
                validators=[control_plane.sync.namespaces.validate_namespace],
            ),
        ),
        migrations.AlterField(
            model_name="edgereloadrequest",
            name="namespace",
            field=models.CharField(
                blank=True, default="", max_length=63, validators=[control_plane.sync.namespaces.validate_namespace]
            ),
        ),
        migrations.AlterField(
            model_name="publishedconfig",
            name="namespace",
            field=models.CharField(
                blank=True,
                default="",
                max_length=63,
                unique=True,
                validators=[control_plane.sync.namespaces.validate_namespace],
            ),
        ),
        # the constraint as model state; in the database NOT VALID: rows written before the rule
        # are kept (control_plane/sync/namespaces.py), every new or edited row is checked
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name="edgeinstance",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("namespace__regex", "^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?$")),
                        name="edges_edgeinstance_namespace_valid",
                        violation_error_message="A namespace is empty (global) or 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit.",
                    ),
                )
            ],
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE edges_edgeinstance ADD CONSTRAINT edges_edgeinstance_namespace_valid CHECK (namespace ~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?$') NOT VALID",
                    "ALTER TABLE edges_edgeinstance DROP CONSTRAINT IF EXISTS edges_edgeinstance_namespace_valid",
                )
            ],
        ),
        # the constraint as model state; in the database NOT VALID: rows written before the rule
        # are kept (control_plane/sync/namespaces.py), every new or edited row is checked
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name="edgereloadrequest",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("namespace__regex", "^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?$")),
                        name="edges_edgereloadrequest_namespace_valid",
                        violation_error_message="A namespace is empty (global) or 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit.",
                    ),
                )
            ],
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE edges_edgereloadrequest ADD CONSTRAINT edges_edgereloadrequest_namespace_valid CHECK (namespace ~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?$') NOT VALID",
                    "ALTER TABLE edges_edgereloadrequest DROP CONSTRAINT IF EXISTS edges_edgereloadrequest_namespace_valid",
                )
            ],
        ),
        # the constraint as model state; in the database NOT VALID: rows written before the rule
        # are kept (control_plane/sync/namespaces.py), every new or edited row is checked
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name="publishedconfig",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("namespace__regex", "^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?$")),
                        name="edges_publishedconfig_namespace_valid",
                        violation_error_message="A namespace is empty (global) or 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit.",
                    ),
                )
            ],
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE edges_publishedconfig ADD CONSTRAINT edges_publishedconfig_namespace_valid CHECK (namespace ~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?$') NOT VALID",
                    "ALTER TABLE edges_publishedconfig DROP CONSTRAINT IF EXISTS edges_publishedconfig_namespace_valid",
                )
            ],
        ),
    ]
