"""The SQL backend's in-memory snapshot stays exact: writes by another backend instance or another
process are seen by the next search (changed rows applied incrementally, many changes or an emptied
database reloaded), and every answer equals a brute-force search over the documents."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text

from marketplace.db import transaction, utcnow
from search import sql
from search.backend import SearchQuery, folded_words
from search.documents import FACETS, SearchDocument
from search.snapshot import decode_facets, encode_facets
from search.sql import CHANGES, DOCS, STATE, SqlSearchBackend
from tests.search.corpus import MADRID, RATES, brute_force, corpus, ids, profile_id

ROOT = Path(__file__).resolve().parents[2]

QUERIES = [
    {},
    {"filters": {"instrument": ["piano"]}},
    {"filters": {"instrument": ["piano", "guitar"], "language": ["es"]}},
    {"filters": {"genre": ["jazz"], "country": ["ES", "DE"]}, "online_only": True},
    {"q": "pia"},
    {"near": MADRID, "radius_km": 30, "sort": "distance"},
    {"price_min": 2000, "price_max": 6000, "currency": "EUR", "sort": "price_asc"},
    {"filters": {"format": ["in_person"]}, "sort": "newest"},
]


async def assert_exact(backend: SqlSearchBackend, docs: list[SearchDocument]) -> None:
    for params in QUERIES:
        query = SearchQuery(per_page=50, rates=RATES, **params)
        result = await backend.search(query)
        expected_ids, expected_facets = brute_force(docs, query)
        assert {h.profile_id for h in result.hits} == expected_ids, params
        assert result.total == len(expected_ids), params
        assert result.facets == {f: expected_facets[f] for f in FACETS}, params


def snapshot_of_this_process():
    (snap,) = sql._snapshots.values()
    return snap


def test_facet_values_round_trip():
    facets = {"instrument": ("piano", "guitar"), "city": ("3117735",), "genre": ()}
    encoded = encode_facets(facets)
    assert encoded.startswith("\x1f") and encoded.endswith("\x1f") and "\x1finstrument=piano\x1f" in encoded
    assert decode_facets(encoded) == {"instrument": ("piano", "guitar"), "city": ("3117735",)}
    assert encode_facets({}) == "" and decode_facets("") == {}


async def test_writes_of_another_instance_are_applied_incrementally_and_exactly():
    docs = corpus()
    reader, writer = SqlSearchBackend(), SqlSearchBackend()
    await writer.index(docs)
    await assert_exact(reader, docs)
    before = snapshot_of_this_process()
    assert before.live == before.size == len(docs)

    # One edit, one deletion, one new tutor: the reader re-reads just those rows.
    renamed = dataclasses.replace(docs[0], name="Anna Zimmermann", facets={**docs[0].facets, "genre": ("rock",)})
    newcomer = dataclasses.replace(docs[1], profile_id=uuid.uuid4(), slug="newcomer", name="New Comer")
    await writer.index([renamed, newcomer])
    await writer.delete([profile_id("tom")])
    now = [renamed, *(d for d in docs[1:] if d.profile_id != profile_id("tom")), newcomer]
    await assert_exact(reader, now)
    after = snapshot_of_this_process()
    assert after is not before and after.generation == before.generation + 2
    assert after.live == len(now) and after.size == len(docs) + 2  # old rows dead, new appended

    # A suspended tutor (deleted from the index) disappears from hits and from every count.
    await writer.delete([profile_id("anna")])
    result = await reader.search(SearchQuery(per_page=50, filters={"genre": ["rock"]}))
    assert profile_id("anna") not in {h.profile_id for h in result.hits}
    await assert_exact(reader, [d for d in now if d.profile_id != profile_id("anna")])


async def test_a_write_in_another_process_is_seen_by_the_next_search():
    docs = corpus()
    backend = SqlSearchBackend()
    await backend.index(docs)
    assert (await backend.search(SearchQuery(q="zimmermann"))).total == 0  # the snapshot is loaded
    script = textwrap.dedent(
        f"""
        import asyncio, dataclasses, uuid
        from marketplace.db import import_all_models
        import_all_models()
        from search.sql import SqlSearchBackend
        from tests.search.corpus import corpus, profile_id

        async def main():
            docs = {{d.profile_id: d for d in corpus()}}
            anna = docs[profile_id("anna")]
            backend = SqlSearchBackend()
            await backend.index([dataclasses.replace(anna, name="Anna Zimmermann", text="anna zimmermann piano",
                                                     facets={{**anna.facets, "language": ("ja",)}})])
            await backend.delete([profile_id("{"tom"}")])

        asyncio.run(main())
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()[-3000:]

    result = await backend.search(SearchQuery(q="zimmermann"))
    assert [h.profile_id for h in result.hits] == [profile_id("anna")]
    anna = next(d for d in docs if d.profile_id == profile_id("anna"))
    now = [
        dataclasses.replace(
            anna, name="Anna Zimmermann", text="anna zimmermann piano", facets={**anna.facets, "language": ("ja",)}
        ),
        *(d for d in docs if d.profile_id not in ids("anna", "tom")),
    ]
    await assert_exact(backend, now)


