import control_plane.sync.namespaces
from django.conf import settings
from django.db import migrations, models


def mark_sign_in_rows(apps, schema_editor):
    """Before this migration only a sign-in wrote roles (there was no hand-grant path): the rows of users who
    signed in with single sign-on are its rows, so the next sign-in still takes away what the claim stops granting."""
    NamespaceRole = apps.get_model("accounts", "NamespaceRole")
    Profile = apps.get_model("accounts", "Profile")
    sso_users = Profile.objects.filter(metadata__has_key="oidc_subject").values_list("user_id", flat=True)
    NamespaceRole.objects.filter(user_id__in=list(sso_users)).update(source="sso")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_catalogue_agents"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="namespacerole",
            name="source",
            field=models.CharField(
                choices=[("manual", "granted by hand"), ("sso", "single sign-on (recomputed at each sign-in)")],
                default="manual",
                editable=False,
                max_length=10,
            ),
        ),
        migrations.RunPython(mark_sign_in_rows, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="namespacerole",
            name="namespace",
            field=models.CharField(
                blank=True, default="", max_length=63, validators=[control_plane.sync.namespaces.validate_namespace]
            ),
        ),
        # the constraint as model state; in the database NOT VALID: rows written before the rule
        # are kept (control_plane/sync/namespaces.py), every new or edited row is checked
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name="namespacerole",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("namespace__regex", "^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?$")),
                        name="accounts_namespacerole_namespace_valid",
                        violation_error_message="A namespace is empty (global) or 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit.",
                    ),
                )
            ],
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE accounts_namespacerole ADD CONSTRAINT accounts_namespacerole_namespace_valid CHECK (namespace ~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?$') NOT VALID",
                    "ALTER TABLE accounts_namespacerole DROP CONSTRAINT IF EXISTS accounts_namespacerole_namespace_valid",
                )
            ],
        ),
    ]
