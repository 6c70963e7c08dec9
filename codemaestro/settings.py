"""CodeMaestro settings, read from the environment.

With no DATABASE_URL and no REDIS_URL the product runs on its embedded default: SQLite in
WAL mode, Celery's filesystem broker and the SQLite channel layer, all under DATA_DIR. With
them set, the same code runs on PostgreSQL and Redis.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from codemaestro.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("CODEMAESTRO_DATA_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG and env_bool("CODEMAESTRO_REQUIRE_SECRET_KEY", False):
        raise ImproperlyConfigured("SECRET_KEY must be set")
    # Embedded and test runs get a stable per-checkout key; production sets SECRET_KEY.
    SECRET_KEY = "insecure-embedded-key-" + str(BASE_DIR)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "django_celery_results",
    "channels",
    "channels_lite",
    "guardian",
    "accounts",
    "orchestration",
    "review",
    "agents",
    "dashboard",
    "audit",
    "ratelimits",
    "identity",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "codemaestro.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "codemaestro.urls"
WSGI_APPLICATION = "codemaestro.wsgi.application"
ASGI_APPLICATION = "codemaestro.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
EMBEDDED = not DATABASE_URL
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_health_checks=True)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool(
        "DB_POOL", True
    ):
        # Under daphne every request runs in a fresh thread, and Django's connections are per
        # thread: persistent connections would pile up until PostgreSQL refuses more. A
        # process-wide pool hands connections back at the end of each request instead.
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"]["OPTIONS"] = {
            "pool": {
                "min_size": env_int("DB_POOL_MIN", 2),
                "max_size": env_int("DB_POOL_MAX", 10),
                "timeout": env_float("DB_POOL_TIMEOUT", 10.0),
            }
        }
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 0)
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django binds parameters client-side and never prepares. The run claim statement
        # (orchestration/services/runs.py) binds server-side and asks to be prepared once per
        # connection, which psycopg does only while a threshold is set: planning it cost
        # more than running it. 0 turns that off (a PgBouncer without prepared statements).
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
            env_int("DB_PREPARE_THRESHOLD", 5) or None
        )
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "codemaestro.sqlite3",
            # WAL lets readers run beside the single writer; IMMEDIATE takes the write lock at
            # BEGIN so two writers queue on busy_timeout instead of failing mid-transaction.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;"
                ),
            },
            "TEST": {"NAME": str(DATA_DIR / "test.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, Celery, Channels ------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
BROKER_DIR = DATA_DIR / "broker"

CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 270)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# One broker can serve several installations (or test runs) side by side, each on its queue.
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "celery")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers reuse their database connection across this many tasks (Celery otherwise opens a
# new one per task); broken or expired ones are still replaced before each task.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 0) or None
# A request that commits work must not hang on a broker that is down: publishing gives up
# quickly and the sweeps send the work later (see orchestration/services/effects.py).
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TIMEZONE = "UTC"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    # Every task's time limit stays well under this, so a slow task is never redelivered
    # to a second worker while the first is still on it.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            # Separate prefixes keep two deployments (or two test runs) on one Redis apart.
            "CONFIG": {"hosts": [REDIS_URL], "prefix": env_str("CHANNELS_PREFIX", "asgi")},
        }
    }
else:
    CELERY_BROKER_URL = "filesystem://localhost//"
    CELERY_RESULT_BACKEND = "django-db"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_lite.layers.core.SQLiteChannelLayer",
            "CONFIG": {"database": "default"},
        }
    }

CELERY_BEAT_SCHEDULE = {
    "reap-expired-leases": {
        "task": "orchestration.reap_expired_leases",
        "schedule": env_float("CODEMAESTRO_REAPER_INTERVAL", 10.0),
    },
    "sweep": {
        "task": "orchestration.sweep",
        "schedule": env_float("CODEMAESTRO_DISPATCH_INTERVAL", 5.0),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")

# --- Orchestration policy ---------------------------------------------------------------
CODEMAESTRO = {
    "LEASE_SECONDS": env_int("CODEMAESTRO_LEASE_SECONDS", 300),
    "MAX_LEASE_SECONDS": env_int("CODEMAESTRO_MAX_LEASE_SECONDS", 3600),
    # Push runs carried out by our own workers: a short lease, renewed by a heartbeat
    # thread, so a killed worker's run is back in the queue within about a minute.
    "WORKER_LEASE_SECONDS": env_int("CODEMAESTRO_WORKER_LEASE_SECONDS", 60),
    # The sweeps that make up for lost broker messages: a queued push run is offered to
    # the workers again after this long, a queued test run re-sent, an event re-handled.
    "REDISPATCH_SECONDS": env_int("CODEMAESTRO_REDISPATCH_SECONDS", 60),
    "RESEND_TESTRUN_SECONDS": env_int("CODEMAESTRO_RESEND_TESTRUN_SECONDS", 300),
    "REHANDLE_EVENT_SECONDS": env_int("CODEMAESTRO_REHANDLE_EVENT_SECONDS", 60),
}

# --- Auth, API --------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "login"
# Object permissions (roles on workspaces and projects) come from django-guardian; its
# anonymous user is not used: outsiders see nothing.
AUTHENTICATION_BACKENDS = [
    # Django's ModelBackend behind the sign-in lockout (identity/lockout.py).
    "identity.backends.LockoutModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None
# Sign-in lockout: this many failed tries per username (or per client address) within the
# window lock it for LOCK_SECONDS; the address limit is higher because offices share one.
IDENTITY_LOCKOUT = {
    "ATTEMPTS": env_int("LOGIN_LOCKOUT_ATTEMPTS", 5),
    "ADDRESS_ATTEMPTS": env_int("LOGIN_LOCKOUT_ADDRESS_ATTEMPTS", 20),
    "WINDOW_SECONDS": env_int("LOGIN_LOCKOUT_WINDOW_SECONDS", 900),
    "LOCK_SECONDS": env_int("LOGIN_LOCKOUT_SECONDS", 900),
}
# How many reverse proxies in front of the app append to X-Forwarded-For (compose: nginx, 1).
# The client address is read that many entries from the right; 0 trusts REMOTE_ADDR only,
# since a client can write any X-Forwarded-For it likes.
TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", 0)
# Workspace SSO providers must use https, except one on this machine when this is set.
IDENTITY_OIDC_ALLOW_LOCAL_HTTP = env_bool("IDENTITY_OIDC_ALLOW_LOCAL_HTTP", DEBUG)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "orchestration.api.errors.exception_handler",
    # Atomic per-workspace and per-token limits (Redis, or SQL on the embedded default).
    "DEFAULT_THROTTLE_CLASSES": ["ratelimits.throttling.WorkspaceRateThrottle"],
}
# Requests per minute; each workspace may set its own (ratelimits.WorkspaceRateLimit). The
# defaults are generous: they stop a runaway client, not a busy team of agents.
RATELIMIT = {
    "ENABLED": env_bool("RATELIMIT_ENABLED", True),
    "WORKSPACE_PER_MINUTE": env_int("RATELIMIT_WORKSPACE_PER_MINUTE", 20_000),
    "TOKEN_PER_MINUTE": env_int("RATELIMIT_TOKEN_PER_MINUTE", 6_000),
    # Keeps two installations (or test runs) on one Redis apart.
    "PREFIX": env_str("RATELIMIT_PREFIX", "cmrl"),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CodeMaestro API",
    "DESCRIPTION": "Direct AI coding agents: workspaces, projects, features, subtasks, runs.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from our own static files: no CDN at run time.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "AgentRoleEnum": "accounts.models.AgentRole",
        "MemberRoleEnum": "accounts.models.Role",
        "SubtaskStatusEnum": "orchestration.models.subtasks.SubtaskStatus",
        "FeatureStatusEnum": "orchestration.models.projects.FeatureStatus",
        "RunStatusEnum": "orchestration.models.agents.RunStatus",
        "RunStepEnum": "orchestration.models.agents.RunStep",
        "TestRunStatusEnum": "orchestration.models.testruns.TestRunStatus",
        "TestRunPurposeEnum": "orchestration.models.testruns.TestRunPurpose",
        "CaseOutcomeEnum": "orchestration.models.testruns.CaseOutcome",
        "BreakerStateEnum": "orchestration.models.agents.BreakerState",
        "ExecutorEnum": "orchestration.models.agents.Executor",
    },
}

# --- I18N, static -----------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(DATA_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Error pages and error reports mask every secret value the process knows.
DEFAULT_EXCEPTION_REPORTER = "accounts.scrubbing.ScrubbingExceptionReporter"
DEFAULT_EXCEPTION_REPORTER_FILTER = "accounts.scrubbing.ScrubbingExceptionReporterFilter"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # On every handler: secret values this process knows never reach a log line.
    "filters": {"scrub_secrets": {"()": "accounts.scrubbing.ScrubSecretsFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["scrub_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