async def test_a_full_reindex_reloads_every_reader():
    docs = corpus()
    backend = SqlSearchBackend()
    await backend.index(docs[:2])
    await backend.search(SearchQuery())
    assert snapshot_of_this_process().live == 2
    stats = await backend.replace_all(docs, read_at=utcnow())
    assert stats == {"written": len(docs) - 2, "unchanged": 2}
    await assert_exact(backend, docs)
    # Nothing changed: a second full reindex writes nothing, and the reader keeps its snapshot.
    snap = snapshot_of_this_process()
    assert await backend.replace_all(docs, read_at=utcnow()) == {"written": 0, "unchanged": len(docs)}
    await assert_exact(backend, docs)
    assert snapshot_of_this_process().live == len(docs)
    assert snapshot_of_this_process().size == snap.size


async def test_many_changes_or_pruned_changes_mean_a_full_reload(monkeypatch):
    docs = corpus()
    backend = SqlSearchBackend()
    await backend.index(docs)
    await backend.search(SearchQuery())
    monkeypatch.setattr(sql, "KEEP_GENERATIONS", 2)
    monkeypatch.setattr(sql, "PRUNE_EVERY", 1)
    for doc in docs[:4]:  # four generations: the changes of the first ones are pruned
        await backend.index([dataclasses.replace(doc, rating=1.0)])
    async with transaction(write=False) as session:
        generation, pruned = (await session.execute(select(STATE.c.generation, STATE.c.pruned_through))).one()
        assert pruned == generation - 2
        assert (await session.execute(select(func.min(CHANGES.c.generation)))).scalar() > pruned
    now = [dataclasses.replace(d, rating=1.0) for d in docs[:4]] + docs[4:]
    await assert_exact(backend, now)
    snap = snapshot_of_this_process()
    assert snap.size == snap.live == len(docs)  # reloaded, not appended


async def test_an_emptied_database_is_not_served_from_memory():
    backend = SqlSearchBackend()
    await backend.index(corpus())
    assert (await backend.search(SearchQuery())).total == len(corpus())
    async with transaction() as session:  # what a test reset or a restore does: rows and state gone
        await session.execute(delete(DOCS))
        await session.execute(delete(CHANGES))
        await session.execute(delete(STATE))
    result = await backend.search(SearchQuery())
    assert result.total == 0 and result.hits == [] and all(not v for v in result.facets.values())
    await backend.index(corpus()[:3])
    assert (await backend.search(SearchQuery())).total == 3


async def test_generations_are_recorded_with_the_write():
    backend = SqlSearchBackend()
    docs = corpus()
    await backend.index(docs[:3])
    await backend.delete([docs[0].profile_id, uuid.uuid4()])
    async with transaction(write=False) as session:
        generation = (await session.execute(select(STATE.c.generation))).scalar_one()
        rows = (await session.execute(select(CHANGES.c.generation, CHANGES.c.profile_id))).all()
        hashes = (await session.execute(text("SELECT count(DISTINCT content_hash) FROM search_documents"))).scalar()
    assert {g for g, _ in rows} == {generation - 1, generation}
    assert {p for g, p in rows if g == generation - 1} == {d.profile_id for d in docs[:3]}
    assert hashes == 2


