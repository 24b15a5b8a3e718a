"""Index sync: the search index follows the tutor profiles (DESIGN rule 3).

- After a commit that may change what search shows of a tutor (approval, suspension, reinstatement,
  a non-material edit that goes live at once, a review that moves the rating, a ban), the core calls
  ``marketplace.ports.search_indexer().schedule(session, profile_id)``; this module is that indexer
  and enqueues ``search_index_profile`` after the commit.
- ``index_profile`` is idempotent: it reads the profile as it is now and indexes it when it is
  visible (approved, live, tutor not banned) or deletes it otherwise, however often it runs.
- ``reindex_all`` rebuilds the whole index (``marketplace search reindex``; ``marketplace demo``).
- ``reconcile`` repairs what the jobs missed (a lost message, a crash between commit and enqueue):
  missing and stale documents are indexed again, orphans removed. The periodic clock
  (``marketplace.periodic``: in the web process with in-process jobs, else ``marketplace clock``)
  sends ``search_reconcile`` every 15 minutes; ``marketplace search reconcile`` runs it at once.

The backend is chosen from the settings (``search.backend.search_backend``): Meilisearch when MEILI_URL
is set, otherwise the embedded SQL backend.

Documents carry the tutor's weekly availability as UTC hour buckets (``search.availability``), loaded
in bulk for every batch. What changes them is scheduled here too: an availability save
(``search_indexer().schedule(session, profile_id)`` or ``schedule_tutor_index(session, tutor_id)``),
an exchange-rate change (``schedule_rates_changed``: Meilisearch re-indexes its precomputed EUR
prices), and the daily ``search_refresh_availability`` for zones whose UTC offset is changing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any, Protocol, runtime_checkable

import msgspec
from sqlalchemy import Text, and_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace import jobs
from marketplace.accounts.models import User
from marketplace.db import after_commit, transaction, utcnow
from marketplace.periodic import every
from marketplace.ports import register_search_indexer
from marketplace.tutors.models import ProfileStatus, TaxonomyKind, TaxonomyTerm, TutorProfile
from search.availability import availability_buckets, availability_changed_at, tutors_in_zones, zones_changing
from search.backend import SearchBackend, search_backend
from search.documents import SearchDocument, TermName, document_from_profile
from search.rates import current_rates
from search.sql import SqlSearchBackend

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (done, total)
RECHECKS = 3  # index_profile re-reads after writing; a concurrent change makes it index again


# ---- backend ------------------------------------------------------------------------------


@asynccontextmanager
async def open_backend(backend: SearchBackend | None = None) -> AsyncIterator[SearchBackend]:
    """The given backend, or a new configured one with the current exchange rates (closed afterwards
    when it holds connections)."""
    if backend is not None:
        yield backend
        return
    instance = search_backend(rates=await current_rates(), shared=False)
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


# What a document needs of a profile (Core columns: no ORM objects, no draft JSON, for bulk reads).
_DOCUMENT_COLUMNS = (
    TutorProfile.id,
    TutorProfile.user_id,
    TutorProfile.slug,
    type_coerce(TutorProfile.live, Text).label("live"),  # decoded by msgspec (``_live``): faster than json
    TutorProfile.rating_count,
    TutorProfile.rating_sum,
    TutorProfile.lessons_taught,
    TutorProfile.approved_at,
)


def _visible_rows() -> Any:
    return select(*_DOCUMENT_COLUMNS).join(User, User.id == TutorProfile.user_id).where(_visible())


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


def _live(value: Any) -> dict[str, Any]:
    """A profile's ``live`` JSON, whether it came back decoded (ORM) or as text (``_visible_rows``)."""
    if isinstance(value, str | bytes):
        decoded = msgspec.json.decode(value)
        return decoded if isinstance(decoded, dict) else {}
    return value or {}


def _document(profile: Any, term_name: TermName, buckets: dict[uuid.UUID, tuple[int, ...]]) -> SearchDocument:
    return document_from_profile(
        profile.id,
        profile.user_id,
        profile.slug,
        _live(profile.live),
        profile.rating_count,
        profile.rating_sum,
        profile.lessons_taught,
        profile.approved_at,
        term_name=term_name,
        availability=buckets.get(profile.user_id, ()),
    )


