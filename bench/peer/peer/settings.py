"""The peer Portcullis is measured against (`scripts/bench --peer`, docs/benchmarks.md).

Django 5.2 + django-allauth (its headless JSON API, the "app" client: one POST per sign-in,
like Portcullis's `POST /api/v1/sessions`) + argon2-cffi at Portcullis's production
parameters (argon2id m = 19,456 KiB, t = 2, p = 1), on SQLite, under gunicorn. Loopback
only; the database file is named by PEER_DB (the bench gives each run a fresh folder).
"""
import os

from django.contrib.auth.hashers import Argon2PasswordHasher

BASE = os.environ.get("PEER_DB", "/tmp/peer.sqlite3")
SECRET_KEY = os.environ.get("PEER_SECRET_KEY", "bench-only-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "allauth",
    "allauth.account",
    "allauth.headless",
    "peer",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]
ROOT_URLCONF = "peer.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE,
        # WAL and a busy timeout, as Portcullis's own SQLite settings: two workers write.
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}
AUTHENTICATION_BACKENDS = ["allauth.account.auth_backends.AuthenticationBackend"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True


class PortcullisArgon2(Argon2PasswordHasher):
    """argon2-cffi at the parameters Portcullis uses (OWASP's: m = 19 MiB, t = 2, p = 1)."""

    time_cost = 2
    memory_cost = 19_456
    parallelism = 1


PASSWORD_HASHERS = ["peer.settings.PortcullisArgon2"]

ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "password1*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
# Portcullis runs the bench with its per-address limits off and its lockout on; so does
# the peer: no per-address login limit, allauth's failed-login limit kept.
ACCOUNT_RATE_LIMITS = {"login": None}
HEADLESS_ONLY = True
HEADLESS_CLIENTS = ("app",)
HEADLESS_FRONTEND_URLS = {}
LOGGING = {"version": 1, "disable_existing_loggers": False}
