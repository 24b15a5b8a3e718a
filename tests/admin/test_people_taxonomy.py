"""Admins find people, ban and unban them, and edit the taxonomy; all of it audited."""

from sqlalchemy import select

from marketplace.audit import AuditEntry
from marketplace.db import session_factory
from marketplace.tutors.models import TaxonomyKind, TaxonomyTerm
from tests.helpers import log_in, make_user, post_form


async def as_admin(client):
    admin = await make_user(email="root@example.com", role="admin")
    await log_in(client, "root@example.com", "correct horse battery")
    return admin


async def test_admin_bans_a_user_from_the_people_page_and_the_ban_is_audited(client):
    await as_admin(client)
    ana = await make_user(email="ana@example.com", name="Ana Lopez")
    found = await client.get("/admin/users?q=lopez")
    assert found.status_code == 200 and "ana@example.com" in found.text and "root@example.com" not in found.text
    banned = await post_form(client, f"/admin/users/{ana.id}/ban", {"reason": "spam"}, page="/admin/users")
    assert banned.status_code == 200 and "ana@example.com was banned." in banned.text
    async with session_factory()() as session:
        entry = (await session.execute(select(AuditEntry).where(AuditEntry.action == "user.ban"))).scalar_one()
    assert entry.reason == "spam" and entry.target_id == str(ana.id)
    no_reason = await post_form(client, f"/admin/users/{ana.id}/unban", {"reason": ""}, page="/admin/users")
    assert no_reason.status_code == 200  # lifting a ban needs no reason


async def test_ban_without_a_reason_is_refused(client):
    await as_admin(client)
    ana = await make_user(email="ana@example.com")
    response = await post_form(client, f"/admin/users/{ana.id}/ban", {"reason": ""}, page="/admin/users")
    assert response.status_code == 422 and "Give a reason" in response.text


async def test_admin_edits_names_adds_and_retires_taxonomy_terms(client):
    await as_admin(client)
    page = await client.get("/admin/taxonomy?kind=instrument")
    assert page.status_code == 200 and "Klavier" in page.text
    async with session_factory()() as session:
        piano = (await session.execute(select(TaxonomyTerm).where(TaxonomyTerm.slug == "piano"))).scalar_one()
    saved = await post_form(
        client,
        "/admin/taxonomy",
        {"term_id": str(piano.id), "kind": "instrument", "name_en": "Piano", "name_de": "Klavier (Flügel)"},
        page="/admin/taxonomy",
    )
    assert saved.status_code == 200 and "Klavier (Flügel)" in saved.text
    added = await post_form(
        client,
        "/admin/taxonomy",
        {"kind": "instrument", "slug": "theremin", "active": "1", "name_en": "Theremin", "name_de": "Theremin"},
        page="/admin/taxonomy",
    )
    assert added.status_code == 200
    duplicate = await post_form(
        client,
        "/admin/taxonomy",
        {"kind": "instrument", "slug": "theremin", "name_en": "Theremin", "name_de": "Theremin"},
        page="/admin/taxonomy",
    )
    assert duplicate.status_code == 409
    bad = await post_form(
        client,
        "/admin/taxonomy",
        {"kind": "instrument", "slug": "Bad Slug!", "name_en": "", "name_de": "<b>x</b>"},
        page="/admin/taxonomy",
    )
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text
    async with session_factory()() as session:
        piano = await session.get(TaxonomyTerm, piano.id)
        assert piano.active is False  # the edit form above did not tick "offered"
        count = len(
            (
                await session.execute(
                    select(TaxonomyTerm).where(
                        TaxonomyTerm.kind == TaxonomyKind.instrument, TaxonomyTerm.slug == "theremin"
                    )
                )
            )
            .scalars()
            .all()
        )
        actions = (await session.execute(select(AuditEntry.action))).scalars().all()
    assert count == 1 and actions.count("taxonomy.save") == 2