async def profile_document(*, profile_id: uuid.UUID) -> SearchDocument | None:
    """The profile's search document as of now, or None when search must not show it."""
    async with transaction(write=False) as session:
        profile = (await session.execute(_visible_profiles().where(TutorProfile.id == profile_id))).scalar_one_or_none()
        if profile is None:
            return None
        term_name = await _term_namer(session, _term_slugs(profile.live or {}))
        return _document(profile, term_name, await availability_buckets(session, [profile.user_id]))


async def _documents(ids: Sequence[uuid.UUID]) -> list[SearchDocument]:
    """Documents of those of ``ids`` that are visible now (one transaction)."""
    if not ids:
        return []
    async with transaction(write=False) as session:
        profiles = (await session.execute(_visible_rows().where(TutorProfile.id.in_(ids)))).all()
        term_name = await _term_namer(session, [s for p in profiles for s in _term_slugs(_live(p.live))])
        buckets = await availability_buckets(session, [p.user_id for p in profiles])
        return [_document(p, term_name, buckets) for p in profiles]


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
    """Index every visible profile and delete the documents of every other; returns how many
    documents were indexed. ``progress(done, total)`` follows the pages.

    The SQL backend reads every profile in one scan, builds every document, then writes in one
    transaction only the documents whose content changed (``SqlSearchBackend.replace_all``); other
    engines get pages of ``batch`` documents, each write overlapping the next read."""
    batch = max(1, batch)
    async with open_backend(backend) as engine:
        async with transaction(write=False) as session:
            # The ids first, sorted here: paging by id in SQL made SQLite sort every visible profile
            # for every page (its planner prefers the status index).
            ids = sorted(
                (
                    await session.execute(
                        select(TutorProfile.id).join(User, User.id == TutorProfile.user_id).where(_visible())
                    )
                ).scalars()
            )
            term_name = await _term_namer(session)
        total = len(ids)
        if progress is not None:
            progress(0, total)
        seen: set[uuid.UUID] = set()
        if isinstance(engine, SqlSearchBackend):
            # Every document first (one scan of the profiles, one of the availability), then one
            # transaction that rewrites only what changed.
            read_at = utcnow()
            async with transaction(write=False) as session:
                profiles = (await session.execute(_visible_rows())).all()
                buckets = await availability_buckets(session, [p.user_id for p in profiles])
            docs: list[SearchDocument] = []
            for part in _chunks(profiles, batch):
                docs += [_document(p, term_name, buckets) for p in part]
                if progress is not None and len(docs) < total:  # the last step comes after the write
                    progress(len(docs), total)
            await engine.replace_all(docs, read_at=read_at)
            seen.update(d.profile_id for d in docs)
        else:
            await _index_in_batches(engine, ids, batch, term_name, seen, progress, total)
        if progress is not None:
            progress(len(seen), max(total, len(seen)))
        await _delete_unless_visible(engine, await _stale_candidates(engine, seen), batch)
        return len(seen)


async def _read_documents(part: Sequence[uuid.UUID], term_name: TermName) -> list[SearchDocument]:
    async with transaction(write=False) as session:
        profiles = (await session.execute(_visible_rows().where(TutorProfile.id.in_(part)))).all()
        buckets = await availability_buckets(session, [p.user_id for p in profiles])
    return [_document(p, term_name, buckets) for p in profiles]


async def _index_in_batches(
    engine: SearchBackend,
    ids: Sequence[uuid.UUID],
    batch: int,
    term_name: TermName,
    seen: set[uuid.UUID],
    progress: Progress | None,
    total: int,
) -> None:
    """Engines with their own write queue (Meilisearch): batch after batch, each write
    overlapping the next read."""
    writing: asyncio.Task[None] | None = None
    try:
        for part in _chunks(ids, batch):
            docs = await _read_documents(part, term_name)
            if writing is not None:
                await writing
                writing = None
                if progress is not None:
                    progress(len(seen), max(total, len(seen)))
            if docs:
                writing = asyncio.create_task(engine.index(docs))
            seen.update(d.profile_id for d in docs)
        if writing is not None:
            await writing
            writing = None
    finally:
        if writing is not None:  # an error while reading: do not leave the write behind
            writing.cancel()
            with contextlib.suppress(BaseException):
                await writing


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
                select(TutorProfile.id, TutorProfile.user_id, TutorProfile.updated_at)
                .join(User, User.id == TutorProfile.user_id)
                .where(_visible())
            )
            changed = await availability_changed_at(session)
            # A document is stale when its profile or the tutor's availability changed after indexing.
            visible = {
                pid: max(updated, changed.get(user_id, updated)) for pid, user_id, updated in rows.tuples().all()
            }
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


