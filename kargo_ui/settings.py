"""The one settings file. Every knob comes from an environment variable and bad values fail loudly.

Embedded default (nothing set): SQLite in WAL mode, the in-memory channel layer and an in-process
Celery broker, so `manage.py serve` runs everything in one process. DATABASE_URL and REDIS_URL
switch to PostgreSQL, channels-redis and a Redis broker for separate daphne/worker processes.
"""

import base64
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        return Path(file_path).read_text().strip()
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false)")


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    # Without a configured key we derive a stable per-checkout key so sessions survive restarts;
    # a deployment sets DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE).
    key_file = BASE_DIR / "var" / "secret_key"
    if not key_file.exists():
        import secrets

        key_file.parent.mkdir(parents=True, exist_ok=True)
        # Readable by the server's user only, from the moment it exists.
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
    key_file.chmod(0o600)
    SECRET_KEY = key_file.read_text().strip()

ALLOWED_HOSTS = [
    h for h in env_str("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",") if h
]
CSRF_TRUSTED_ORIGINS = [o for o in env_str("DJANGO_CSRF_TRUSTED_ORIGINS").split(",") if o]

# Where promotions get their private work directories and warehouses keep their git mirrors.
DATA_DIR = Path(env_str("KARGO_DATA_DIR", str(BASE_DIR / "var")))
# Demo mode lets the seeded demo user log in, and only from loopback (see projects.access).
DEMO_MODE = env_bool("KARGO_DEMO", False)
DEMO_USERNAME = "demo"
# The demo's image registry (kargo_ui/demo_registry.py) listens on 127.0.0.1 at this port.
DEMO_REGISTRY_PORT = int(env_str("KARGO_DEMO_REGISTRY_PORT", "5055"))
# How often the periodic reconcile looks for work nobody picked up (seconds).
RECONCILE_INTERVAL = env_float("KARGO_RECONCILE_INTERVAL", 2.0)
# A Running promotion whose worker has not written a heartbeat for this long is taken as lost.
PROMOTION_HEARTBEAT_TIMEOUT = env_float("KARGO_PROMOTION_HEARTBEAT_TIMEOUT", 30.0)
# A promotion whose worker died resumes (re-running its re-runnable steps) at most this often.
PROMOTION_MAX_RESUMES = int(env_float("KARGO_PROMOTION_MAX_RESUMES", 3))
# The longest one verification measurement may take (a metric's own timeout may be shorter).
VERIFICATION_MEASUREMENT_TIMEOUT = env_float("KARGO_VERIFICATION_MEASUREMENT_TIMEOUT", 30.0)
# Local (file://) git repositories are allowed only below these directories (colon-separated);
# remote URLs are not affected. Default: $KARGO_DATA_DIR/repos and the demo's repositories.
FILE_REPO_ROOTS = [p for p in env_str("KARGO_FILE_REPO_ROOTS").split(":") if p]
# Egress policy (projects/egress.py) for every outbound connection made for a user: comma-separated
# hosts (`*.example.com`) or networks. With an allow list, nothing else is reached. Loopback and
# link-local (cloud metadata) addresses are refused unless allowed here or in demo mode.
EGRESS_ALLOW = [e.strip() for e in env_str("KARGO_EGRESS_ALLOW").split(",") if e.strip()]
EGRESS_DENY = [e.strip() for e in env_str("KARGO_EGRESS_DENY").split(",") if e.strip()]
EGRESS_ALLOW_LOCAL = env_bool("KARGO_EGRESS_ALLOW_LOCAL", DEMO_MODE)
# The address senders reach this server at: webhook receiver URLs in ProjectConfig
# status.webhookReceivers are <KARGO_PUBLIC_URL>/webhook/<kind>/<hash> (Kargo's external webhook
# server base URL is this plus /webhook).
KARGO_PUBLIC_URL = env_str("KARGO_PUBLIC_URL", "http://127.0.0.1:8000").strip().rstrip("/")
if not KARGO_PUBLIC_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"KARGO_PUBLIC_URL={KARGO_PUBLIC_URL!r} is not an http(s) URL")
# Kargo's minimum warehouse discovery interval is 5m; a local setup wants faster.
MIN_DISCOVERY_INTERVAL = env_float("KARGO_MIN_DISCOVERY_INTERVAL", 0.0)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "channels",
    "axes",
    "kargo_ui",
    "projects",
    "freight",
    "stages",
    "verification",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads request.GET or request.POST (CSRF, the views): a body in a charset
    # that cannot be decoded is a 400 here, not a 500 from Django's own error page.
    "projects.middleware.refuse_undecodable_body",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "projects.audit.AuditMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: it answers locked-out logins.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "kargo_ui.urls"
ASGI_APPLICATION = "kargo_ui.asgi.application"
WSGI_APPLICATION = None

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
                "projects.context_processors.demo",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    try:
        DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
    except Exception as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a usable database URL: {exc}") from None
