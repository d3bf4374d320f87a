"""Install the pgvector extension where the server has it and lets us: the search then ranks in PostgreSQL
(`selectors.py`). Where it is missing, or the database role may not create extensions (pgvector is not a trusted
extension, so a superuser must run `CREATE EXTENSION vector` once), the search ranks in Python instead."""

from django.db import migrations


def install(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        if cursor.fetchone() is None:
            return
        cursor.execute("SAVEPOINT fjordgate_pgvector")
        try:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except Exception:  # no privilege: Python ranking, and the migration still applies
            cursor.execute("ROLLBACK TO SAVEPOINT fjordgate_pgvector")
        else:
            cursor.execute("RELEASE SAVEPOINT fjordgate_pgvector")


class Migration(migrations.Migration):
    dependencies = [("retrieval", "0001_initial")]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
