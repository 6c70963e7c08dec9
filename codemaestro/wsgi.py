import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "codemaestro.settings")
application = get_wsgi_application()

# Each web worker process starts its live publisher now rather than on its first request.
from orchestration import realtime  # noqa: E402

realtime.warm_up()
