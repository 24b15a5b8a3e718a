"""The admin moderation queue, profile review with the difference, actions, and the audit log."""

from sqlalchemy import select

from marketplace.db import session_factory
from marketplace.tutors.models import ProfileStatus, TutorProfile
from tests.helpers import count_statements, log_in, make_user, outbox, post_form
from tests.tutors_profiles.test_moderation import COMPLETE_FORMS, fill, submit


async def pending_tutor(n: int):
    tutor = await make_user(email=f"tutor{n}@example.com", role="tutor", name=f"Tutor Number{n}")
    profile = await fill(tutor)
    await submit(tutor)
    return tutor, profile


async def admin_client(client):
    await make_user(email="root@example.com", role="admin")
    await log_in(client, "root@example.com", "correct horse battery")


async def test_queue_lists_waiting_profiles_with_a_constant_number_of_queries(client):
    await admin_client(client)
    await pending_tutor(1)
    await client.get("/admin/profiles")  # warm caches (templates, gazetteer)
    with count_statements() as few:
        page = await client.get("/admin/profiles")
    assert page.status_code == 200 and "tutor1@example.com" in page.text
    for n in range(2, 12):
        await pending_tutor(n)
    with count_statements() as many:
        page = await client.get("/admin/profiles")
    assert "tutor11@example.com" in page.text
    assert len(many) == len(few), (len(few), len(many))


async def test_admin_reviews_the_difference_and_approves_then_the_audit_log_shows_it(client):
    await admin_client(client)
    tutor, profile = await pending_tutor(1)
    detail = await client.get(f"/admin/profiles/{profile.id}")
    assert detail.status_code == 200 and "Jazz piano for adult beginners" in detail.text
    approved = await post_form(
        client, f"/admin/profiles/{profile.id}/approve", {}, page=f"/admin/profiles/{profile.id}"
    )
    assert approved.status_code == 200 and "The profile was approved." in approved.text
    await fill(tutor, {"basics": {"display_name": ["Tutor Number1"], "headline": ["Organ and piano"]}})
    await submit(tutor)
    diff = await client.get(f"/admin/profiles/{profile.id}")
    assert "<del>Jazz piano for adult beginners</del>" in diff.text and "<ins>Organ and piano</ins>" in diff.text
    log = await client.get("/admin/audit?action=profile.approve")
    assert log.status_code == 200 and "profile.approve" in log.text and str(profile.id) in log.text
    assert "root@example.com" in log.text
    assert "1 entry" in log.text


async def test_reject_and_suspend_need_a_reason(client):
    await admin_client(client)
    _tutor, profile = await pending_tutor(1)
    page = f"/admin/profiles/{profile.id}"
    empty = await post_form(client, f"{page}/reject", {"reason": "  "}, page=page)
    assert empty.status_code == 422 and "Give a reason" in empty.text
    async with session_factory()() as session:
        assert (await session.get(TutorProfile, profile.id)).status == ProfileStatus.pending
    rejected = await post_form(client, f"{page}/reject", {"reason": "Photo missing"}, page=page)
    assert rejected.status_code == 200
    assert any("Photo missing" in m.body_text for m in await outbox("tutor1@example.com"))
    suspended = await post_form(client, f"{page}/suspend", {"reason": "Reported"}, page=page)
    assert suspended.status_code == 200
    async with session_factory()() as session:
        row = (await session.execute(select(TutorProfile.status).where(TutorProfile.id == profile.id))).scalar_one()
    assert row == ProfileStatus.suspended
    assert (await post_form(client, f"{page}/explode", {}, page=page)).status_code == 404


async def test_students_and_tutors_cannot_moderate(client):
    await pending_tutor(1)
    await log_in(client, "tutor1@example.com", "correct horse battery")
    assert (await client.get("/admin/profiles")).status_code == 403
    assert (await client.get("/admin/audit")).status_code == 403
    assert COMPLETE_FORMS  # the shared fixture data stays importable
