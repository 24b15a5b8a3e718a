"""The embedded search backend: search in the application's own database.

Full text: FTS5 on SQLite (the ``search_fts`` table, kept in step by triggers), on PostgreSQL a
``search_fts`` table of stored ``to_tsvector`` values (``simple`` configuration, GIN-indexed, kept in
step by a trigger); both over text that was folded in Python, and the
query folded the same way, so "muller" finds "Müller". Each query word matches as a prefix.
Facets: rows in ``search_facets``; disjunctive counts are GROUP BYs. Geography: a latitude band
plus a chord-length test on unit-sphere coordinates (exact, and plain arithmetic in SQL).
Every value from the query is a bound parameter; the only text put into SQL is our own.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    and_,
    case,
    column,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    table,
)
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.db import transaction, utcnow
from marketplace.tutors.places import distance_km
from search.availability import to_mask
from search.backend import SearchHit, SearchQuery, SearchResult
from search.documents import EARTH_RADIUS_KM, FACETS, SearchDocument, unit_vector
from search.models import SearchDocumentRow, SearchFacetRow, SearchFacetTotal

DOCS = SearchDocumentRow.__table__
FACET_ROWS = SearchFacetRow.__table__
TOTALS = SearchFacetTotal.__table__
FTS = table("search_fts", column("rowid"))
PG_FTS = table("search_fts", column("doc_key"), column("tsv"))  # PostgreSQL: stored tsvectors (trigger-kept)
_FTS_MATCH = literal_column("search_fts").op("MATCH")
_FTS_SCORE = literal_column("bm25(search_fts, 4.0, 1.0)")  # name weighs more than the rest; lower is better
_PG_CONFIG = literal_column("'simple'::regconfig")  # a constant, so the expression index applies
CHUNK = 500

_HIT_COLUMNS = (
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


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _row(doc: SearchDocument) -> dict[str, Any]:
    x = y = z = None
    if doc.lat is not None and doc.lng is not None:
        x, y, z = unit_vector(doc.lat, doc.lng)
    masks = to_mask(doc.availability)
    return {
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
        "indexed_at": utcnow(),
    }


async def _add_totals(session: AsyncSession, changes: Counter[tuple[str, str]] | dict[tuple[str, str], int]) -> None:
    """Add ``changes`` to the facet totals (an upsert per value; rows that reach zero are removed)."""
    rows = [{"facet": f, "value": v, "n": n} for (f, v), n in sorted(changes.items()) if n]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
    for part in _chunks(rows):
        statement = upsert(TOTALS)
        statement = statement.on_conflict_do_update(
            index_elements=[TOTALS.c.facet, TOTALS.c.value], set_={"n": TOTALS.c.n + statement.excluded.n}
        )
        await session.execute(statement, list(part))
    await session.execute(delete(TOTALS).where(TOTALS.c.n <= 0))


class SqlSearchBackend:
    """``SearchBackend`` over the ``search_documents`` / ``search_facets`` tables."""

    name = "sql"

    async def index(self, docs: Sequence[SearchDocument]) -> None:
        unique = list({doc.profile_id: doc for doc in docs}.values())
        if not unique:
            return
        async with transaction() as session:
            await self._delete(session, [doc.profile_id for doc in unique])
            for part in _chunks(unique):
                await session.execute(insert(DOCS), [_row(doc) for doc in part])
            facet_rows = [
                {"profile_id": doc.profile_id, "facet": facet, "value": value}
                for doc in unique
                for facet, values in doc.facets.items()
                for value in dict.fromkeys(values)
            ]
            for part in _chunks(facet_rows, CHUNK * 4):
                await session.execute(insert(FACET_ROWS), list(part))
            added = Counter((row["facet"], row["value"]) for row in facet_rows)
            await _add_totals(session, added)

    async def delete(self, ids: Sequence[uuid.UUID]) -> None:
        if ids:
            async with transaction() as session:
                await self._delete(session, list(dict.fromkeys(ids)))

    @staticmethod
    async def _delete(session: AsyncSession, ids: list[uuid.UUID]) -> None:
        removed: Counter[tuple[str, str]] = Counter()
        for part in _chunks(ids):
            rows = await session.execute(
                select(FACET_ROWS.c.facet, FACET_ROWS.c.value, func.count())
                .where(FACET_ROWS.c.profile_id.in_(part))
                .group_by(FACET_ROWS.c.facet, FACET_ROWS.c.value)
            )
            removed.update({(facet, value): -int(n) for facet, value, n in rows})
        await _add_totals(session, removed)
        for part in _chunks(ids):
            await session.execute(delete(FACET_ROWS).where(FACET_ROWS.c.profile_id.in_(part)))
            await session.execute(delete(DOCS).where(DOCS.c.profile_id.in_(part)))

    async def count(self) -> int:
        async with transaction(write=False) as session:
            return int((await session.execute(select(func.count()).select_from(DOCS))).scalar_one())

    async def search(self, query: SearchQuery) -> SearchResult:
        async with transaction(write=False) as session:
            dialect = session.get_bind().dialect.name
            plan = _Plan(query, dialect)
            counting = select(func.count()).select_from(DOCS).where(*plan.where())
            total = int((await session.execute(counting)).scalar_one())
            rows = (await session.execute(plan.hits_statement())).all() if query.offset < total else []
            facets = await plan.facet_counts(session, total=total)
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


class _Plan:
    """The SQL for one query: conditions (optionally without one facet's filter), order, counts."""

    def __init__(self, query: SearchQuery, dialect: str) -> None:
        self.query = query
        self.dialect = dialect
        self.terms = query.terms
        self._text = self._text_condition() if self.terms else None
        self._facets = {
            facet: DOCS.c.profile_id.in_(
                select(FACET_ROWS.c.profile_id).where(FACET_ROWS.c.facet == facet, FACET_ROWS.c.value.in_(values))
            )
            for facet, values in query.filters.items()
        }
        self._others = [*self._price_conditions(), *self._geo_conditions()]
        if query.online_only:
            self._others.append(DOCS.c.online.is_(True))
        if query.availability:
            self._others.append(self._availability_condition())

    # -- conditions ---------------------------------------------------------------------

    def _fts_match(self) -> str:
        # Each word quoted (so FTS5 operators are plain words) and a prefix: "pia"* finds "piano".
        return " ".join(f'"{term}"*' for term in self.terms)

    def _pg_tsquery(self) -> ColumnElement[Any]:
        return func.to_tsquery(_PG_CONFIG, " & ".join(f"{term}:*" for term in self.terms))

    def _text_condition(self) -> ColumnElement[bool]:
        if self.dialect == "sqlite":
            return DOCS.c.doc_key.in_(select(FTS.c.rowid).where(_FTS_MATCH(self._fts_match())))
        if self.dialect == "postgresql":
            return DOCS.c.doc_key.in_(select(PG_FTS.c.doc_key).where(PG_FTS.c.tsv.op("@@")(self._pg_tsquery())))
        # Any other database: every word is a prefix of some word of the folded text.
        return and_(*(or_(DOCS.c.text.like(f"{t}%"), DOCS.c.text.like(f"% {t}%")) for t in self.terms))

    def _price_conditions(self) -> list[ColumnElement[bool]]:
        q = self.query
        if q.price_min is None and q.price_max is None:
            return []
        options = []
        for currency in sorted(q.rates):
            lo, hi = q.price_bounds_in(currency)  # type: ignore[misc]
            parts = [DOCS.c.currency == currency, DOCS.c.price_minor.is_not(None)]
            if lo is not None:
                parts.append(DOCS.c.price_minor >= lo)
            if hi is not None:
                parts.append(DOCS.c.price_minor <= hi)
            options.append(and_(*parts))
        return [or_(*options)]

    def _availability_condition(self) -> ColumnElement[bool]:
        """Any wanted bucket set in the document's mask: one bitwise AND per non-empty part."""
        masks = to_mask(self.query.availability)
        columns = (DOCS.c.avail_0, DOCS.c.avail_1, DOCS.c.avail_2)
        return or_(
            *(col.op("&")(literal(mask, BigInteger())) != 0 for col, mask in zip(columns, masks, strict=True) if mask)
        )

    def _geo_conditions(self) -> list[ColumnElement[bool]]:
        q = self.query
        if q.near is None:
            return []
        lat = q.near[0]
        band = math.degrees((q.radius_km or 0) / EARTH_RADIUS_KM) + 1e-6
        conditions: list[ColumnElement[bool]] = [
            DOCS.c.lat.is_not(None),
            DOCS.c.lat >= lat - band,
            DOCS.c.lat <= lat + band,
            self._chord2() <= q.max_chord**2 * (1 + 1e-12),
        ]
        return conditions

    def _chord2(self) -> ColumnElement[float]:
        x, y, z = unit_vector(*self.query.near)  # type: ignore[misc]
        dx, dy, dz = DOCS.c.geo_x - x, DOCS.c.geo_y - y, DOCS.c.geo_z - z
        return dx * dx + dy * dy + dz * dz

    def where(self, *, without: str | None = None) -> list[ColumnElement[bool]]:
        conditions = [c for facet, c in self._facets.items() if facet != without]
        if self._text is not None:
            conditions.append(self._text)
        return conditions + self._others

    # -- hits ---------------------------------------------------------------------------

    def _price_eur(self) -> ColumnElement[Any]:
        factors = {c: self.query.eur_factor(c) for c in sorted(self.query.rates)}
        return case({c: DOCS.c.price_minor * f for c, f in factors.items() if f is not None}, value=DOCS.c.currency)

    def hits_statement(self):
        q = self.query
        statement = select(*_HIT_COLUMNS).where(*self.where())
        quality = [DOCS.c.rating.desc().nulls_last(), DOCS.c.review_count.desc(), DOCS.c.lessons_taught.desc()]
        order: list[Any]
        if q.sort == "relevance" and self.terms and self.dialect == "sqlite":
            scores = select(FTS.c.rowid.label("key"), _FTS_SCORE.label("score")).where(_FTS_MATCH(self._fts_match()))
            scored = scores.subquery("scores")
            statement = statement.join_from(DOCS, scored, scored.c.key == DOCS.c.doc_key)
            order = [scored.c.score.asc(), *quality]
        elif q.sort == "relevance" and self.terms and self.dialect == "postgresql":
            scores = select(
                PG_FTS.c.doc_key.label("key"), func.ts_rank(PG_FTS.c.tsv, self._pg_tsquery()).label("score")
            ).where(PG_FTS.c.tsv.op("@@")(self._pg_tsquery()))
            scored = scores.subquery("scores")
            statement = statement.join_from(DOCS, scored, scored.c.key == DOCS.c.doc_key)
            order = [scored.c.score.desc(), *quality]
        elif q.sort in ("relevance", "rating"):
            order = quality
        elif q.sort == "price_asc":
            order = [self._price_eur().asc().nulls_last()]
        elif q.sort == "price_desc":
            order = [self._price_eur().desc().nulls_last()]
        elif q.sort == "newest":
            order = [DOCS.c.newest.desc().nulls_last()]
        else:  # distance
            order = [self._chord2().asc()]
        return statement.order_by(*order, DOCS.c.profile_id).limit(q.per_page).offset(q.offset)

    # -- facets -------------------------------------------------------------------------

    async def facet_counts(self, session: AsyncSession, *, total: int | None = None) -> dict[str, dict[str, int]]:
        """Disjunctive counts: one GROUP BY for every facet without a filter (they share the same
        conditions), plus one per filtered facet (its own filter left out).

        When the unfiltered group matches more than half of the documents (``total``), it counts the
        documents that do *not* match and subtracts from the totals: fewer rows to read, same numbers."""
        counts: dict[str, dict[str, int]] = {facet: {} for facet in FACETS}
        n = func.count().label("n")
        shown = self.query.facets
        unfiltered = [facet for facet in shown if facet not in self._facets]
        groups: list[tuple[list[str], list[ColumnElement[bool]]]] = []
        if unfiltered:
            groups.append((unfiltered, self.where()))
        groups += [([facet], self.where(without=facet)) for facet in self._facets if facet in shown]
        complement = False
        if unfiltered and groups[0][1] and total is not None:
            documents = int((await session.execute(select(func.count()).select_from(DOCS))).scalar_one())
            complement = total * 2 > documents
        for index, (facets, conditions) in enumerate(groups):
            if index == 0 and complement:
                await self._complement_counts(session, facets, conditions, counts)
                continue
            if not conditions:  # every document: the totals kept by the index writes
                statement = select(TOTALS.c.facet, TOTALS.c.value, TOTALS.c.n).where(
                    TOTALS.c.facet.in_(facets), TOTALS.c.n > 0
                )
            else:
                # From the matching documents to their facet rows (primary key prefix), never the
                # other way round: a LEFT JOIN (with every condition on the facet rows in its ON
                # clause) fixes that order in SQLite, whose planner would otherwise scan the facet
                # rows and probe the documents; ``facet || ''`` keeps it off the (facet, value) index.
                on = FACET_ROWS.c.profile_id == DOCS.c.profile_id
                if not set(facets) >= set(FACETS):
                    on = and_(on, FACET_ROWS.c.facet.concat("").in_(facets))
                statement = (
                    select(FACET_ROWS.c.facet, FACET_ROWS.c.value, n)
                    .select_from(DOCS.outerjoin(FACET_ROWS, on))
                    .where(*conditions)
                    .group_by(FACET_ROWS.c.facet, FACET_ROWS.c.value)
                )
            for facet, value, count in (await session.execute(statement)).all():
                if facet is not None:  # documents without any facet row (the LEFT JOIN)
                    counts[facet][value] = int(count)
        return {facet: dict(sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))) for facet, values in counts.items()}

    @staticmethod
    async def _complement_counts(
        session: AsyncSession,
        facets: list[str],
        conditions: list[ColumnElement[bool]],
        counts: dict[str, dict[str, int]],
    ) -> None:
        """counts(v) = totals(v) - counts(v among the documents the conditions do not accept); a
        condition that is NULL (unknown) does not accept, exactly as in the WHERE clause."""
        accepted = func.coalesce(case((and_(*conditions), 1), else_=0), 0)
        on = FACET_ROWS.c.profile_id == DOCS.c.profile_id
        if not set(facets) >= set(FACETS):
            on = and_(on, FACET_ROWS.c.facet.concat("").in_(facets))
        rejected = (
            select(FACET_ROWS.c.facet, FACET_ROWS.c.value, func.count())
            .select_from(DOCS.outerjoin(FACET_ROWS, on))
            .where(accepted == 0)
            .group_by(FACET_ROWS.c.facet, FACET_ROWS.c.value)
        )
        minus = {(f, v): int(n) for f, v, n in (await session.execute(rejected)).all() if f is not None}
        totals = select(TOTALS.c.facet, TOTALS.c.value, TOTALS.c.n).where(TOTALS.c.facet.in_(facets))
        for facet, value, n in (await session.execute(totals)).all():
            left = int(n) - minus.get((facet, value), 0)
            if left > 0:
                counts[facet][value] = left