else:
    sqlite_path = Path(env_str("KARGO_SQLITE_PATH", str(DATA_DIR / "kargo_ui.sqlite3")))
    sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    # The database holds sessions and token hashes: the server's user only. SQLite gives its
    # -wal and -shm files the main file's permissions, so creating it 0600 covers them too.
    os.close(os.open(sqlite_path, os.O_WRONLY | os.O_CREAT, 0o600))
    sqlite_path.chmod(0o600)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": sqlite_path,
            # WAL lets the web server read while the in-process worker writes.
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
            # A file (channels' live-server tests need one), per process so parallel runs don't collide.
            "TEST": {"NAME": str(DATA_DIR / f"test_kargo_ui_{os.getpid()}.sqlite3")},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes first: it refuses logins from a locked-out user and address before any backend
# checks a password.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "projects.access.KargoBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "projects"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

# Login throttling (django-axes): after KARGO_LOGIN_FAILURE_LIMIT wrong passwords for one user
# from one address, further attempts are refused for KARGO_LOGIN_COOLOFF_MINUTES.
AXES_FAILURE_LIMIT = int(env_float("KARGO_LOGIN_FAILURE_LIMIT", 5))
AXES_COOLOFF_TIME = timedelta(minutes=env_float("KARGO_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "locked_out.html"
AXES_VERBOSE = False

# Behind TLS (production): KARGO_HTTPS=1 turns on secure cookies, the redirect to https and HSTS.
# Behind a proxy that terminates TLS, KARGO_TRUST_PROXY_SSL_HEADER=1 trusts its
# X-Forwarded-Proto (only set it when the proxy always sets or strips that header).
HTTPS = env_bool("KARGO_HTTPS", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = int(env_float("KARGO_HSTS_SECONDS", 31536000 if HTTPS else 0))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("KARGO_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("KARGO_HSTS_PRELOAD", False)
if env_bool("KARGO_TRUST_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Content Security Policy (Django's own middleware): scripts and styles only from this server,
# no inline scripts. Inline style *attributes* are allowed: the pipeline graph is laid out on the
# server and positions its nodes with them; an attribute cannot run script.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "style-src-attr": [CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
# Serve /static/ straight from the app directories without a collectstatic step.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

REDIS_URL = env_str("REDIS_URL")
CHANNEL_PREFIX = env_str("KARGO_CHANNEL_PREFIX", "kargo")
# The live pushes: changes received within this window are rendered and sent together.
LIVE_COALESCE_SECONDS = env_float("KARGO_LIVE_COALESCE_SECONDS", 0.15)
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 reads with a 5 s socket timeout by default, the same 5 s that
                # channels-redis blocks waiting for a message: under load the read timed out
                # first and dropped every idle websocket. Reads get more time than the block.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
                "prefix": CHANNEL_PREFIX,
                # Each web process receives a project's changes once, on one channel, and drains
                # it at once (stages.live), so a backlog means a stalled process: 1,000 queued
                # changes is far past any burst, and a message older than 30 s is useless (pages
                # re-sync on the gap it leaves, which stages.live logs and counts).
                "capacity": 1000,
                "expiry": 30,
            },
        }
    }
    CELERY_BROKER_URL = REDIS_URL
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CELERY_BROKER_URL = "memory://localhost//"
    # kombu's in-memory transport polls its queues, by default once a second: a promotion (two
    # tasks) would wait up to two seconds before it starts showing progress.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"polling_interval": 0.05}

# A separate `celery worker` keeps the root logger this file configures (with its redaction
# filter) instead of installing its own handlers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_ALWAYS_EAGER = env_bool("KARGO_TASKS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "reconcile": {"task": "stages.tasks.reconcile", "schedule": RECONCILE_INTERVAL},
    "reconcile-verifications": {
        "task": "verification.tasks.reconcile_verifications",
        "schedule": RECONCILE_INTERVAL,
    },
}

# Every record ends at the root's console handler, whose filter masks credentials in URLs
# (projects.logfilter: a repoURL's token, a ?private_token=...), tracebacks included. Django's own
# loggers send their records there too instead of to Django's default handlers, which would
# print them unmasked first (its console under DEBUG, runserver's request lines).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "projects.logfilter.RedactFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}
    },
    "root": {"handlers": ["console"], "level": env_str("KARGO_LOG_LEVEL", "INFO")},
    "loggers": {
        "celery": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        # One line per outbound request (every registry blob, every measurement) drowns the log;
        # failures reach it as the callers' own messages.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "django": {"handlers": [], "level": "INFO"},
        "django.server": {"handlers": [], "level": "INFO", "propagate": True},
    },
}

# ------------------------------------------------------------------------------------------------
# Single sign-on (OpenID Connect; projects/oidc.py, through mozilla-django-oidc). Off, and nothing
# changes, without KARGO_OIDC_ISSUER_URL. The provider's endpoints are discovered from
# <issuer>/.well-known/openid-configuration unless KARGO_OIDC_AUTHORIZATION_URL, _TOKEN_URL and
# _JWKS_URL (and _USERINFO_URL) name them; the egress policy applies to all of them.


