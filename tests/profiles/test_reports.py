"""Reports: signed-in people report a profile, a review or a message; admins work the queue."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from marketplace.admin.models import Report, ReportStatus, ReportTarget
from marketplace.audit import AuditEntry
from marketplace.db import session_factory, transaction, utcnow
from marketplace.messaging.models import Message, Thread
from tests.helpers import count_statements, log_in, make_user, post_form
from tests.profiles.support import PASSWORD, add_reviews, admin_user, approved_tutor


async def reports() -> list[Report]:
    async with session_factory()() as session:
        return list((await session.execute(select(Report).order_by(Report.created_at))).scalars())


async def signed_in(client, email="stu@example.com", role="student"):
    user = await make_user(email=email, role=role, name="Stu Dent")
    await log_in(client, email, PASSWORD)
    return user


async def test_a_profile_is_reported_once_and_a_second_report_is_refused_politely(client):
    _tutor, profile = await approved_tutor()
    await signed_in(client)
    page = f"/tutors/{profile.slug}"
    html = (await client.get(page)).text
    assert "<summary>Report this profile</summary>" in html and '<label for="report-profile">' in html
    data = {"target_type": "profile", "target_id": str(profile.id), "reason": "Asks to be paid outside."}
    sent = await post_form(client, "/reports", {**data, "next": page}, page=page, follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"] == page
    assert "Thank you for your report." in (await client.get(page)).text
    again = await post_form(client, "/reports", data, page=page)  # no next: back to the target
    assert again.status_code == 200 and str(again.url).endswith(page)
    assert "You have already reported this." in again.text
    (report,) = await reports()
    assert report.target_type == ReportTarget.profile and report.target_id == profile.id
    assert report.reason == "Asks to be paid outside." and report.status == ReportStatus.open


async def test_a_review_is_reported_from_the_form_next_to_it(client):
    tutor, profile = await approved_tutor()
    (review,) = await add_reviews(tutor, 1)
    await signed_in(client, "reader@example.com")
    page = f"/tutors/{profile.slug}"
    html = (await client.get(page)).text
    assert f'<label for="report-review-{review.id}">' in html
    sent = await post_form(
        client,
        "/reports",
        {"target_type": "review", "target_id": str(review.id), "reason": "Fake review", "next": "//evil.example"},
        page=page,
        follow_redirects=False,
    )
    assert sent.status_code == 303 and sent.headers["location"] == f"{page}#review-{review.id}"
    assert [r.target_type for r in await reports()] == [ReportTarget.review]


async def test_bad_reasons_unknown_targets_and_visitors_are_refused(client):
    _tutor, profile = await approved_tutor()
    page = f"/tutors/{profile.slug}"
    visitor = await post_form(
        client, "/reports", {"target_type": "profile", "target_id": str(profile.id), "reason": "Spam spam"}, page=page
    )
    assert visitor.url.path == "/login"
    await signed_in(client)
    short = await post_form(
        client, "/reports", {"target_type": "profile", "target_id": str(profile.id), "reason": " no "}, page=page
    )
    assert short.status_code == 422 and "Describe the problem in 5 to 1000 characters." in short.text
    assert 'aria-invalid="true"' in short.text and '<label for="report-reason">' in short.text
    long = await post_form(
        client, "/reports", {"target_type": "profile", "target_id": str(profile.id), "reason": "x" * 1001}, page=page
    )
    assert long.status_code == 422
    for target_type, target_id in (
        ("profile", str(uuid.uuid4())),
        ("review", str(uuid.uuid4())),
        ("message", str(uuid.uuid4())),
        ("profile", "not-a-uuid"),
    ):
        missing = await post_form(
            client, "/reports", {"target_type": target_type, "target_id": target_id, "reason": "Spam spam"}, page=page
        )
        assert missing.status_code == 404, (target_type, target_id)
    odd = await post_form(
        client, "/reports", {"target_type": "booking", "target_id": str(profile.id), "reason": "Spam spam"}, page=page
    )
    assert odd.status_code == 422
    assert await reports() == []


async def test_only_the_people_of_a_thread_report_its_messages(client):
    tutor, _profile = await approved_tutor()
    student = await make_user(email="stu@example.com", name="Stu Dent")
    async with transaction() as session:
        thread = Thread(student_id=student.id, tutor_id=tutor.id, last_message_at=utcnow())
        session.add(thread)
        await session.flush()
        message = Message(thread_id=thread.id, sender_id=tutor.id, body="Pay me by bank transfer instead.")
        session.add(message)
    data = {"target_type": "message", "target_id": str(message.id), "reason": "Off-platform payment", "next": "/"}
    await signed_in(client, "nosy@example.com")
    assert (await post_form(client, "/reports", data, page="/")).status_code == 404
    await log_in(client, "stu@example.com", PASSWORD)
    sent = await post_form(client, "/reports", data, page="/", follow_redirects=False)
    assert sent.status_code == 303
    (report,) = await reports()
    assert report.target_type == ReportTarget.message and report.target_id == message.id


async def test_an_admin_resolves_and_dismisses_reports_and_both_are_audited(client):
    tutor, profile = await approved_tutor()
    (review,) = await add_reviews(tutor, 1)
    await signed_in(client)
    page = f"/tutors/{profile.slug}"
    for target_type, target_id in (("profile", profile.id), ("review", review.id)):
        data = {"target_type": target_type, "target_id": str(target_id), "reason": f"Bad {target_type}"}
        await post_form(client, "/reports", data, page=page)
    first, second = await reports()
    await admin_user()
    await log_in(client, "root@example.com", PASSWORD)
    queue = await client.get("/admin/reports")
    assert queue.status_code == 200 and "2 open reports" in queue.text
    assert "stu@example.com" in queue.text and "Bad profile" in queue.text and "Bad review" in queue.text
    assert f'href="/admin/profiles/{profile.id}"' in queue.text and f"#review-{review.id}" in queue.text
    resolved = await post_form(
        client, f"/admin/reports/{first.id}/resolve", {"note": "Profile suspended."}, page="/admin/reports"
    )
    assert resolved.status_code == 200 and "The report was resolved." in resolved.text
    dismissed = await post_form(client, f"/admin/reports/{second.id}/dismiss", {}, page="/admin/reports")
    assert "The report was dismissed." in dismissed.text
    again = await post_form(client, f"/admin/reports/{second.id}/resolve", {}, page="/admin/reports")
    assert "This report was already handled." in again.text
    too_long = await post_form(
        client, f"/admin/reports/{first.id}/resolve", {"note": "x" * 1001}, page="/admin/reports"
    )
    assert too_long.status_code == 422
    done = {r.id: r for r in await reports()}
    assert done[first.id].status == ReportStatus.resolved and done[first.id].resolution == "Profile suspended."
    assert done[second.id].status == ReportStatus.dismissed and done[second.id].resolved_at is not None
    async with session_factory()() as session:
        entries = list((await session.execute(select(AuditEntry).where(AuditEntry.target_type == "report"))).scalars())
    assert {(e.action, e.target_id, e.reason) for e in entries} == {
        ("report.resolve", str(first.id), "Profile suspended."),
        ("report.dismiss", str(second.id), None),
    }
    assert all(e.before == {"status": "open"} for e in entries)
    # Students cannot open the queue or act on it.
    await log_in(client, "stu@example.com", PASSWORD)
    assert (await client.get("/admin/reports")).status_code == 403


async def test_the_queue_needs_the_same_number_of_statements_for_1_and_10_reports(client):
    tutor, profile = await approved_tutor()
    reviews = await add_reviews(tutor, 3)
    admin = await admin_user()
    reporters = [await make_user(email=f"rep{n}@example.com") for n in range(10)]

    async def report(n: int) -> None:
        kind, target = [("profile", profile.id), ("review", reviews[n % 3].id)][n % 2]
        async with transaction() as session:
            session.add(
                Report(reporter_id=reporters[n].id, target_type=ReportTarget(kind), target_id=target, reason=f"R{n}")
            )

    await report(0)
    await log_in(client, admin.email, PASSWORD)
    await client.get("/admin/reports")
    with count_statements() as few:
        page = await client.get("/admin/reports")
    assert "rep0@example.com" in page.text
    for n in range(1, 10):
        await report(n)
    with count_statements() as many:
        page = await client.get("/admin/reports")
    assert "rep9@example.com" in page.text and "10 open reports" in page.text
    assert len(many) == len(few), (len(few), len(many))
