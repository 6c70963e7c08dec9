from __future__ import annotations

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "codemaestro.settings")

app = Celery("codemaestro")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _replace_unusable_connections(task=None, **kwargs) -> None:
    # With CELERY_DB_REUSE_MAX a worker keeps its connection between tasks; this still drops
    # one that broke (a database restart) or outlived CONN_MAX_AGE. Tasks run inline (eager)
    # share the caller's connection, which is not ours to close.
    from django.db import close_old_connections, connection

    if (task is not None and task.request.is_eager) or connection.in_atomic_block:
        return
    close_old_connections()
