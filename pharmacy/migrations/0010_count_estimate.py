"""portal_count_estimate(query): the planner's row estimate of a SELECT (PostgreSQL only),
used by pharmacy.pagination for lists too long to count exactly on every view."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION portal_count_estimate(query text) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    plan jsonb;
BEGIN
    IF query !~* '^\\s*SELECT\\s' THEN
        RAISE EXCEPTION 'portal_count_estimate takes a SELECT statement';
    END IF;
    EXECUTE 'EXPLAIN (FORMAT JSON) ' || query INTO plan;
    RETURN (plan -> 0 -> 'Plan' ->> 'Plan Rows')::numeric::bigint;
END
$$;
"""
DROP = "DROP FUNCTION IF EXISTS portal_count_estimate(text);"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("pharmacy", "0009_print_jobs")]
    operations = [migrations.RunPython(create, drop)]
