import pytest

from marketplace.settings import ConfigurationError, load_settings


def test_production_refuses_to_start_without_a_secret_key(monkeypatch):
    monkeypatch.setenv("MODE", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("SECURE_COOKIES", "true")
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        load_settings()


def test_production_refuses_a_short_secret_and_insecure_cookies(monkeypatch):
    monkeypatch.setenv("MODE", "production")
    monkeypatch.setenv("SECRET_KEY", "too-short")
    monkeypatch.setenv("SECURE_COOKIES", "true")
    with pytest.raises(ConfigurationError, match="32 characters"):
        load_settings()
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    monkeypatch.setenv("SECURE_COOKIES", "false")
    with pytest.raises(ConfigurationError, match="SECURE_COOKIES"):
        load_settings()
    monkeypatch.setenv("SECURE_COOKIES", "true")
    settings = load_settings()
    assert settings.production and settings.secure_cookies and not settings.migrate_on_start


def test_development_generates_a_secret_once_and_keeps_it_under_var(monkeypatch, tmp_path):
    monkeypatch.setenv("MODE", "development")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    first = load_settings().secret_key
    assert len(first) >= 32
    assert (tmp_path / "secret_key").read_text() == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert load_settings().secret_key == first


def test_defaults_are_the_embedded_backends(monkeypatch, tmp_path):
    for name in (
        "DATABASE_URL",
        "BROKER_URL",
        "REDIS_URL",
        "SMTP_URL",
        "MEILI_URL",
        "STRIPE_SECRET_KEY",
        "LIVEKIT_URL",
        "DEFAULT_LOCALE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODE", "development")
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'cadenza.db'}"
    assert settings.broker_url == "stub://"
    assert settings.redis_url == "" and settings.smtp_url == "" and settings.meili_url == ""
    assert settings.default_locale == "en"


def test_bad_values_are_configuration_errors(monkeypatch):
    monkeypatch.setenv("DEFAULT_LOCALE", "fr")
    with pytest.raises(ConfigurationError, match="DEFAULT_LOCALE"):
        load_settings()
    monkeypatch.setenv("DEFAULT_LOCALE", "en")
    monkeypatch.setenv("BROKER_URL", "kafka://x")
    with pytest.raises(ConfigurationError, match="BROKER_URL"):
        load_settings()
    monkeypatch.setenv("BROKER_URL", "stub://")
    monkeypatch.setenv("SESSION_MAX_AGE", "soon")
    with pytest.raises(ConfigurationError, match="SESSION_MAX_AGE"):
        load_settings()


def test_plain_postgres_urls_get_the_async_driver(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u@db/cadenza")
    assert load_settings().database_url == "postgresql+asyncpg://u@db/cadenza"
