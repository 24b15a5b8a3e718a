"""An in-memory columnar snapshot of ``search_documents``: filters, disjunctive facet counts and
sorting of the embedded search backend, in numpy, exact.

SQL keeps what it is good at (full-text matching, the rows of one page; on PostgreSQL the stored
lexemes are also kept here, inverted, in a ``Lexicon``); everything else is vector arithmetic over
one array per field: facet values as (position, value code) pairs with
posting lists per value, prices with their currency code, unit-sphere coordinates, the 168-bit
availability masks, the quality order. A condition is a boolean array; a facet count is a
``bincount`` of the pairs whose document passes every other condition.

Freshness: every index write raises ``search_state.generation`` and lists the profiles it touched in
``search_changes``, in its own transaction (``search.sql``). Before each search the backend reads
that one row: same generation, the snapshot is current; a few changes, the changed rows are read
again and a new snapshot is made from the old one (the old rows are marked dead, the new appended);
many changes, another epoch (an emptied database) or pruned changes, a full reload. Snapshots are
never modified once built, so a search that started on one finishes on it.

The arithmetic is the SQL's, operation for operation (the chord length, the price conversion), so
the numbers agree with a plain SQL query over the same rows to the last bit.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from search.availability import MASK_BITS
from search.backend import SearchQuery, folded_words
from search.documents import FACETS

SEP = "\x1f"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BIG = np.iinfo(np.int64).max


def encode_facets(facets: Any) -> str:
    """The document's facet values as stored in ``search_documents.facet_values``."""
    tokens = [f"{facet}={value}" for facet in FACETS for value in dict.fromkeys(facets.get(facet) or ())]
    return SEP + SEP.join(tokens) + SEP if tokens else ""


