"""Production settings: everything of settings.py, hardened.

Requires SECRET_KEY, DATABASE_URL and REDIS_URL from the environment; refuses to start
without them rather than fall back to the embedded default.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("CODEMAESTRO_REQUIRE_SECRET_KEY", "true")

from codemaestro.env import env_bool, env_int
from codemaestro.settings import *  # noqa: F403
from codemaestro.settings import DATABASE_URL, REDIS_URL, SECRET_KEY

if SECRET_KEY.startswith("insecure-") or len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("SECRET_KEY must be set to a random value of 50+ characters")
if not DATABASE_URL or not REDIS_URL:
    raise ImproperlyConfigured("production needs DATABASE_URL and REDIS_URL")

DEBUG = False
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = True
# The __Host- prefix makes browsers refuse these cookies unless set by this exact host over
# HTTPS with Path=/: a sibling subdomain cannot plant a session or a CSRF token.
SESSION_COOKIE_NAME = "__Host-sessionid"
CSRF_COOKIE_NAME = "__Host-csrftoken"
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"  # and frame-ancestors 'none' in codemaestro.security's policy
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
