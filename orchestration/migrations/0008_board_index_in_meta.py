"""The board's index moves into Subtask.Meta.

0003 created subtask_board_column with raw SQL, outside the migration state, so the
autodetector did not know it. The database already holds an index of that name and shape
on every vendor (0003 ran the same CREATE INDEX on SQLite and PostgreSQL), so only the
state learns about it; the database side keeps a no-op guard in case the index was dropped
by hand, and reversing leaves it to 0003, which still owns it in the database.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("orchestration", "0007_prompt_proposals"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="subtask",
                    index=models.Index(
                        fields=["workspace", "status", "-status_changed_at", "-id"],
                        name="subtask_board_column",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    "CREATE INDEX IF NOT EXISTS subtask_board_column ON orchestration_subtask "
                    "(workspace_id, status, status_changed_at DESC, id DESC)",
                    migrations.RunSQL.noop,
                ),
            ],
        ),
    ]
