"""Run Alembic migrations from code (CLI, dev server start-up, tests)."""

from __future__ import annotations

import asyncio

from alembic.config import Config

from alembic import command
from marketplace.settings import ROOT, get_settings


def alembic_config(database_url: str | None = None) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    cfg.set_main_option("sqlalchemy.url", (database_url or get_settings().database_url).replace("%", "%%"))
    return cfg


def upgrade_head_sync(database_url: str | None = None) -> None:
    command.upgrade(alembic_config(database_url), "head")


async def upgrade_head(database_url: str | None = None) -> None:
    # Alembic's env.py runs its own event loop for the async engine: give it a thread.
    await asyncio.to_thread(upgrade_head_sync, database_url)
