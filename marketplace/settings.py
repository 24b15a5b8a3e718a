"""Typed settings read from the environment, with embedded defaults.

Settings come only from :func:`get_settings`; tests set the environment and call
``get_settings.cache_clear()`` before building the app.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUPPORTED_LOCALES = ("en", "de")


class ConfigurationError(RuntimeError):
    """The environment does not describe a runnable application."""


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name)
    if not raw:
        return default
    return raw.lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    raw = _env(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from exc


def _dev_secret(var_dir: Path) -> str:
    """A development secret, generated once and kept under var/."""
    var_dir.mkdir(parents=True, exist_ok=True)
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


@dataclass(frozen=True)
class Settings:
    mode: str
    var_dir: Path
    database_url: str
    broker_url: str
    redis_url: str
    secret_key: str
    secure_cookies: bool
    smtp_url: str
    mail_from: str
    base_url: str
    default_locale: str
    default_timezone: str
    meili_url: str
    meili_key: str
    stripe_secret_key: str
    stripe_publishable_key: str
    stripe_webhook_secret: str
    stripe_connect_webhook_secret: str
    livekit_url: str
    livekit_api_key: str
    livekit_api_secret: str
    session_max_age: int
    login_max_failures_account: int
    login_max_failures_address: int
    login_window_seconds: int
    migrate_on_start: bool
    log_level: str
    supported_locales: tuple[str, ...] = field(default=SUPPORTED_LOCALES)
    # Lessons (LiveKit): attendance share of the slot that counts as present, recordings to S3.
    lesson_attendance_percent: int = 50  # LESSON_ATTENDANCE_PERCENT
    recording_s3_bucket: str = ""  # RECORDING_S3_BUCKET (empty: recording is not offered)
    recording_s3_region: str = ""  # RECORDING_S3_REGION
    recording_s3_endpoint: str = ""  # RECORDING_S3_ENDPOINT (S3-compatible storage; empty: AWS)
    recording_s3_access_key: str = ""  # RECORDING_S3_ACCESS_KEY
    recording_s3_secret: str = ""  # RECORDING_S3_SECRET
    recording_retention_days: int = 30  # RECORDING_RETENTION_DAYS
    platform_fee_percent: float = 15.0  # PLATFORM_FEE_PERCENT: the platform's share of each lesson price
    review_window_hours: int = 48  # PAYOUT_REVIEW_WINDOW_HOURS: disputes after a lesson; then the tutor is paid

    @property
    def production(self) -> bool:
        return self.mode == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings() -> Settings:
    mode = _env("MODE", "development").lower()
    if mode not in {"development", "production", "test"}:
        raise ConfigurationError(f"MODE must be development, production or test, got {mode!r}")
    var_dir = Path(_env("VAR_DIR", str(ROOT / "var"))).resolve()
    secret = _env("SECRET_KEY")
    secure_cookies = _env_bool("SECURE_COOKIES", mode == "production")
    if mode == "production":
        if not secret:
            raise ConfigurationError("MODE=production needs SECRET_KEY (at least 32 characters)")
        if len(secret) < 32:
            raise ConfigurationError("SECRET_KEY must be at least 32 characters long")
        if not secure_cookies:
            raise ConfigurationError("MODE=production needs SECURE_COOKIES=true (cookies over HTTPS only)")
    elif not secret:
        secret = _dev_secret(var_dir)
    default_locale = _env("DEFAULT_LOCALE", "en")
    if default_locale not in SUPPORTED_LOCALES:
        raise ConfigurationError(f"DEFAULT_LOCALE must be one of {', '.join(SUPPORTED_LOCALES)}")
    database_url = _env("DATABASE_URL") or f"sqlite+aiosqlite:///{var_dir / 'cadenza.db'}"
    if database_url.startswith("postgresql://") or database_url.startswith("postgres://"):
        database_url = "postgresql+asyncpg://" + database_url.split("://", 1)[1]
    broker_url = _env("BROKER_URL", "stub://")
    if not broker_url.startswith(("stub:", "redis:", "rediss:", "amqp:", "amqps:")):
        raise ConfigurationError("BROKER_URL must start with stub://, redis:// or amqp://")
    return Settings(
        mode=mode,
        var_dir=var_dir,
        database_url=database_url,
        broker_url=broker_url,
        redis_url=_env("REDIS_URL"),
        secret_key=secret,
        secure_cookies=secure_cookies,
        smtp_url=_env("SMTP_URL"),
        mail_from=_env("MAIL_FROM", "Cadenza <no-reply@cadenza.localhost>"),
        base_url=_env("BASE_URL", "http://127.0.0.1:8000").rstrip("/"),
        default_locale=default_locale,
        default_timezone=_env("DEFAULT_TIMEZONE", "UTC"),
        meili_url=_env("MEILI_URL"),
        meili_key=_env("MEILI_KEY"),
        stripe_secret_key=_env("STRIPE_SECRET_KEY"),
        stripe_publishable_key=_env("STRIPE_PUBLISHABLE_KEY"),
        stripe_webhook_secret=_env("STRIPE_WEBHOOK_SECRET"),
        stripe_connect_webhook_secret=_env("STRIPE_CONNECT_WEBHOOK_SECRET"),
        livekit_url=_env("LIVEKIT_URL"),
        livekit_api_key=_env("LIVEKIT_API_KEY"),
        livekit_api_secret=_env("LIVEKIT_API_SECRET"),
        session_max_age=_env_int("SESSION_MAX_AGE", 14 * 24 * 3600),
        login_max_failures_account=_env_int("LOGIN_MAX_FAILURES_ACCOUNT", 5),
        login_max_failures_address=_env_int("LOGIN_MAX_FAILURES_ADDRESS", 20),
        login_window_seconds=_env_int("LOGIN_WINDOW_SECONDS", 15 * 60),
        migrate_on_start=_env_bool("MIGRATE_ON_START", mode != "production"),
        log_level=_env("LOG_LEVEL", "INFO").upper(),
        lesson_attendance_percent=_env_int("LESSON_ATTENDANCE_PERCENT", 50),
        recording_s3_bucket=_env("RECORDING_S3_BUCKET"),
        recording_s3_region=_env("RECORDING_S3_REGION"),
        recording_s3_endpoint=_env("RECORDING_S3_ENDPOINT"),
        recording_s3_access_key=_env("RECORDING_S3_ACCESS_KEY"),
        recording_s3_secret=_env("RECORDING_S3_SECRET"),
        recording_retention_days=_env_int("RECORDING_RETENTION_DAYS", 30),
        platform_fee_percent=_env_fee_percent(),
        review_window_hours=max(0, _env_int("PAYOUT_REVIEW_WINDOW_HOURS", 48)),
    )


def _env_fee_percent() -> float:
    raw = _env("PLATFORM_FEE_PERCENT", "15")
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"PLATFORM_FEE_PERCENT must be a number, got {raw!r}") from exc
    if not 0 <= value < 100:
        raise ConfigurationError("PLATFORM_FEE_PERCENT must be at least 0 and below 100")
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
