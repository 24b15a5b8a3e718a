"""Search tests: the contract runs against the SQL backend always, and against Meilisearch
whenever MEILI_URL is set (there is no Meilisearch server on this machine kind)."""

from __future__ import annotations

import os

import pytest

from search.backend import SearchBackend

BACKENDS = ["sql", *(["meilisearch"] if os.environ.get("MEILI_URL") else [])]


@pytest.fixture(params=BACKENDS)
async def backend(request) -> SearchBackend:
    """Every configured backend, each behind the same contract."""
    if request.param == "sql":
        from search.sql import SqlSearchBackend

        return SqlSearchBackend()
    # MEILI_URL is set: the Meilisearch backend must exist and answer (a failure, never a skip).
    from search.meili import MeiliSearchBackend
    from tests.search.corpus import RATES

    instance = MeiliSearchBackend(url=os.environ["MEILI_URL"], index_name=f"test-{os.getpid()}", rates=RATES)
    await instance.clear()
    return instance
