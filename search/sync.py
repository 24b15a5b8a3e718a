"""Index sync: the search index follows the tutor profiles (DESIGN rule 3).

- After a commit that may change what search shows of a tutor (approval, suspension, reinstatement,
  a non-material edit that goes live at once, a review that moves the rating, a ban), the core calls
  ``marketplace.ports.search_indexer().schedule(session, profile_id)``; this module is that indexer
  and enqueues ``search_index_profile`` after the commit.
- ``index_profile`` is idempotent: it reads the profile as it is now and indexes it when it is
  visible (approved, live, tutor not banned) or deletes it otherwise, however often it runs.
- ``reindex_all`` rebuilds the whole index (``marketplace search reindex``; ``marketplace demo``).
- ``reconcile`` repairs what the jobs missed (a lost message, a crash between commit and enqueue):
  missing and stale documents are indexed again, orphans removed. Run ``search_reconcile``
  periodically from a scheduler, e.g. cron (``marketplace search reconcile``) or a Dramatiq
  periodic middleware such as APScheduler/periodiq sending ``search_reconcile.send()``.

The backend is chosen from the settings: Meilisearch when MEILI_URL is set, otherwise the embedded
SQL backend.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace import jobs
from marketplace.accounts.models import User
from marketplace.db import after_commit, transaction
from marketplace.ports import register_search_indexer
from marketplace.settings import ConfigurationError, get_settings
from marketplace.tutors.models import ProfileStatus, TaxonomyKind, TaxonomyTerm, TutorProfile
from search.backend import SearchBackend
from search.documents import SearchDocument, TermName, document_from_profile
from search.sql import DOCS, SqlSearchBackend

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (done, total)
RECHECKS = 3  # index_profile re-reads after writing; a concurrent change makes it index again


# ---- backend -------------------------------------------------------------------------------


def search_backend() -> SearchBackend:
    """The configured backend: Meilisearch when MEILI_URL is set, else the SQL backend."""
    settings = get_settings()
    if not settings.meili_url:
        return SqlSearchBackend()
    try:
        from search.meili import MeiliSearchBackend  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise ConfigurationError(
            "MEILI_URL is set but the Meilisearch backend (search.meili) cannot be imported: "
            f"{exc}. Unset MEILI_URL to use the embedded SQL search."
        ) from exc
    return MeiliSearchBackend(url=settings.meili_url, api_key=settings.meili_key or None)


@asynccontextmanager
async def open_backend(backend: SearchBackend | None = None) -> AsyncIterator[SearchBackend]:
    """The given backend, or the configured one (closed afterwards when it holds connections)."""
    if backend is not None:
        yield backend
        return
    instance = search_backend()
    try:
        yield instance
    finally:
        aclose = getattr(instance, "aclose", None)
        if aclose is not None:
            await aclose()


@runtime_checkable
class ListableBackend(Protocol):
    async def indexed_state(self) -> dict[uuid.UUID, datetime | None]:
        """Every indexed profile id with the time it was indexed (None when the engine does not keep it)."""
        ...


async def _indexed_state(backend: SearchBackend) -> dict[uuid.UUID, datetime | None] | None:
    """What the index holds, or None when the backend cannot list its documents."""
    if isinstance(backend, SqlSearchBackend):
        async with transaction(write=False) as session:
            rows = await session.execute(select(DOCS.c.profile_id, DOCS.c.indexed_at))
            return {profile_id: indexed_at for profile_id, indexed_at in rows}
    if isinstance(backend, ListableBackend):
        return await backend.indexed_state()
    return None


# ---- reading profiles ----------------------------------------------------------------------


def _visible() -> Any:
    """Profiles that search shows: approved, with a live version, the tutor not banned (join User)."""
    return and_(
        TutorProfile.status == ProfileStatus.approved,
        TutorProfile.live.is_not(None),
        User.banned_at.is_(None),
    )


def _visible_profiles() -> Any:
    return select(TutorProfile).join(User, User.id == TutorProfile.user_id).where(_visible())


async def _term_namer(session: AsyncSession, slugs: Iterable[tuple[str, str]] | None = None) -> TermName:
    """Display names of instruments and genres in every locale, so that "Klavier" finds a piano tutor."""
    statement = select(TaxonomyTerm.kind, TaxonomyTerm.slug, TaxonomyTerm.names).where(
        TaxonomyTerm.kind.in_((TaxonomyKind.instrument, TaxonomyKind.genre))
    )
    if slugs is not None:
        wanted = {slug for _kind, slug in slugs}
        if not wanted:
            return lambda _kind, slug: slug
        statement = statement.where(TaxonomyTerm.slug.in_(wanted))
    names: dict[tuple[str, str], str] = {}
    for kind, slug, locale_names in await session.execute(statement):
        unique = dict.fromkeys(str(n) for n in (locale_names or {}).values() if n)
        names[(str(kind), slug)] = " ".join(unique) or slug
    return lambda kind, slug: names.get((kind, slug), slug)


def _term_slugs(live: dict[str, Any]) -> list[tuple[str, str]]:
    instruments = [
        ("instrument", str(i["slug"])) for i in live.get("instruments") or [] if isinstance(i, dict) and i.get("slug")
    ]
    return instruments + [("genre", str(g)) for g in live.get("genres") or [] if g]


def _document(profile: TutorProfile, term_name: TermName) -> SearchDocument:
    return document_from_profile(
        profile.id,
        profile.user_id,
        profile.slug,
        profile.live or {},
        profile.rating_count,
        profile.rating_sum,
        profile.lessons_taught,
        profile.approved_at,
        term_name=term_name,
    )


async def profile_document(*, profile_id: uuid.UUID) -> SearchDocument | None:
    """The profile's search document as of now, or None when search must not show it."""
    async with transaction(write=False) as session:
        profile = (await session.execute(_visible_profiles().where(TutorProfile.id == profile_id))).scalar_one_or_none()
        if profile is None:
            return None
        term_name = await _term_namer(session, _term_slugs(profile.live or {}))
        return _document(profile, term_name)


