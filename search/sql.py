"""The embedded search backend: search in the application's own database.

Full text comes from the database's engine: FTS5 on SQLite (the ``search_fts`` table, kept in step
by triggers), on PostgreSQL a ``search_fts`` table of stored ``to_tsvector`` values (``simple``
configuration, GIN-indexed, kept in step by a trigger); both over text that was folded in Python,
and the query folded the same way, so "muller" finds "Müller". Each query word matches as a prefix.
On PostgreSQL the snapshot also holds those stored lexemes inverted (``snapshot.Lexicon``, loaded
and kept current with the rest of the snapshot): a plain word is matched there, because the GIN
bitmap scan for a word most tutors use reads nearly the whole table (40 ms at 100,000 tutors);
any other word is still asked of PostgreSQL. The names' words, folded as the query's are, are
inverted there too, for the name tier of relevance ("muller" finds Müller's name, as FTS5's name
column does on SQLite).

Everything else (facet filters, disjunctive facet counts, price, geography, availability, sorting)
runs on an in-memory columnar snapshot of ``search_documents`` (``search.snapshot``), kept exact
across processes by a generation number and a change log written in the same transaction as every
index write; the page's rows are then read by key. Every value from the query is a bound
parameter; the only text put into SQL is our own.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.db import transaction, utcnow
from marketplace.tutors.places import distance_km
from search.availability import to_mask
from search.backend import SearchHit, SearchQuery, SearchResult
from search.documents import SearchDocument, doc_key, unit_vector
from search.models import SearchChange, SearchDocumentRow, SearchState
from search.snapshot import COLUMNS, Snapshot, TextMatches, encode_facets

DOCS = SearchDocumentRow.__table__
STATE = SearchState.__table__
CHANGES = SearchChange.__table__
CHUNK = 500
WRITE_CHUNK = 2000  # rows per executemany
KEEP_GENERATIONS = 2000  # change-log generations kept; a reader further behind reloads everything
PRUNE_EVERY = 50
RELOAD_CHANGES = 2000  # a snapshot takes up to this many changes (or a tenth of the index) incrementally,
RELOAD_BEHIND = 5000  # while its dead plus appended rows stay under this (or a quarter); else a full load

_HIT_COLUMNS = (
    DOCS.c.doc_key,
    DOCS.c.profile_id,
    DOCS.c.slug,
    DOCS.c.name,
    DOCS.c.headline,
    DOCS.c.price_minor,
    DOCS.c.currency,
    DOCS.c.rating,
    DOCS.c.review_count,
    DOCS.c.lessons_taught,
    DOCS.c.trial,
    DOCS.c.online,
    DOCS.c.in_person,
    DOCS.c.country,
    DOCS.c.city_id,
    DOCS.c.lat,
    DOCS.c.lng,
)
_SNAPSHOT_COLUMNS = tuple(DOCS.c[name] for name in COLUMNS)

# Full text, per dialect (our own SQL; the match expression is a bound parameter).
# The matching doc keys as one comma-separated string: tens of thousands of keys come back as one
# value (parsed by numpy) instead of one Python row each.
_SQLITE_KEYS = text("SELECT group_concat(rowid) FROM search_fts WHERE search_fts MATCH :match")
_PG_KEYS = text(
    "SELECT string_agg(doc_key::text, ',') FROM search_fts WHERE tsv @@ to_tsquery('simple'::regconfig, :match)"
)
_PG_LEXEMES = (
    "SELECT d.doc_key, tsvector_to_array(f.tsv), d.name"
    " FROM search_documents d JOIN search_fts f ON f.doc_key = d.doc_key"
)
_PLAIN_TERM = re.compile(r"[a-z0-9]+")  # a query word that is one PostgreSQL lexeme as it stands


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _row(doc: SearchDocument, indexed_at: datetime | None = None) -> dict[str, Any]:
    x = y = z = None
    if doc.lat is not None and doc.lng is not None:
        x, y, z = unit_vector(doc.lat, doc.lng)
    masks = to_mask(doc.availability)
    row = {
        "profile_id": doc.profile_id,
        "doc_key": doc.doc_key,
        "user_id": doc.user_id,
        "slug": doc.slug,
        "name": doc.name[:200],
        "headline": doc.headline[:200],
        "text": doc.text,
        "price_minor": doc.price_minor,
        "currency": doc.currency,
        "rating": doc.rating,
        "review_count": doc.review_count,
        "lessons_taught": doc.lessons_taught,
        "trial": doc.trial,
        "online": doc.online,
        "in_person": doc.in_person,
        "lat": doc.lat,
        "lng": doc.lng,
        "geo_x": x,
        "geo_y": y,
        "geo_z": z,
        "country": doc.country,
        "city_id": doc.city_id,
        "newest": doc.newest,
        "availability": list(doc.availability),
        "avail_0": masks[0],
        "avail_1": masks[1],
        "avail_2": masks[2],
        "facet_values": encode_facets(doc.facets),
    }
    row["content_hash"] = content_hash(row)
    row["indexed_at"] = indexed_at or utcnow()
    return row


def content_hash(row: dict[str, Any]) -> str:
    """A digest of a document row (everything but the hash and ``indexed_at``)."""
    parts = [f"{key}={row[key]!r}" for key in sorted(row) if key not in ("content_hash", "indexed_at")]
    return hashlib.blake2b("\x1e".join(parts).encode(), digest_size=16).hexdigest()


# ---- generations ------------------------------------------------------------------------------


async def _next_generation(session: AsyncSession, ids: Sequence[uuid.UUID], *, reset: bool = False) -> int:
    """Raise the generation (taking the state row's lock until commit, so that generations commit
    in order) and record the touched profiles. ``reset``: a full rebuild, every reader reloads."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
    statement = upsert(STATE).values(id=1, epoch=uuid.uuid4().hex, generation=1, pruned_through=0)
    statement = statement.on_conflict_do_update(
        index_elements=[STATE.c.id], set_={"generation": STATE.c.generation + 1}
    ).returning(STATE.c.generation)
    generation = int((await session.execute(statement)).scalar_one())
    if reset:
        await session.execute(delete(CHANGES))
        await session.execute(update(STATE).where(STATE.c.id == 1).values(pruned_through=generation))
        return generation
    unique = list(dict.fromkeys(ids))
    for part in _chunks(unique, WRITE_CHUNK):
        await session.execute(insert(CHANGES), [{"generation": generation, "profile_id": p} for p in part])
    if generation % PRUNE_EVERY == 0 and generation > KEEP_GENERATIONS:
        floor = generation - KEEP_GENERATIONS
        await session.execute(delete(CHANGES).where(CHANGES.c.generation <= floor))
        await session.execute(
            update(STATE).where(STATE.c.id == 1, STATE.c.pruned_through < floor).values(pruned_through=floor)
        )
    return generation


