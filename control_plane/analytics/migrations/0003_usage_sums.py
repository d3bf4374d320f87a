"""Per-minute and per-hour sums of the budget-usage records, kept equal to the records by triggers (`_UsageSums`).

The triggers are statement-level with transition tables: one statement that inserts 500 records (the bridge's
ingest) adds to a few sums in one upsert per table, rather than firing 500 times. Spans are cut in UTC whatever
the session's time zone. A deleted or changed record takes back its share, and a sum left with no record is
deleted. Existing records are summed at the end, so an upgraded database starts equal.
"""

from django.db import migrations, models

_TABLES = {"analytics_budgetusageminute": "minute", "analytics_budgetusagehour": "hour"}
_KEY = "(start, edge_id, currency, app_id, user_id, llm_id)"
_COLUMNS = "(start, edge_id, currency, app_id, user_id, llm_id, cost, records)"
_MATCH = (
    "m.start = d.start AND m.edge_id = d.edge_id AND m.currency = d.currency AND m.app_id = d.app_id"
    " AND m.user_id = d.user_id AND m.llm_id = d.llm_id"
)
_ADDED_TO = "ON CONFLICT {key} DO UPDATE SET cost = m.cost + EXCLUDED.cost, records = m.records + EXCLUDED.records"


def _span(span: str, column: str) -> str:
    """The start of the minute or hour `column` lies in, in UTC (date_bin: no time zone lookup per row)."""
    return f"date_bin('1 {span}', {column}, TIMESTAMPTZ '2000-01-01 00:00:00+00')"


def _sums(span: str, rows: str) -> str:
    return f"""
        SELECT {_span(span, '"timestamp"')} AS start, edge_id, currency, coalesce(app_id, 0) AS app_id,
               coalesce(user_id, 0) AS user_id, coalesce(llm_id, 0) AS llm_id, sum(cost) AS cost, count(*) AS records
        FROM {rows} GROUP BY 1, 2, 3, 4, 5, 6"""


def _take_back(table: str, span: str) -> str:
    return f"""
        UPDATE {table} AS m SET cost = m.cost - d.cost, records = m.records - d.records
        FROM ({_sums(span, "removed")}) AS d WHERE {_MATCH};
        DELETE FROM {table} AS m USING ({_sums(span, "removed")}) AS d WHERE {_MATCH} AND m.records <= 0;"""


# One pass over what the statement inserted: its minutes' sums, and the hours' sums from those.
_ADD = f"""
        WITH d AS ({_sums("minute", "added")}),
        minutes AS (
            INSERT INTO analytics_budgetusageminute AS m {_COLUMNS} SELECT * FROM d ORDER BY 1, 2, 3, 4, 5, 6
            {_ADDED_TO.format(key=_KEY)}
        )
        INSERT INTO analytics_budgetusagehour AS m {_COLUMNS}
        SELECT {_span("hour", "start")}, edge_id, currency, app_id, user_id, llm_id, sum(cost), sum(records)
        FROM d GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
        {_ADDED_TO.format(key=_KEY)};"""


FORWARD = f"""
CREATE FUNCTION analytics_usage_sums_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        {"".join(f"DELETE FROM {table};" for table in _TABLES)}
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        {"".join(_take_back(table, span) for table, span in _TABLES.items())}
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        {_ADD}
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER analytics_usage_sums_insert AFTER INSERT ON analytics_budgetusagerecord
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION analytics_usage_sums_sync();
CREATE TRIGGER analytics_usage_sums_delete AFTER DELETE ON analytics_budgetusagerecord
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION analytics_usage_sums_sync();
CREATE TRIGGER analytics_usage_sums_update AFTER UPDATE ON analytics_budgetusagerecord
    REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION analytics_usage_sums_sync();
CREATE TRIGGER analytics_usage_sums_truncate AFTER TRUNCATE ON analytics_budgetusagerecord
    FOR EACH STATEMENT EXECUTE FUNCTION analytics_usage_sums_sync();
{"".join(f"INSERT INTO {table} {_COLUMNS} {_sums(span, 'analytics_budgetusagerecord')};" for table, span in _TABLES.items())}
"""

BACKWARD = """
DROP TRIGGER analytics_usage_sums_insert ON analytics_budgetusagerecord;
DROP TRIGGER analytics_usage_sums_delete ON analytics_budgetusagerecord;
DROP TRIGGER analytics_usage_sums_update ON analytics_budgetusagerecord;
DROP TRIGGER analytics_usage_sums_truncate ON analytics_budgetusagerecord;
DROP FUNCTION analytics_usage_sums_sync();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0002_lean_ingest_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name="BudgetUsageHour",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("start", models.DateTimeField()),
                ("edge_id", models.CharField(max_length=63)),
                ("currency", models.CharField(max_length=3)),
                ("app_id", models.BigIntegerField()),
                ("user_id", models.BigIntegerField()),
                ("llm_id", models.BigIntegerField()),
                ("cost", models.DecimalField(decimal_places=10, max_digits=30)),
                ("records", models.BigIntegerField()),
            ],
            options={
                "abstract": False,
                "indexes": [
                    models.Index(fields=["app_id", "start"], name="budgetusagehour_app_idx"),
                    models.Index(fields=["user_id", "start"], name="budgetusagehour_user_idx"),
                    models.Index(fields=["llm_id", "start"], name="budgetusagehour_llm_idx"),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("start", "edge_id", "currency", "app_id", "user_id", "llm_id"),
                        name="budgetusagehour_uniq",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="BudgetUsageMinute",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("start", models.DateTimeField()),
                ("edge_id", models.CharField(max_length=63)),
                ("currency", models.CharField(max_length=3)),
                ("app_id", models.BigIntegerField()),
                ("user_id", models.BigIntegerField()),
                ("llm_id", models.BigIntegerField()),
                ("cost", models.DecimalField(decimal_places=10, max_digits=30)),
                ("records", models.BigIntegerField()),
            ],
            options={
                "abstract": False,
                "indexes": [
                    models.Index(fields=["app_id", "start"], name="budgetusageminute_app_idx"),
                    models.Index(fields=["user_id", "start"], name="budgetusageminute_user_idx"),
                    models.Index(fields=["llm_id", "start"], name="budgetusageminute_llm_idx"),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("start", "edge_id", "currency", "app_id", "user_id", "llm_id"),
                        name="budgetusageminute_uniq",
                    )
                ],
            },
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