async def _documents(ids: Sequence[uuid.UUID]) -> list[SearchDocument]:
    """Documents of those of ``ids`` that are visible now (one transaction)."""
    if not ids:
        return []
    async with transaction(write=False) as session:
        profiles = (await session.execute(_visible_profiles().where(TutorProfile.id.in_(ids)))).scalars().all()
        term_name = await _term_namer(session, [s for p in profiles for s in _term_slugs(p.live or {})])
        return [_document(p, term_name) for p in profiles]


async def _visible_ids(ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    if not ids:
        return set()
    async with transaction(write=False) as session:
        rows = await session.execute(
            select(TutorProfile.id)
            .join(User, User.id == TutorProfile.user_id)
            .where(_visible(), TutorProfile.id.in_(ids))
        )
        return set(rows.scalars())


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---- one profile ---------------------------------------------------------------------------


async def index_profile(*, profile_id: uuid.UUID, backend: SearchBackend | None = None) -> str:
    """Make the index agree with the profile as it is now: ``"indexed"`` or ``"deleted"``.

    Idempotent. Two jobs for one profile may overlap; after writing, the profile is read again and,
    if it changed meanwhile, written again, so the last write always reflects the last commit.
    """
    async with open_backend(backend) as engine:
        doc = await profile_document(profile_id=profile_id)
        for _ in range(RECHECKS):
            if doc is None:
                await engine.delete([profile_id])
            else:
                await engine.index([doc])
            now = await profile_document(profile_id=profile_id)
            if now == doc:
                break
            doc = now
        else:
            log.warning("search: profile %s kept changing while it was indexed; reconcile will catch up", profile_id)
        return "deleted" if doc is None else "indexed"


@jobs.actor(queue_name="search", max_retries=10, min_backoff=1_000, max_backoff=600_000)
async def search_index_profile(profile_id: str) -> None:
    await index_profile(profile_id=uuid.UUID(profile_id))


def schedule_index(session: AsyncSession, profile_id: uuid.UUID) -> None:
    """Index (or remove) the profile once the session's transaction commits."""
    message = str(profile_id)

    def send() -> None:
        try:
            search_index_profile.send(message)
        except Exception:  # the commit stands; the reconcile job repairs the index later
            log.exception("search: could not enqueue indexing of profile %s", message)

    after_commit(session, send)


class _Indexer:
    def schedule(self, session: AsyncSession, profile_id: uuid.UUID) -> None:
        schedule_index(session, profile_id)


register_search_indexer(_Indexer())


# ---- everything ----------------------------------------------------------------------------


async def _delete_unless_visible(engine: SearchBackend, ids: Iterable[uuid.UUID], batch: int) -> int:
    """Delete those of ``ids`` that are not visible now (a profile approved meanwhile stays)."""
    deleted = 0
    for part in _chunks(list(ids), batch):
        visible = await _visible_ids(part)
        gone = [i for i in part if i not in visible]
        await engine.delete(gone)
        deleted += len(gone)
    return deleted


async def reindex_all(
    *, batch: int = 1000, progress: Progress | None = None, backend: SearchBackend | None = None
) -> int:
    """Index every visible profile (keyset pages by id) and delete the documents of every other;
    returns how many documents were indexed. ``progress(done, total)`` follows the pages."""
    batch = max(1, batch)
    async with open_backend(backend) as engine:
        async with transaction(write=False) as session:
            total = (
                await session.execute(
                    select(func.count(TutorProfile.id)).join(User, User.id == TutorProfile.user_id).where(_visible())
                )
            ).scalar_one()
            term_name = await _term_namer(session)
        if progress is not None:
            progress(0, total)
        seen: set[uuid.UUID] = set()
        last: uuid.UUID | None = None
        while True:
            statement = _visible_profiles().order_by(TutorProfile.id).limit(batch)
            if last is not None:
                statement = statement.where(TutorProfile.id > last)
            async with transaction(write=False) as session:
                profiles = (await session.execute(statement)).scalars().all()
                docs = [_document(p, term_name) for p in profiles]
            if not docs:
                break
            await engine.index(docs)
            seen.update(d.profile_id for d in docs)
            last = profiles[-1].id
            if progress is not None:
                progress(len(seen), max(total, len(seen)))
        await _delete_unless_visible(engine, await _stale_candidates(engine, seen), batch)
        return len(seen)


async def _stale_candidates(engine: SearchBackend, seen: set[uuid.UUID]) -> set[uuid.UUID]:
    """Ids that may be in the index but were not indexed: the index's own list when the backend can
    list it, else every profile that is not visible."""
    indexed = await _indexed_state(engine)
    if indexed is not None:
        return set(indexed) - seen
    async with transaction(write=False) as session:
        rows = await session.execute(select(TutorProfile.id))
        return set(rows.scalars()) - seen


async def reconcile(*, batch: int = 1000, backend: SearchBackend | None = None) -> dict[str, int]:
    """Repair the index: index missing and stale profiles (updated after they were indexed) and
    delete orphans. A backend that cannot list its documents is rebuilt with ``reindex_all``."""
    batch = max(1, batch)
    async with open_backend(backend) as engine:
        indexed = await _indexed_state(engine)
        if indexed is None:
            count = await reindex_all(batch=batch, backend=engine)
            return {"visible": count, "missing": 0, "stale": 0, "extra": 0, "indexed": count, "deleted": 0}
        async with transaction(write=False) as session:
            rows = await session.execute(
                select(TutorProfile.id, TutorProfile.updated_at)
                .join(User, User.id == TutorProfile.user_id)
                .where(_visible())
            )
            visible = dict(rows.tuples().all())
        missing = [i for i in visible if i not in indexed]
        stale = [
            i for i, updated in visible.items() if i in indexed and indexed[i] is not None and updated > indexed[i]
        ]
        extra = [i for i in indexed if i not in visible]
        reindexed = 0
        for part in _chunks(missing + stale, batch):
            docs = await _documents(part)
            await engine.index(docs)
            reindexed += len(docs)
            # a profile hidden since the scan above is removed below with the orphans
            extra += [i for i in part if i not in {d.profile_id for d in docs} and i in indexed]
        deleted = await _delete_unless_visible(engine, extra, batch)
    result = {
        "visible": len(visible),
        "missing": len(missing),
        "stale": len(stale),
        "extra": len(extra),
        "indexed": reindexed,
        "deleted": deleted,
    }
    if missing or stale or extra:
        log.info("search reconcile repaired the index: %s", result)
    return result


@jobs.actor(queue_name="search", max_retries=3, time_limit=3_600_000)
async def search_reconcile() -> None:
    """Periodic repair. No scheduler is bundled: cron runs ``marketplace search reconcile``, or a
    periodic middleware (APScheduler, periodiq) sends ``search_reconcile.send()`` every few minutes."""
    await reconcile()