RECONCILE_SECONDS = 15 * 60


@every(RECONCILE_SECONDS)
@jobs.actor(queue_name="search", max_retries=3, time_limit=3_600_000)
async def search_reconcile() -> None:
    """Periodic repair, sent by the periodic clock (and run at once by ``marketplace search reconcile``)."""
    await reconcile()


# ---- availability and exchange rates -------------------------------------------------------


def schedule_tutor_index(session: AsyncSession, tutor_id: uuid.UUID) -> None:
    """Re-index the tutor's profile (by the tutor's user id) once the session's transaction commits:
    for editors that know the tutor, not the profile (the availability editor)."""
    message = str(tutor_id)

    def send() -> None:
        try:
            search_index_tutor.send(message)
        except Exception:  # the commit stands; the reconcile job repairs the index later
            log.exception("search: could not enqueue indexing of tutor %s", message)

    after_commit(session, send)


@jobs.actor(queue_name="search", max_retries=10, min_backoff=1_000, max_backoff=600_000)
async def search_index_tutor(tutor_id: str) -> None:
    async with transaction(write=False) as session:
        profile_id = (
            await session.execute(select(TutorProfile.id).where(TutorProfile.user_id == uuid.UUID(tutor_id)))
        ).scalar_one_or_none()
    if profile_id is not None:
        await index_profile(profile_id=profile_id)


async def reindex_profiles(
    profile_ids: Sequence[uuid.UUID], *, batch: int = 1000, backend: SearchBackend | None = None
) -> int:
    """Index (or delete) these profiles as they are now; returns how many were indexed."""
    indexed = 0
    async with open_backend(backend) as engine:
        for part in _chunks(list(dict.fromkeys(profile_ids)), max(1, batch)):
            docs = await _documents(part)
            await engine.index(docs)
            indexed += len(docs)
            await _delete_unless_visible(engine, [i for i in part if i not in {d.profile_id for d in docs}], batch)
    return indexed


async def refresh_availability(*, today: date | None = None, backend: SearchBackend | None = None) -> int:
    """Re-index the tutors whose zone's UTC offset changes near the edges of the bucket period (their
    buckets move with the change); idempotent. Returns how many documents were indexed."""
    today = today or datetime.now(UTC).date()
    async with transaction(write=False) as session:
        by_zone = await tutors_in_zones(session)
        zones = zones_changing(by_zone, today=today)
        users = [user_id for zone in zones for user_id in by_zone[zone]]
        profile_ids: list[uuid.UUID] = []
        for part in _chunks(users, 1000):
            rows = await session.execute(select(TutorProfile.id).where(TutorProfile.user_id.in_(part)))
            profile_ids += list(rows.scalars())
    if not profile_ids:
        return 0
    log.info("search: refreshing availability of %d tutors in %s", len(profile_ids), ", ".join(sorted(zones)))
    return await reindex_profiles(profile_ids, backend=backend)


@every(24 * 3600)
@jobs.actor(queue_name="search", max_retries=3, time_limit=3_600_000)
async def search_refresh_availability() -> None:
    await refresh_availability()


def schedule_rates_changed(session: AsyncSession) -> None:
    """After an exchange-rate change commits: bring the index's precomputed prices up to date."""

    def send() -> None:
        try:
            search_rates_changed.send()
        except Exception:
            log.exception("search: could not enqueue the re-index after a rate change")

    after_commit(session, send)


async def rates_changed(*, backend: SearchBackend | None = None) -> int:
    """The SQL backend applies the rates at query time: nothing to do. Other backends (Meilisearch)
    keep a price in EUR for sorting, computed at index time: re-index everything with the new rates.
    Returns how many documents were re-indexed."""
    async with open_backend(backend) as engine:
        if isinstance(engine, SqlSearchBackend):
            return 0
        setter = getattr(engine, "set_rates", None)
        if setter is not None:
            setter(await current_rates())
        return await reindex_all(backend=engine)


@jobs.actor(queue_name="search", max_retries=5, time_limit=3_600_000)
async def search_rates_changed() -> None:
    await rates_changed()