def env_claims(name: str) -> dict[str, list[str]]:
    """`groups=platform,email=a@example.com`: claim values by claim name."""
    claims: dict[str, list[str]] = {}
    for item in env_str(name).split(","):
        if not item.strip():
            continue
        claim, sep, value = item.partition("=")
        if not sep or not claim.strip() or not value.strip():
            raise ImproperlyConfigured(
                f"{name}: {item.strip()!r} is not CLAIM=VALUE (e.g. groups=platform,email=a@x.io)"
            )
        claims.setdefault(claim.strip(), []).append(value.strip())
    return claims


OIDC_ISSUER_URL = env_str("KARGO_OIDC_ISSUER_URL").strip()
OIDC_ENABLED = bool(OIDC_ISSUER_URL)
OIDC_RP_CLIENT_ID = env_str("KARGO_OIDC_CLIENT_ID").strip()
# Empty for a public client (PKCE alone); KARGO_OIDC_CLIENT_SECRET_FILE reads it from a file.
OIDC_RP_CLIENT_SECRET = env_str("KARGO_OIDC_CLIENT_SECRET")
OIDC_RP_SCOPES = " ".join(env_str("KARGO_OIDC_SCOPES", "openid email profile groups").split())
# The claim a new user is named after (Kargo's api.oidc.usernameClaim).
OIDC_USERNAME_CLAIM = env_str("KARGO_OIDC_USERNAME_CLAIM", "email").strip()
# Users whose claims match are admins (viewers) in every project (Kargo's api.oidc.admins and
# api.oidc.viewers); they do not become Django superusers.
OIDC_SYSTEM_ADMINS = env_claims("KARGO_OIDC_ADMINS")
OIDC_SYSTEM_VIEWERS = env_claims("KARGO_OIDC_VIEWERS")
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("KARGO_OIDC_AUTHORIZATION_URL").strip()
OIDC_OP_TOKEN_ENDPOINT = env_str("KARGO_OIDC_TOKEN_URL").strip()
OIDC_OP_JWKS_ENDPOINT = env_str("KARGO_OIDC_JWKS_URL").strip()
OIDC_OP_USER_ENDPOINT = env_str("KARGO_OIDC_USERINFO_URL").strip()
# Seconds to wait for the provider (discovery, token, JWKS and userinfo requests).
OIDC_TIMEOUT = env_float("KARGO_OIDC_TIMEOUT", 10.0)
# The protocol, fixed: authorization code with PKCE (S256), state and nonce, RS256 ID tokens.
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_USE_PKCE = True
OIDC_USE_NONCE = True
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc-callback"
if OIDC_ENABLED:
    if not OIDC_ISSUER_URL.startswith(("https://", "http://")):
        raise ImproperlyConfigured(
            f"KARGO_OIDC_ISSUER_URL={OIDC_ISSUER_URL!r} is not an http(s) URL"
        )
    if not OIDC_RP_CLIENT_ID:
        raise ImproperlyConfigured("KARGO_OIDC_ISSUER_URL is set but KARGO_OIDC_CLIENT_ID is not")
    if "openid" not in OIDC_RP_SCOPES.split():
        raise ImproperlyConfigured(f"KARGO_OIDC_SCOPES={OIDC_RP_SCOPES!r} lacks the openid scope")
    if not OIDC_USERNAME_CLAIM:
        raise ImproperlyConfigured("KARGO_OIDC_USERNAME_CLAIM is empty")
    AUTHENTICATION_BACKENDS = [*AUTHENTICATION_BACKENDS, "projects.oidc.OIDCBackend"]

# ---------------------------------------------------------------- credentials store

# Fernet keys (urlsafe base64 of 32 bytes; `python -c "from cryptography.fernet import Fernet;
# print(Fernet.generate_key().decode())"`), comma-separated: the first encrypts, every one
# decrypts. To rotate: put a new key first, run `manage.py kargo rotate-credentials-key`, then drop
# the old one. Unset: one key derived from SECRET_KEY (projects.credentials), so the embedded mode
# needs no setup (and changing SECRET_KEY then makes stored credentials unreadable).
CREDENTIALS_KEYS = [k.strip() for k in env_str("KARGO_CREDENTIALS_KEYS").split(",") if k.strip()]
for _i, _key in enumerate(CREDENTIALS_KEYS):
    try:
        _raw = base64.urlsafe_b64decode(_key.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        _raw = b""
    if len(_raw) != 32:
        # The key itself is never quoted: it is a secret.
        raise ImproperlyConfigured(
            f"KARGO_CREDENTIALS_KEYS: key {_i + 1} is not a Fernet key (urlsafe base64 of 32 bytes)"
        )
# Kargo hands no credentials to plain http:// repositories unless the operator allows it
# (ALLOW_CREDENTIALS_OVER_HTTP); loopback addresses are always allowed here, since nothing
# leaves the machine.
CREDENTIALS_OVER_HTTP = env_bool("KARGO_ALLOW_CREDENTIALS_OVER_HTTP", False)
