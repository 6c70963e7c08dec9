"""Full-text search over events: a stored tsvector filled at insert, with a GIN index;
and the index that serves the board's columns.

The column exists on every database (SQLite keeps it empty and search falls back to a
scan); the GIN index is PostgreSQL's only, so the database side of AddIndex is skipped
elsewhere while the migration state stays the same for both.

subtask_board_column lets each board column (a state, newest change first, capped) and
the counts by state be read from the index instead of sorting a workspace's subtasks.
It is created with SQL only (no model state): orchestration/models/subtasks.py can take it
over as Index(fields=["workspace", "status", "-status_changed_at", "-id"]).
"""

import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.db import migrations

INDEX = django.contrib.postgres.indexes.GinIndex(fields=["search_vector"], name="event_search")


class AddIndexOnPostgres(migrations.AddIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    dependencies = [
        ("orchestration", "0002_testrun_dispatch_and_worker"),
    ]

    operations = [
        migrations.AddField(
            model_name="event",
            name="search_vector",
            field=django.contrib.postgres.search.SearchVectorField(
                blank=True, editable=False, null=True
            ),
        ),
        AddIndexOnPostgres(model_name="event", index=INDEX),
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS subtask_board_column ON orchestration_subtask "
            "(workspace_id, status, status_changed_at DESC, id DESC)",
            "DROP INDEX IF EXISTS subtask_board_column",
        ),
    ]