@pytest.mark.parametrize("per_page", [1, 3, 50])
async def test_pages_follow_the_sql_order_exactly(per_page: int):
    """Every sort, page by page, gives the same sequence as one big page (stable tie breaks)."""
    backend = SqlSearchBackend()
    await backend.index(corpus())
    for sort, extra in (
        ("relevance", {}),
        ("rating", {}),
        ("price_asc", {}),
        ("price_desc", {}),
        ("newest", {}),
        ("distance", {"near": MADRID, "radius_km": 500}),
        ("relevance", {"q": "pia"}),
    ):
        whole = await backend.search(SearchQuery(sort=sort, per_page=50, rates=RATES, **extra))
        paged: list[uuid.UUID] = []
        for page in range(1, whole.total // per_page + 2):
            result = await backend.search(SearchQuery(sort=sort, per_page=per_page, page=page, rates=RATES, **extra))
            paged += [h.profile_id for h in result.hits]
        assert paged == [h.profile_id for h in whole.hits], sort


@pytest.mark.parametrize("bitset_values", [0, 256])
def test_the_ways_of_counting_a_facet_agree(bitset_values, monkeypatch):
    """Counting the accepted documents' pairs, all pairs, the rejected ones subtracted from the
    totals, or popcounts of per-value bitsets: the snapshot picks by selectivity and by the number
    of values; each must give the same numbers."""
    import numpy as np

    from search import snapshot
    from search.snapshot import COLUMNS, Snapshot

    monkeypatch.setattr(snapshot, "BITSET_VALUES", bitset_values)

    rng = np.random.default_rng(7)
    rows = []
    for i in range(400):
        values = {
            "instrument": tuple(str(v) for v in rng.choice(12, size=int(rng.integers(0, 4)), replace=False)),
            "city": (str(int(rng.integers(0, 30))),),
        }
        row = dict.fromkeys(COLUMNS)
        row.update(doc_key=i + 1, currency="EUR", review_count=0, lessons_taught=0, online=True)
        row.update(avail_0=0, avail_1=0, avail_2=0, facet_values=encode_facets(values))
        rows.append(tuple(row[c] for c in COLUMNS))
    base = Snapshot.from_rows(rows, epoch="e", generation=1)
    snap = Snapshot.from_rows(rows[:50], epoch="e", generation=2, base=base, dead_keys=[60, 61])  # some dead rows
    for name in ("instrument", "city"):
        facet = snap.facets[name]
        for share in (0.05, 0.5, 0.95):
            accepted = (rng.random(snap.size) < share) & snap.alive
            expected = np.bincount(facet.code[accepted[facet.pos]], minlength=len(facet.values))
            sparse = facet._count_positions(np.flatnonzero(accepted))
            complement = snap.total_arrays[name] - facet._count_positions(np.flatnonzero(snap.alive & ~accepted))
            chosen = facet.count_array(accepted, int(accepted.sum()), snap.total_arrays[name], snap.alive, snap.live)
            assert sparse.tolist() == expected.tolist() == complement.tolist() == chosen.tolist()
            assert (facet.bits is not None) == bool(bitset_values)
    assert snap.live == 398 and snap.size == 450


async def test_the_web_start_up_loads_the_snapshot_before_the_first_search():
    from marketplace.app import _warm_up_search

    docs = corpus()
    await SqlSearchBackend().index(docs)
    sql._snapshots.clear()
    await _warm_up_search()
    snap = snapshot_of_this_process()
    assert snap.live == len(docs)
    await assert_exact(SqlSearchBackend(), docs)
    assert snapshot_of_this_process() is snap  # the first search reused it


async def test_relevance_puts_name_then_teaching_matches_first_then_quality():
    """Relevance on SQL: every word in the name first, then every word beginning one of the
    tutor's instruments or genres, then any other text match; the quality order breaks ties."""
    docs = corpus()
    backend = SqlSearchBackend()
    await backend.index(docs)
    query = SearchQuery(q="pia", sort="relevance", per_page=50)
    result = await backend.search(query)
    expected_ids, _facets = brute_force(docs, query)
    assert {h.profile_id for h in result.hits} == expected_ids and len(expected_ids) >= 2
    by_id = {d.profile_id: d for d in docs}
    teaches = [any(v.startswith("pia") for v in by_id[h.profile_id].facets.get("instrument", ())) for h in result.hits]
    assert teaches == sorted(teaches, reverse=True)  # every piano teacher before any other match

    # A mention in the text alone ranks after a teacher, whatever the ratings.
    mention = dataclasses.replace(
        docs[0],
        profile_id=uuid.uuid4(),
        slug="mentions-piano",
        name="Zed Zimmer",
        text=docs[0].text + " pianoforte",
        facets={**docs[0].facets, "instrument": ("violin",), "genre": ()},
        rating=5.0,
        review_count=999,
    )
    await backend.index([mention])
    hits = [h.profile_id for h in (await backend.search(query)).hits]
    assert hits[-1] == mention.profile_id

    # The name outranks both.
    named = dataclasses.replace(mention, profile_id=uuid.uuid4(), slug="pia-named", name="Pia Klein", rating=1.0)
    await backend.index([named])
    hits = [h.profile_id for h in (await backend.search(query)).hits]
    assert hits[0] == named.profile_id and hits[-1] == mention.profile_id


def test_the_lexicon_matches_word_prefixes_exactly():
    """The inverted words (PostgreSQL's lexemes): a prefix marks exactly the documents with a word
    beginning with it, across the base and the tail appended later, whatever the words' order."""
    import random

    import numpy as np

    from search.snapshot import Lexicon, _Postings

    rng = random.Random(11)
    alphabet = "abcü1"
    docs = [
        sorted({"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 5))) for _ in range(rng.randint(0, 6))})
        for _ in range(300)
    ]

    def postings(first: int, words_of: list[list[str]]) -> tuple[np.ndarray, list[str]]:
        pairs = [(first + i, w) for i, ws in enumerate(words_of) for w in rng.sample(ws, len(ws))]
        rng.shuffle(pairs)
        return np.asarray([p for p, _ in pairs], dtype=np.int32), [w for _, w in pairs]

    lexicon = Lexicon(_Postings.build(*postings(0, docs[:200])))
    lexicon = lexicon.extended(*postings(200, docs[200:250])).extended(*postings(250, docs[250:]))
    assert lexicon.base.words == sorted(lexicon.base.words) and lexicon.tail is not None
    prefixes = [
        "a",
        "ab",
        "abc",
        "ü",
        "1",
        "b1",
        "zz",
        "",
        "cccccc",
        "aü",
        *rng.sample(sorted({w for d in docs for w in d}), 30),
    ]
    for terms in [[p] for p in prefixes] + [["a", "b"], ["ab", "ü"], ["1", "c", "a"]]:
        got = np.flatnonzero(lexicon.matching(terms, len(docs))).tolist()
        expected = [i for i, words in enumerate(docs) if all(any(w.startswith(t) for w in words) for t in terms)]
        assert got == expected, terms


async def test_postgresql_words_match_in_memory_as_the_gin_index_does():
    """On PostgreSQL the snapshot inverts the stored ``tsvector`` lexemes, and plain words match
    there instead of by the GIN bitmap scan (which visits most of the table for a common word):
    same documents as ``tsv @@ to_tsquery('word:*')`` for every prefix, after incremental changes
    too. Other words (not plain ASCII letters and digits) still go to PostgreSQL. On SQLite, FTS5
    matches and the snapshot keeps no lexicon."""
    import numpy as np

    docs = corpus()
    backend = SqlSearchBackend()
    await backend.index(docs)
    await backend.search(SearchQuery(q="x"))
    async with transaction(write=False) as session:
        dialect = session.get_bind().dialect.name
    snap = snapshot_of_this_process()
    if dialect != "postgresql":
        assert snap.lexicon is None
        return
    assert snap.lexicon is not None and snap.lexicon.tail is None
    edited = dataclasses.replace(docs[0], text=docs[0].text + " technique x-ray 3d e-mail", name="Anna Zweig")
    newcomer = dataclasses.replace(docs[1], profile_id=uuid.uuid4(), slug="newcomer", text="teaching theory 101")
    await backend.index([edited, newcomer])
    await backend.delete([profile_id("tom")])
    await backend.search(SearchQuery(q="x"))
    snap = snapshot_of_this_process()
    assert snap.lexicon is not None and snap.lexicon.tail is not None  # applied incrementally
    assert snap.names is not None and snap.names.tail is not None
    now = [edited, *(d for d in docs[1:] if d.profile_id != profile_id("tom")), newcomer]
    key_of = {d.doc_key: d for d in now}
    for terms in (["anna"], ["zw"], ["muller"], ["garc"], ["j", "g"], ["new", "comer"], ["tom"]):
        named = np.flatnonzero(snap.names.matching(terms, snap.size) & snap.alive)
        mine = {int(k) for k in snap.columns["doc_key"][named]}
        words = {k: folded_words(d.name) for k, d in key_of.items()}
        assert mine == {k for k, ws in words.items() if all(any(w.startswith(t) for w in ws) for t in terms)}, terms
    async with transaction(write=False) as session:
        vocabulary = (await session.execute(text("SELECT word FROM ts_stat('SELECT tsv FROM search_fts')"))).scalars()
        prefixes = {w[:n] for w in vocabulary for n in (1, 2, 3, len(w))} | {"zzz", "10", "tea"}
        for prefix in sorted(prefixes):
            if not sql._PLAIN_TERM.fullmatch(prefix):
                continue
            gin = sql._parse_keys((await session.execute(sql._PG_KEYS, {"match": f"{prefix}:*"})).scalar())
            mine = snap.columns["doc_key"][np.flatnonzero(snap.lexicon.matching([prefix], snap.size) & snap.alive)]
            assert sorted(mine.tolist()) == sorted(gin.tolist()), prefix
    # Through the backend, plain and other words alike.
    for q in ("tech", "x", "3d", "mail", "muller", "anna zw", "garcía", "ωmega"):
        query = SearchQuery(q=q, per_page=50, rates=RATES)
        result = await backend.search(query)
        assert {h.profile_id for h in result.hits} == brute_force(now, query)[0], q


async def test_rows_appended_since_the_last_full_load_stay_few(monkeypatch):
    """New tutors only append (nothing dies), yet the appended rows (and the lexicon's tail, rebuilt
    with each change) must not grow without end: past the limit the next search loads in full."""
    docs = corpus()
    backend = SqlSearchBackend()
    await backend.index(docs)
    await backend.search(SearchQuery())
    monkeypatch.setattr(sql, "RELOAD_BEHIND", 2)
    now = list(docs)
    reloads = 0
    for i in range(len(docs) // 4 + 3):
        before = snapshot_of_this_process()
        appended = before.size - before.loaded_size
        now.append(dataclasses.replace(docs[i], profile_id=uuid.uuid4(), slug=f"new-{i}"))
        await backend.index([now[-1]])
        await assert_exact(backend, now)
        after = snapshot_of_this_process()
        if appended + 1 <= max(2, before.live // 4):
            assert (after.size, after.loaded_size) == (before.size + 1, before.loaded_size)  # appended
        else:
            assert after.size == after.loaded_size == after.live == len(now)  # loaded in full
            reloads += 1
    assert reloads >= 1


async def test_relevance_finds_the_name_whatever_its_accents():
    """ "muller" puts Anna Müller (name) before a better-rated tutor who only mentions Müller, on
    SQLite (FTS5's name column folds) and on PostgreSQL (the snapshot's folded name words)."""
    docs = corpus()
    backend = SqlSearchBackend()
    anna = next(d for d in docs if d.name == "Anna Müller")
    mention = dataclasses.replace(
        docs[1], profile_id=uuid.uuid4(), slug="mentions", text=docs[1].text + " pupil of muller", rating=5.0
    )
    await backend.index([*docs, mention])
    for q in ("muller", "Müller", "MULL", "anna mull"):
        hits = [h.profile_id for h in (await backend.search(SearchQuery(q=q, sort="relevance"))).hits]
        assert hits[0] == anna.profile_id, q
    assert mention.profile_id in [
        h.profile_id for h in (await backend.search(SearchQuery(q="muller", sort="relevance"))).hits
    ]