# ---- snapshots --------------------------------------------------------------------------------

_snapshots: dict[str, Snapshot] = {}


def _store_key(session: AsyncSession) -> str:
    return session.get_bind().url.render_as_string(hide_password=True)


async def _load_rows(session: AsyncSession, ids: Sequence[uuid.UUID] | None = None) -> list[Any]:
    if ids is None:
        return list((await session.execute(select(*_SNAPSHOT_COLUMNS))).tuples())
    rows: list[Any] = []
    for part in _chunks(list(ids)):
        rows += (await session.execute(select(*_SNAPSHOT_COLUMNS).where(DOCS.c.profile_id.in_(part)))).tuples()
    return rows


async def _load_lexemes(
    session: AsyncSession, keys: Sequence[int] | None = None
) -> tuple[list[int], list[list[str]], list[str]] | None:
    """PostgreSQL's full-text words and the names of these documents (all when ``keys`` is None),
    for the snapshot's lexicons; None on other databases."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    found: list[int] = []
    lexemes: list[list[str]] = []
    names: list[str] = []
    parts = [None] if keys is None else list(_chunks(list(keys), WRITE_CHUNK))
    for part in parts:
        if part is None:
            result = await session.execute(text(_PG_LEXEMES))
        else:
            statement = text(_PG_LEXEMES + " WHERE d.doc_key = ANY(:keys)")
            result = await session.execute(statement, {"keys": list(part)})
        for key, words, name in result.tuples():
            found.append(key)
            lexemes.append(words)
            names.append(name)
    return found, lexemes, names


async def current_snapshot(session: AsyncSession) -> Snapshot:
    """The snapshot of the index as of this session: one small query when nothing changed."""
    state = (
        await session.execute(select(STATE.c.epoch, STATE.c.generation, STATE.c.pruned_through).where(STATE.c.id == 1))
    ).first()
    epoch, generation, pruned = (None, 0, 0) if state is None else (state[0], int(state[1]), int(state[2]))
    key = _store_key(session)
    snap = _snapshots.get(key)
    if snap is not None and snap.epoch == epoch and snap.generation == generation:
        return snap
    fresh: Snapshot | None = None
    if snap is not None and snap.epoch == epoch and pruned <= snap.generation < generation:
        changed = list(
            (
                await session.execute(
                    select(CHANGES.c.profile_id).where(CHANGES.c.generation > snap.generation).distinct()
                )
            ).scalars()
        )
        # Dead rows and rows appended since the last full load (the lexicon's tail) stay few.
        behind = max(snap.size - snap.live, snap.size - snap.loaded_size) + len(changed)
        if len(changed) <= max(RELOAD_CHANGES, snap.live // 10) and behind <= max(RELOAD_BEHIND, snap.live // 4):
            rows = await _load_rows(session, changed)
            lexemes = await _load_lexemes(session, [row[0] for row in rows]) if snap.lexicon is not None else None
            fresh = Snapshot.from_rows(
                rows,
                epoch=epoch,
                generation=generation,
                base=snap,
                dead_keys=[doc_key(p) for p in changed],
                lexemes=lexemes,
            )
    if fresh is None:
        rows = await _load_rows(session)
        fresh = Snapshot.from_rows(rows, epoch=epoch, generation=generation, lexemes=await _load_lexemes(session))
    _snapshots[key] = fresh
    return fresh


# ---- the backend -------------------------------------------------------------------------------


class SqlSearchBackend:
    """``SearchBackend`` over the ``search_documents`` table and its snapshot."""

    name = "sql"

    async def index(self, docs: Sequence[SearchDocument]) -> None:
        unique = list({doc.profile_id: doc for doc in docs}.values())
        if not unique:
            return
        async with transaction() as session:
            ids = [doc.profile_id for doc in unique]
            await _next_generation(session, ids)
            await self._delete(session, ids)
            for part in _chunks(unique, WRITE_CHUNK):
                await session.execute(insert(DOCS), [_row(doc) for doc in part])

    async def delete(self, ids: Sequence[uuid.UUID]) -> None:
        if ids:
            unique = list(dict.fromkeys(ids))
            async with transaction() as session:
                await _next_generation(session, unique)
                await self._delete(session, unique)

    @staticmethod
    async def _delete(session: AsyncSession, ids: Sequence[uuid.UUID]) -> None:
        for part in _chunks(list(ids)):
            await session.execute(delete(DOCS).where(DOCS.c.profile_id.in_(part)))

    async def replace_all(self, docs: Sequence[SearchDocument], *, read_at: datetime) -> dict[str, int]:
        """Write ``docs`` (a full reindex): only rows whose content changed are rewritten (with
        ``indexed_at = read_at``, when their profiles were read); the others stay as they are and
        ``search_state.verified_at = read_at`` says they were current then (``indexed_state``).
        Documents not among ``docs`` are the caller's to delete after a recheck. One transaction:
        a reader sees the old index or the new one."""
        unique = list({doc.profile_id: doc for doc in docs}.values())
        rows = [_row(doc, read_at) for doc in unique]
        async with transaction() as session:
            existing = {
                profile_id: digest
                for profile_id, digest in await session.execute(select(DOCS.c.profile_id, DOCS.c.content_hash))
            }
            changed = [row for row in rows if existing.get(row["profile_id"]) != row["content_hash"]]
            same = [row["profile_id"] for row in rows if existing.get(row["profile_id"]) == row["content_hash"]]
            many = len(changed) > max(2000, len(rows) // 10)
            await _next_generation(session, [row["profile_id"] for row in changed], reset=many)
            replaced = [row["profile_id"] for row in changed if row["profile_id"] in existing]
            await self._delete(session, replaced)
            for part in _chunks(changed, WRITE_CHUNK):
                await session.execute(insert(DOCS), list(part))
            # The untouched rows keep their indexed_at: the state row says they were current at read_at.
            await session.execute(update(STATE).where(STATE.c.id == 1).values(verified_at=read_at))
        return {"written": len(changed), "unchanged": len(same)}

    async def indexed_state(self) -> dict[uuid.UUID, datetime | None]:
        """Every indexed profile id with the time its document was known current."""
        async with transaction(write=False) as session:
            verified = (await session.execute(select(STATE.c.verified_at).where(STATE.c.id == 1))).scalar()
            rows = await session.execute(select(DOCS.c.profile_id, DOCS.c.indexed_at))
            return {
                profile_id: indexed_at if verified is None or indexed_at >= verified else verified
                for profile_id, indexed_at in rows
            }

    async def warm_up(self) -> int:
        """Load this process's snapshot now (web start-up), so that the first search does not pay
        for it (about 2 s at 100,000 tutors). Returns the number of searchable documents."""
        async with transaction(write=False) as session:
            return (await current_snapshot(session)).live

    async def count(self) -> int:
        async with transaction(write=False) as session:
            return int((await session.execute(select(func.count()).select_from(DOCS))).scalar_one())

    async def search(self, query: SearchQuery) -> SearchResult:
        async with transaction(write=False) as session:
            dialect = session.get_bind().dialect.name
            snap = await current_snapshot(session)
            matches = await _cached_text_matches(session, query, dialect, snap) if query.terms else None
            plan = snap.search(query, matches, dialect)
            keys = plan.page()
            rows = []
            if keys:
                found = {
                    row.doc_key: row
                    for row in await session.execute(select(*_HIT_COLUMNS).where(DOCS.c.doc_key.in_(keys)))
                }
                rows = [found[k] for k in keys if k in found]
            facets = plan.facet_counts()
            total = plan.total
        hits = [
            SearchHit(
                profile_id=row.profile_id,
                slug=row.slug,
                name=row.name,
                headline=row.headline,
                price_minor=row.price_minor,
                currency=row.currency,
                rating=row.rating,
                review_count=row.review_count,
                lessons_taught=row.lessons_taught,
                trial=row.trial,
                online=row.online,
                in_person=row.in_person,
                country=row.country,
                city_id=row.city_id,
                distance_km=(
                    round(distance_km(query.near[0], query.near[1], row.lat, row.lng), 3)
                    if query.near is not None and row.lat is not None
                    else None
                ),
            )
            for row in rows
        ]
        return SearchResult(hits=hits, facets=facets, total=total, page=query.page, per_page=query.per_page)


_text_cache: OrderedDict[tuple[Any, ...], TextMatches] = OrderedDict()
TEXT_CACHE_SIZE = 64


async def _cached_text_matches(session: AsyncSession, query: SearchQuery, dialect: str, snap: Snapshot) -> TextMatches:
    """``_text_matches``, remembered per index generation: the same words again (the next page, a
    facet click, a sort change) skip the full-text query and its scoring. Any index write raises the
    generation, so a remembered answer is never one of another generation of the index."""
    key = (_store_key(session), snap.epoch, snap.generation, tuple(query.terms), query.sort == "relevance")
    found = _text_cache.get(key)
    if found is not None:
        _text_cache.move_to_end(key)
        return found
    found = await _text_matches(session, query, dialect, snap)
    _text_cache[key] = found
    while len(_text_cache) > TEXT_CACHE_SIZE:
        _text_cache.popitem(last=False)
    return found


def _parse_keys(joined: str | None) -> np.ndarray:
    return np.fromstring(joined, dtype=np.int64, sep=",") if joined else np.zeros(0, dtype=np.int64)


async def _text_matches(session: AsyncSession, query: SearchQuery, dialect: str, snap: Snapshot) -> TextMatches:
    """The doc keys that match the words (each a prefix) and, for relevance, their scores (lower
    first): a tutor whose name has every word first, then (added by the plan) one who teaches it
    (every word begins an instrument or genre of theirs), then the rest; the quality order breaks
    ties. Two cheap queries and array work, where a BM25 over every match cost up to half a second
    at 100,000 tutors."""
    terms = query.terms
    names: np.ndarray | None = None
    positions: np.ndarray | None = None
    if dialect == "sqlite":
        # Each word quoted (so FTS5 operators are plain words) and a prefix: "pia"* finds "piano".
        match = " ".join(f'"{term}"*' for term in terms)
        keys = _parse_keys((await session.execute(_SQLITE_KEYS, {"match": match})).scalar())
        if query.sort == "relevance" and len(keys):
            names = _parse_keys((await session.execute(_SQLITE_KEYS, {"match": f"{{name}} : ({match})"})).scalar())
    elif dialect == "postgresql":
        if snap.lexicon is not None and all(_PLAIN_TERM.fullmatch(term) for term in terms):
            # The snapshot's inverted copy of the stored lexemes: the same matches as the GIN
            # query below (a test holds them equal), without its heap scan.
            positions = np.flatnonzero(snap.lexicon.matching(terms, snap.size) & snap.alive)
            keys = snap.columns["doc_key"][positions]
        else:  # words PostgreSQL's parser might split or normalise: ask it
            match = " & ".join(f"{term}:*" for term in terms)
            keys = _parse_keys((await session.execute(_PG_KEYS, {"match": match})).scalar())
        if query.sort == "relevance" and snap.names is not None and len(keys):
            # Every word begins a word of the folded name, as FTS5's name column gives on SQLite.
            names = snap.columns["doc_key"][np.flatnonzero(snap.names.matching(terms, snap.size) & snap.alive)]
    else:  # any other database: every word is a prefix of some word of the folded text
        condition = and_(
            *(
                or_(DOCS.c.text.like(bindparam(None, f"{t}%")), DOCS.c.text.like(bindparam(None, f"% {t}%")))
                for t in terms
            )
        )
        rows = (await session.execute(select(DOCS.c.doc_key).where(condition))).scalars().all()
        keys = np.asarray(rows, dtype=np.int64)
    if query.sort != "relevance":
        return TextMatches(keys, None, positions)
    # The name tier; the snapshot's plan adds the teaching tier (``Snapshot.teaches``).
    tier = np.zeros(len(keys), dtype=np.float64)
    if names is not None and len(names):
        tier -= 2 * np.isin(keys, names, assume_unique=True)
    return TextMatches(keys, tier, positions)