def decode_facets(encoded: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for token in (encoded or "").split(SEP):
        facet, eq, value = token.partition("=")
        if eq:
            out.setdefault(facet, []).append(value)
    return {facet: tuple(dict.fromkeys(values)) for facet, values in out.items()}


# The columns a snapshot reads, in this order (``search.sql`` builds the SELECT from these names).
COLUMNS = (
    "doc_key",
    "price_minor",
    "currency",
    "rating",
    "review_count",
    "lessons_taught",
    "online",
    "lat",
    "geo_x",
    "geo_y",
    "geo_z",
    "newest",
    "avail_0",
    "avail_1",
    "avail_2",
    "facet_values",
)


def _micros(value: Any) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICRO


_MICRO = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


BITSET_VALUES = 256  # facets with at most this many values keep a bitset per value


def _words(n: int) -> int:
    return (n + 63) // 64


def pack(mask: np.ndarray) -> np.ndarray:
    """A boolean array as little-endian bits in uint64 words (zero padded)."""
    padded = np.zeros(_words(len(mask)) * 64, dtype=bool)
    padded[: len(mask)] = mask
    return np.packbits(padded, bitorder="little").view(np.uint64)


@dataclass(frozen=True)
class _Facet:
    values: list[str]  # code -> value
    codes: dict[str, int]  # value -> code
    pos: np.ndarray  # int32 positions of the (document, value) pairs, ascending
    code: np.ndarray  # int32 value codes of the pairs
    by_value: np.ndarray  # positions sorted by value code
    offsets: np.ndarray  # by_value[offsets[c]:offsets[c + 1]] are the documents with value c
    starts: np.ndarray  # pairs of the document at position p: starts[p]:starts[p + 1]
    bits: np.ndarray | None  # few values: one packed bitset of the documents per value (uint64 words)

    @classmethod
    def build(cls, values: list[str], codes: dict[str, int], pos: np.ndarray, code: np.ndarray, n: int) -> _Facet:
        order = np.argsort(code, kind="stable")
        offsets = np.searchsorted(code[order], np.arange(len(values) + 1))
        starts = np.searchsorted(pos, np.arange(n + 1))
        bits = None
        if 0 < len(values) <= BITSET_VALUES:
            members = np.zeros((len(values), _words(n) * 64), dtype=bool)
            members[code, pos] = True
            bits = np.packbits(members, axis=1, bitorder="little").view(np.uint64)
        return cls(values, codes, pos, code, pos[order], offsets, starts, bits)

    def matching(self, wanted: Iterable[str], n: int) -> np.ndarray:
        mask = np.zeros(n, dtype=bool)
        for value in wanted:
            c = self.codes.get(value)
            if c is not None:
                mask[self.by_value[self.offsets[c] : self.offsets[c + 1]]] = True
        return mask

    def _count_positions(self, positions: np.ndarray) -> np.ndarray:
        """Value counts over the documents at ``positions`` (their pairs only)."""
        first, last = self.starts[positions], self.starts[positions + 1]
        lengths = last - first
        total = int(lengths.sum())
        if not total:
            return np.zeros(len(self.values), dtype=np.int64)
        shift = np.repeat(first - (np.cumsum(lengths) - lengths), lengths)
        return np.bincount(self.code[np.arange(total) + shift], minlength=len(self.values))

    def count_array(self, accepted: np.ndarray, accepted_n: int, totals: np.ndarray, alive: np.ndarray, live: int):
        """Counts per value code of the accepted documents: a popcount of bitset intersections
        when the facet has few values, else reading the fewer pairs (those of the accepted
        documents, or of the rejected live ones subtracted from the totals)."""
        if self.bits is not None:
            return np.bitwise_count(self.bits & pack(accepted)).sum(axis=1, dtype=np.int64)
        if accepted_n * 5 < live:
            return self._count_positions(np.flatnonzero(accepted))
        if accepted_n * 5 > live * 4:
            return totals - self._count_positions(np.flatnonzero(alive & ~accepted))
        return np.bincount(self.code[accepted[self.pos]], minlength=len(self.values))

    def named(self, counted: np.ndarray) -> dict[str, int]:
        return {self.values[c]: int(counted[c]) for c in np.flatnonzero(counted)}


@dataclass(frozen=True)
class _Postings:
    """Words in code-point order and, per word, the positions of the documents that have it
    (``positions[offsets[i]:offsets[i + 1]]`` for ``words[i]``): the words beginning with a prefix
    are one contiguous range, so their documents are one slice."""

    words: list[str]
    offsets: np.ndarray  # int64, len(words) + 1
    positions: np.ndarray  # int32

    @classmethod
    def build(cls, positions: np.ndarray, words: Sequence[str]) -> _Postings:
        """From parallel (position, word) pairs."""
        vocabulary = sorted(set(words))
        codes = {word: i for i, word in enumerate(vocabulary)}
        code = np.fromiter(map(codes.__getitem__, words), dtype=np.int64, count=len(words))
        order = np.argsort(code, kind="stable")
        offsets = np.searchsorted(code[order], np.arange(len(vocabulary) + 1))
        return cls(vocabulary, offsets, np.asarray(positions, dtype=np.int32)[order])

    def pairs(self) -> tuple[np.ndarray, list[str]]:
        counts = np.diff(self.offsets)
        return self.positions, [w for w, c in zip(self.words, counts.tolist(), strict=True) for _ in range(c)]

    def mark(self, prefix: str, mask: np.ndarray) -> None:
        """Set ``mask`` at the documents with a word that begins with ``prefix``."""
        lo = bisect.bisect_left(self.words, prefix)
        hi = bisect.bisect_right(self.words, prefix, lo=lo, key=lambda w: w[: len(prefix)])
        if hi > lo:
            mask[self.positions[self.offsets[lo] : self.offsets[hi]]] = True


@dataclass(frozen=True)
class Lexicon:
    """The full-text words (PostgreSQL's own ``tsvector`` lexemes) of every document, inverted:
    prefix matching without the GIN bitmap heap scan, which for a word most tutors use ("tech",
    "teach") visits the whole table (40 ms at 100,000 tutors). ``base`` holds the documents of the
    last full load; ``tail`` those appended since, rebuilt (small) with each incremental snapshot."""

    base: _Postings
    tail: _Postings | None = None

    def extended(self, positions: np.ndarray, words: Sequence[str]) -> Lexicon:
        if self.tail is not None:
            old_positions, old_words = self.tail.pairs()
            positions = np.concatenate([old_positions, np.asarray(positions, dtype=np.int32)])
            words = [*old_words, *words]
        return Lexicon(self.base, _Postings.build(positions, words))

    def matching(self, terms: Sequence[str], n: int) -> np.ndarray:
        """A mask of the documents (live or dead) where every term begins some word."""
        result = np.ones(n, dtype=bool)
        for term in terms:
            mask = np.zeros(n, dtype=bool)
            self.base.mark(term, mask)
            if self.tail is not None:
                self.tail.mark(term, mask)
            result &= mask
        return result


def lexeme_pairs(keys: Sequence[int], lexemes: Sequence[Sequence[str]], positions_of: dict[int, int]):
    """(position, word) pairs of documents given as doc keys with their words; keys without a
    position (not among the snapshot's rows) are left out."""
    pos: list[int] = []
    words: list[str] = []
    for key, found in zip(keys, lexemes, strict=True):
        at = positions_of.get(key)
        if at is not None and found:
            pos.extend([at] * len(found))
            words.extend(found)
    return np.asarray(pos, dtype=np.int32), words


class Snapshot:
    """The arrays of one generation of the index. Built by :meth:`load` or :meth:`updated`; never
    changed afterwards."""

    def __init__(
        self,
        *,
        epoch: str | None,
        generation: int,
        columns: dict[str, np.ndarray],
        alive: np.ndarray,
        currencies: list[str],
        facets: dict[str, _Facet],
        lexicon: Lexicon | None = None,
        names: Lexicon | None = None,
        loaded_size: int | None = None,
    ) -> None:
        self.epoch = epoch
        self.lexicon = lexicon
        self.names = names  # the folded words of the names, as a query folds its words
        self.loaded_size = len(alive) if loaded_size is None else loaded_size  # documents of the last full load
        self.generation = generation
        self.columns = columns
        self.alive = alive
        self.currencies = currencies
        self.currency_codes = {c: i for i, c in enumerate(currencies)}
        self.facets = facets
        self.size = len(alive)
        self.live = int(alive.sum())
        c = columns
        live_positions = np.flatnonzero(alive)
        keys = c["doc_key"][live_positions]
        order = np.argsort(keys)
        self._keys = keys[order]  # doc keys of live documents, sorted, and their positions
        self._key_pos = live_positions[order]
        # The quality order of SQL: rating DESC NULLS LAST, review_count DESC, lessons_taught DESC,
        # profile_id (doc_key orders like profile_id: the leading 63 bits of the same bytes).
        rating = np.where(np.isnan(c["rating"]), np.inf, -c["rating"])
        quality = np.lexsort((c["doc_key"], -c["lessons_taught"], -c["review_count"], rating))
        self.quality_order = quality
        self.quality_rank = np.empty(self.size, dtype=np.int64)
        self.quality_rank[quality] = np.arange(self.size)
        # doc_key order as a rank (ties of other sorts break by profile id, as in SQL)
        self.key_rank = np.empty(self.size, dtype=np.int64)
        self.key_rank[np.argsort(c["doc_key"], kind="stable")] = np.arange(self.size)
        self.total_arrays = {
            name: np.bincount(facet.code[alive[facet.pos]], minlength=len(facet.values))
            for name, facet in facets.items()
        }
        self.totals = {name: facets[name].named(counted) for name, counted in self.total_arrays.items()}

    # -- building ----------------------------------------------------------------------------

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[Sequence[Any]],
        *,
        epoch: str | None,
        generation: int,
        base: Snapshot | None = None,
        dead_keys: Iterable[int] = (),
        lexemes: tuple[Sequence[int], Sequence[Sequence[str]], Sequence[str]] | None = None,
    ) -> Snapshot:
        """A snapshot of ``rows`` (tuples in ``COLUMNS`` order), appended to ``base`` (whose
        documents with a key in ``dead_keys`` or among the new rows are marked dead). ``lexemes``:
        doc keys, their full-text words and their names, for the ``Lexicon`` of the text and the
        one of the names' folded words (kept only when the base has them too, or there is no base)."""
        n0 = base.size if base is not None else 0
        currencies = list(base.currencies) if base is not None else []
        currency_codes = {c: i for i, c in enumerate(currencies)}
        cols = list(zip(*rows, strict=True)) if rows else [() for _ in COLUMNS]
        get = dict(zip(COLUMNS, cols, strict=True))

        def ints(name: str, none: int = 0) -> np.ndarray:
            return np.fromiter((none if v is None else int(v) for v in get[name]), dtype=np.int64, count=len(rows))

        def floats(name: str) -> np.ndarray:
            return np.fromiter(
                (np.nan if v is None else float(v) for v in get[name]), dtype=np.float64, count=len(rows)
            )

        new: dict[str, np.ndarray] = {
            "doc_key": ints("doc_key"),
            "price_minor": ints("price_minor"),
            "has_price": np.fromiter((v is not None for v in get["price_minor"]), dtype=bool, count=len(rows)),
            "currency": np.fromiter(
                (currency_codes.setdefault(v, len(currency_codes)) for v in get["currency"]),
                dtype=np.int64,
                count=len(rows),
            ),
            "rating": floats("rating"),
            "review_count": ints("review_count"),
            "lessons_taught": ints("lessons_taught"),
            "online": np.fromiter((bool(v) for v in get["online"]), dtype=bool, count=len(rows)),
            "lat": floats("lat"),
            "geo_x": floats("geo_x"),
            "geo_y": floats("geo_y"),
            "geo_z": floats("geo_z"),
            "newest": np.fromiter(
                (_micros(v) if v is not None else _BIG for v in get["newest"]), dtype=np.int64, count=len(rows)
            ),
            "has_newest": np.fromiter((v is not None for v in get["newest"]), dtype=bool, count=len(rows)),
            "avail_0": ints("avail_0"),
            "avail_1": ints("avail_1"),
            "avail_2": ints("avail_2"),
        }
        currencies = [c for c, _ in sorted(currency_codes.items(), key=lambda kv: kv[1])]
        # Facet pairs: one token per (document, facet value), coded per facet.
        token_codes: dict[str, int] = {}
        tokens: list[int] = []
        positions: list[int] = []
        for i, encoded in enumerate(get["facet_values"]):
            if not encoded:
                continue
            for token in dict.fromkeys(encoded.split(SEP)):
                if token:
                    tokens.append(token_codes.setdefault(token, len(token_codes)))
                    positions.append(n0 + i)
        token_facet: list[str] = []
        token_value: list[str] = []
        for token in token_codes:
            facet, _eq, value = token.partition("=")
            token_facet.append(facet)
            token_value.append(value)
        tok = np.asarray(tokens, dtype=np.int64)
        pos = np.asarray(positions, dtype=np.int32)
        facets: dict[str, _Facet] = {}
        for name in FACETS:
            old = base.facets.get(name) if base is not None else None
            values = list(old.values) if old is not None else []
            codes = dict(old.codes) if old is not None else {}
            local = np.full(len(token_codes), -1, dtype=np.int32)
            for t, (facet, value) in enumerate(zip(token_facet, token_value, strict=True)):
                if facet == name:
                    if value not in codes:
                        codes[value] = len(values)
                        values.append(value)
                    local[t] = codes[value]
            mine = local[tok] >= 0 if len(tok) else np.zeros(0, dtype=bool)
            new_pos, new_code = pos[mine], local[tok[mine]] if len(tok) else np.zeros(0, dtype=np.int32)
            if old is not None:
                new_pos = np.concatenate([old.pos, new_pos])
                new_code = np.concatenate([old.code, new_code])
            facets[name] = _Facet.build(values, codes, new_pos, new_code, n0 + len(rows))

        if base is None:
            columns = new
            alive = np.ones(len(rows), dtype=bool)
        else:
            columns = {name: np.concatenate([base.columns[name], array]) for name, array in new.items()}
            alive = np.concatenate([base.alive, np.ones(len(rows), dtype=bool)])
            gone = np.asarray([*dead_keys, *new["doc_key"].tolist()], dtype=np.int64)
            alive[: base.size] &= ~np.isin(base.columns["doc_key"], gone)
        lexicon = names = None
        if lexemes is not None and (base is None or base.lexicon is not None):  # names come with the lexicon
            new_positions = {key: n0 + i for i, key in enumerate(new["doc_key"].tolist())}
            keys, words, raw_names = lexemes
            pairs = lexeme_pairs(keys, words, new_positions)
            name_pairs = lexeme_pairs(keys, [folded_words(name) for name in raw_names], new_positions)
            if base is None:
                lexicon, names = Lexicon(_Postings.build(*pairs)), Lexicon(_Postings.build(*name_pairs))
            else:
                lexicon, names = base.lexicon.extended(*pairs), base.names.extended(*name_pairs)  # type: ignore[union-attr]
        return cls(
            epoch=epoch,
            generation=generation,
            columns=columns,
            alive=alive,
            currencies=currencies,
            facets=facets,
            lexicon=lexicon,
            names=names,
            loaded_size=base.loaded_size if base is not None else None,
        )

    # -- querying ----------------------------------------------------------------------------

    def positions_of(self, keys: np.ndarray) -> np.ndarray:
        """Positions of the live documents with these doc keys (unknown keys are left out)."""
        if not len(self._keys) or not len(keys):
            return np.zeros(0, dtype=np.int64)
        at = np.searchsorted(self._keys, keys)
        at = np.minimum(at, len(self._keys) - 1)
        found = self._keys[at] == keys
        return self._key_pos[at[found]]

    def positions_and_found(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the documents with these doc keys, and which of ``keys`` were found."""
        if not len(self._keys) or not len(keys):
            return np.zeros(0, dtype=np.int64), np.zeros(len(keys), dtype=bool)
        at = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        found = self._keys[at] == keys
        return self._key_pos[at[found]], found

    def teaches(self, terms: Sequence[str], facets: Sequence[str] = ("instrument", "genre")) -> np.ndarray | None:
        """1.0 for the documents where every word begins a word of one of their instruments or
        genres ("pia" -> piano, "guit" -> electric-guitar), else 0.0; None when no word does so for
        anyone (relevance then has no use for it)."""
        if not terms:
            return None
        result = np.ones(self.size, dtype=bool)
        for term in terms:
            hit = np.zeros(self.size, dtype=bool)
            for name in facets:
                facet = self.facets.get(name)
                if facet is None:
                    continue
                values = [v for v in facet.values if any(part.startswith(term) for part in v.split("-"))]
                if values:
                    hit |= facet.matching(values, self.size)
            if not hit.any():
                return None
            result &= hit
        return result.astype(np.float64)

    def search(self, query: SearchQuery, text: TextMatches | None, dialect: str) -> Plan:
        return Plan(self, query, text, dialect)


@dataclass(frozen=True)
class TextMatches:
    """The documents the full-text engine matched: doc keys and, for relevance, scores where a
    lower value ranks first."""

    keys: np.ndarray
    scores: np.ndarray | None
    positions: np.ndarray | None = None  # the keys' positions in the snapshot, when already known


class Plan:
    """One query against one snapshot: the accepted documents, the page, the facet counts."""

    def __init__(self, snap: Snapshot, query: SearchQuery, text: TextMatches | None, dialect: str) -> None:
        self.snap = snap
        self.query = query
        c = snap.columns
        n = snap.size
        conditions = snap.alive.copy()
        self.score: np.ndarray | None = None
        if text is not None:
            if text.positions is not None:
                positions, found = text.positions, np.ones(len(text.positions), dtype=bool)
            else:
                positions, found = snap.positions_and_found(text.keys)
            matched = np.zeros(n, dtype=bool)
            matched[positions] = True
            conditions &= matched
            if text.scores is not None:
                score = np.full(n, np.inf)
                score[positions] = text.scores[found]
                teaches = snap.teaches(query.terms)
                if teaches is not None:
                    score[positions] -= teaches[positions]
                self.score = score
        q = query
        if q.online_only:
            conditions &= c["online"]
        if q.price_min is not None or q.price_max is not None:
            price_ok = np.zeros(n, dtype=bool)
            for currency in sorted(q.rates):
                code = snap.currency_codes.get(currency)
                if code is None:
                    continue
                lo, hi = q.price_bounds_in(currency)  # type: ignore[misc]
                part = (c["currency"] == code) & c["has_price"]
                if lo is not None:
                    part &= c["price_minor"] >= lo
                if hi is not None:
                    part &= c["price_minor"] <= hi
                price_ok |= part
            conditions &= price_ok
        self.chord2: np.ndarray | None = None
        if q.near is not None:
            from search.documents import EARTH_RADIUS_KM, unit_vector

            lat = q.near[0]
            band = np.degrees((q.radius_km or 0) / EARTH_RADIUS_KM) + 1e-6
            x, y, z = unit_vector(*q.near)
            # The latitude band first (cheap), the chord only for the documents inside it.
            with np.errstate(invalid="ignore"):
                band_ok = conditions & (c["lat"] >= lat - band) & (c["lat"] <= lat + band)
            inside = np.flatnonzero(band_ok)
            dx, dy, dz = c["geo_x"][inside] - x, c["geo_y"][inside] - y, c["geo_z"][inside] - z
            chord2 = dx * dx + dy * dy + dz * dz
            self.chord2 = np.full(n, np.inf)
            self.chord2[inside] = chord2
            conditions = np.zeros(n, dtype=bool)
            conditions[inside[chord2 <= q.max_chord**2 * (1 + 1e-12)]] = True
        if q.availability:
            wanted = [0, 0, 0]
            for bucket in q.availability:
                wanted[bucket // MASK_BITS] |= 1 << (bucket % MASK_BITS)
            available = np.zeros(n, dtype=bool)
            for part, mask in enumerate(wanted):
                if mask:
                    available |= (c[f"avail_{part}"] & np.int64(mask)) != 0
            conditions &= available
        self.base = conditions  # every condition but the facet filters
        self.filters = {facet: snap.facets[facet].matching(values, n) for facet, values in q.filters.items()}
        accepted = conditions.copy()
        for mask in self.filters.values():
            accepted &= mask
        self.accepted = accepted
        self.total = int(accepted.sum())

    def page(self) -> list[int]:
        """The doc keys of the requested page, in order."""
        q, snap, c = self.query, self.snap, self.snap.columns
        k = q.offset + q.per_page
        if q.offset >= self.total:
            return []
        candidates = np.flatnonzero(self.accepted)
        keys: list[np.ndarray]
        if q.sort == "relevance" and self.score is not None:
            # Scores are a few small tiers: one key, tier first, then the quality rank.
            keys = [self.score[candidates] * (snap.size + 1) + snap.quality_rank[candidates]]
        elif q.sort in ("relevance", "rating"):
            # The quality order is precomputed: the first k accepted documents along it.
            ordered = snap.quality_order[np.flatnonzero(self.accepted[snap.quality_order])[:k]]
            return c["doc_key"][ordered[q.offset : k]].tolist()
        elif q.sort in ("price_asc", "price_desc"):
            eur = np.full(snap.size, np.nan)
            for currency, code in snap.currency_codes.items():
                factor = q.eur_factor(currency)
                if factor is not None:
                    where = (c["currency"] == code) & c["has_price"]
                    eur[where] = c["price_minor"][where].astype(np.float64) * factor
            value = eur[candidates]
            if q.sort == "price_desc":
                value = -value
            keys = [np.where(np.isnan(value), np.inf, value), snap.key_rank[candidates]]
        elif q.sort == "newest":
            newest = c["newest"][candidates]
            keys = [np.where(c["has_newest"][candidates], -newest, _BIG), snap.key_rank[candidates]]
        else:  # distance
            assert self.chord2 is not None
            keys = [self.chord2[candidates], snap.key_rank[candidates]]
        ordered = _top(candidates, keys, k)
        return c["doc_key"][ordered[q.offset : k]].tolist()

    def facet_counts(self) -> dict[str, dict[str, int]]:
        """Disjunctive counts: facet F counts the documents that pass every condition and every
        other facet's filter (its own filter left out)."""
        snap = self.snap
        counts: dict[str, dict[str, int]] = {facet: {} for facet in FACETS}
        if not self.query.facets:
            return counts
        unconditioned = not self.filters and bool(self.base.sum() == snap.live)
        for facet in self.query.facets:
            if unconditioned:
                counts[facet] = dict(snap.totals[facet])
                continue
            if facet not in self.filters:
                accepted = self.accepted
            else:
                accepted = self.base.copy()
                for other, mask in self.filters.items():
                    if other != facet:
                        accepted &= mask
            accepted_n = self.total if accepted is self.accepted else int(accepted.sum())
            counted = snap.facets[facet].count_array(
                accepted, accepted_n, snap.total_arrays[facet], snap.alive, snap.live
            )
            counts[facet] = snap.facets[facet].named(counted)
        return {facet: dict(sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))) for facet, values in counts.items()}


def _top(candidates: np.ndarray, keys: list[np.ndarray], k: int) -> np.ndarray:
    """The first ``k`` candidates ordered by ``keys`` (most significant first): only those within
    the k-th smallest primary key are sorted in full."""
    if k < len(candidates):
        primary = keys[0]
        threshold = np.partition(primary, k - 1)[k - 1]
        keep = primary <= threshold
        candidates = candidates[keep]
        keys = [key[keep] for key in keys]
    order = np.lexsort(tuple(reversed(keys)))
    return candidates[order[:k]]


def changed_keys(profile_ids: Iterable[uuid.UUID]) -> list[int]:
    from search.documents import doc_key

    return [doc_key(p) for p in profile_ids]
