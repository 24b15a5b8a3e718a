"""Messaging through the HTTP app and the services: threads, unread counts, masking, rate limits,
htmx partials and batched notification mail."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from sqlalchemy import select

from marketplace.db import session_factory, transaction, utcnow
from marketplace.messaging import services
from marketplace.messaging.models import Message, Thread
from tests.helpers import count_statements, csrf_token, log_in, log_out, make_user, outbox, post_form

PASSWORD = "correct horse battery"
HIDDEN = "[contact details hidden until your first paid lesson]"
HTMX = {"HX-Request": "true"}


async def people():
    student = await make_user(email="sam@example.com", name="Sam Student")
    tutor = await make_user(email="tia@example.com", role="tutor", name="Tia Tutor")
    return student, tutor


async def start(client, tutor_id) -> str:
    response = await post_form(
        client, "/messages/start", {"tutor_id": str(tutor_id)}, page="/messages", follow_redirects=False
    )
    assert response.status_code == 303, response.text
    path = response.headers["location"]
    assert re.fullmatch(r"/messages/[0-9a-f-]{36}", path)
    return path


async def send(client, path: str, body: str, **kw):
    kw.setdefault("follow_redirects", False)
    return await post_form(client, path, {"body": body}, page=path, **kw)


async def thread_of(student, tutor) -> Thread:
    async with session_factory()() as session:
        return (
            await session.execute(select(Thread).where(Thread.student_id == student.id, Thread.tutor_id == tutor.id))
        ).scalar_one()


async def direct_send(sender, thread_id, body: str):
    async with transaction() as session:
        user = await session.get(type(sender), sender.id)
        return await services.message_send(session, sender=user, thread_id=thread_id, body=body)


async def test_student_starts_a_thread_with_a_tutor_and_sends_a_message(client):
    _student, tutor = await people()
    await log_in(client, "sam@example.com", PASSWORD)
    path = await start(client, tutor.id)
    assert await start(client, tutor.id) == path  # the same thread for the same pair
    page = await client.get(path)
    assert page.status_code == 200 and "Conversation with Tia Tutor" in page.text
    assert 'aria-live="polite"' in page.text and 'hx-trigger="every 15s"' in page.text
    sent = await send(client, path, "  Hello, do you teach jazz piano?  ")
    assert sent.status_code == 303 and sent.headers["location"] == path
    page = await client.get(path)
    assert "Hello, do you teach jazz piano?" in page.text
    inbox = await client.get("/messages")
    assert inbox.status_code == 200 and "Tia Tutor" in inbox.text and path in inbox.text


async def test_the_tutor_sees_one_unread_message_and_reading_clears_it(client):
    student, tutor = await people()
    await log_in(client, "sam@example.com", PASSWORD)
    path = await start(client, tutor.id)
    await send(client, path, "Are you free on Tuesday?")
    await log_out(client)
    await log_in(client, "tia@example.com", PASSWORD)
    inbox = await client.get("/messages")
    assert "Sam Student" in inbox.text and "1 unread" in inbox.text
    badge = await client.get("/messages/unread")
    assert '<span class="badge">1' in badge.text
    async with session_factory()() as session:
        assert await services.unread_total(session, user=tutor) == 1
        assert await services.unread_total(session, user=student) == 0
    page = await client.get(path)
    assert "Are you free on Tuesday?" in page.text
    inbox = await client.get("/messages")
    assert " unread" not in inbox.text.replace("/messages/unread", "")
    async with session_factory()() as session:
        assert await services.unread_total(session, user=tutor) == 0
        [summary] = await services.threads_for_user(session, user=tutor)
        assert summary.unread == 0 and summary.other.id == student.id


async def test_contact_details_are_masked_until_the_pair_has_a_paid_lesson(client):
    from scheduling.services import booking_record_completed

    student, tutor = await people()
    await log_in(client, "sam@example.com", PASSWORD)
    path = await start(client, tutor.id)
    await send(client, path, "Mail me at sam@example.com or call +49 170 1234567, or pay paypal.me/sam. 45 € ok?")
    page = await client.get(path)
    assert "sam@example.com" not in page.text and "1234567" not in page.text and "paypal.me" not in page.text
    assert HIDDEN in page.text and "45 € ok?" in page.text
    assert "hidden until your first paid lesson" in page.text
    async with transaction() as session:
        start_at = utcnow() - timedelta(days=2)
        await booking_record_completed(
            session,
            tutor_id=tutor.id,
            student_id=student.id,
            starts_at=start_at,
            ends_at=start_at + timedelta(hours=1),
            price_amount=4500,
            currency="EUR",
        )
    page = await client.get(path)
    assert "sam@example.com" in page.text and "+49 170 1234567" in page.text and "paypal.me/sam" in page.text
    assert HIDDEN not in page.text


async def test_messaging_oneself_or_a_student_is_refused(client):
    _student, tutor = await people()
    other = await make_user(email="other@example.com", name="Other Student")
    await log_in(client, "tia@example.com", PASSWORD)
    myself = await post_form(client, "/messages/start", {"tutor_id": str(tutor.id)}, page="/messages")
    assert myself.status_code == 422 and "You cannot send messages to yourself." in myself.text
    await log_out(client)
    await log_in(client, "sam@example.com", PASSWORD)
    student = await post_form(client, "/messages/start", {"tutor_id": str(other.id)}, page="/messages")
    assert student.status_code == 422 and "only start a conversation with a tutor" in student.text
    nobody = await post_form(client, "/messages/start", {"tutor_id": str(uuid.uuid4())}, page="/messages")
    assert nobody.status_code == 404
    garbage = await post_form(client, "/messages/start", {"tutor_id": "not-an-id"}, page="/messages")
    assert garbage.status_code == 404
    async with session_factory()() as session:
        assert (await session.execute(select(Thread.id))).first() is None


async def test_a_banned_tutor_cannot_be_messaged(client):
    _student, tutor = await people()
    async with transaction() as session:
        from marketplace.accounts.models import User

        (await session.get(User, tutor.id)).banned_at = utcnow()
    await log_in(client, "sam@example.com", PASSWORD)
    refused = await post_form(client, "/messages/start", {"tutor_id": str(tutor.id)}, page="/messages")
    assert refused.status_code == 404


async def test_outsiders_get_404_for_other_peoples_threads(client):
    await people()
    await make_user(email="eve@example.com", name="Eve Outsider")
    await log_in(client, "sam@example.com", PASSWORD)
    path = await start(client, (await thread_pair_tutor()).id)
    await send(client, path, "private")
    await log_out(client)
    await log_in(client, "eve@example.com", PASSWORD)
    assert (await client.get(path)).status_code == 404
    assert (await client.get(f"{path}/list", headers=HTMX)).status_code == 404
    token = await csrf_token(client, "/messages")
    assert (await client.post(path, data={"_csrf_token": token, "body": "hi"})).status_code == 404
    assert (await client.get(f"/messages/{uuid.uuid4()}")).status_code == 404
    inbox = await client.get("/messages")
    assert "private" not in inbox.text and "Sam Student" not in inbox.text


async def thread_pair_tutor():
    from marketplace.accounts.models import User

    async with session_factory()() as session:
        return (await session.execute(select(User).where(User.email == "tia@example.com"))).scalar_one()


async def test_pages_need_a_login(client):
    response = await client.get("/messages", follow_redirects=False)
    assert response.status_code in (302, 303) and "/login?next=/messages" in response.headers["location"]


async def test_an_empty_or_too_long_message_gets_the_form_back(client):
    await people()
    await log_in(client, "sam@example.com", PASSWORD)
    path = await start(client, (await thread_pair_tutor()).id)
    empty = await send(client, path, "   \n  ")
    assert empty.status_code == 422 and "Write a message first." in empty.text
    long = await send(client, path, "x" * 4001)
    assert long.status_code == 422 and "at most 4000 characters" in long.text
    partial = await send(client, path, "", headers=HTMX)
    assert partial.status_code == 422 and "<html" not in partial.text and "Write a message first." in partial.text
    async with session_factory()() as session:
        assert (await session.execute(select(Message.id))).first() is None


async def test_the_rate_limit_answers_429_with_a_clear_message_and_retry_after(client):
    student, tutor = await people()
    await log_in(client, "sam@example.com", PASSWORD)
    path = await start(client, tutor.id)
    thread = await thread_of(student, tutor)
    for n in range(10):
        await direct_send(student, thread.id, f"message {n}")
    limited = await send(client, path, "one too many")
    assert limited.status_code == 429
    assert "You are sending messages too quickly" in limited.text
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    in_form = await send(client, path, "one too many", headers=HTMX)
    assert in_form.status_code == 422 and "sending messages too quickly" in in_form.text
    assert "one too many" in in_form.text and int(in_form.headers["retry-after"]) >= 1
    async with session_factory()() as session:
        bodies = list((await session.execute(select(Message.body))).scalars())
    assert len(bodies) == 10 and "one too many" not in bodies


async def test_the_daily_limit_counts_older_messages_too(client):
    student, tutor = await people()
    async with transaction() as session:
        thread = await services.thread_start(session, student=student, tutor_user_id=tutor.id)
        earlier = utcnow() - timedelta(hours=3)
        session.add_all(
            Message(thread_id=thread.id, sender_id=student.id, body=f"m{n}", created_at=earlier) for n in range(200)
        )
    async with transaction() as session:
        try:
            await services.message_send(session, sender=student, thread_id=thread.id, body="again")
        except services.TooManyRequests as exc:
            assert 20 * 3600 < exc.retry_after <= 21 * 3600
        else:
            raise AssertionError("the daily limit was not applied")


async def test_html_and_script_in_a_message_are_escaped_and_line_breaks_kept(client):
    await people()
    await log_in(client, "sam@example.com", PASSWORD)
    path = await start(client, (await thread_pair_tutor()).id)
    await send(client, path, '<script>alert("x")</script>\n<img src=x onerror=alert(1)>\nline three')
    page = await client.get(path)
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;\n&lt;img src=x onerror=alert(1)&gt;\nline three" in page.text
    )
    assert 'class="message-body"' in page.text


async def test_an_htmx_send_returns_the_list_and_a_cleared_form(client):
    await people()
    await log_in(client, "sam@example.com", PASSWORD)
    path = await start(client, (await thread_pair_tutor()).id)
    response = await send(client, path, "Sent with htmx", headers=HTMX)
    assert response.status_code == 200
    assert "<html" not in response.text and 'id="conversation"' in response.text
    assert "Sent with htmx" in response.text
    assert re.search(r'<textarea[^>]*name="body"[^>]*>\s*</textarea>', response.text)


async def test_polling_returns_the_list_only_when_something_changed(client):
    student, tutor = await people()
    await log_in(client, "sam@example.com", PASSWORD)
    path = await start(client, tutor.id)
    await send(client, path, "first")
    listing = await client.get(f"{path}/list", headers=HTMX)
    assert listing.status_code == 200 and "<html" not in listing.text and "first" in listing.text
    version = re.search(r"/list\?v=(\d+)", listing.text).group(1)
    unchanged = await client.get(f"{path}/list?v={version}", headers=HTMX)
    assert unchanged.status_code == 204
    await direct_send(tutor, (await thread_of(student, tutor)).id, "a reply")
    changed = await client.get(f"{path}/list?v={version}", headers=HTMX)
    assert changed.status_code == 200 and "a reply" in changed.text
    full = await client.get(f"{path}/list")
    assert full.status_code == 200 and "<html" in full.text and "a reply" in full.text


async def test_a_post_without_the_csrf_token_is_refused(client):
    await people()
    await log_in(client, "sam@example.com", PASSWORD)
    path = await start(client, (await thread_pair_tutor()).id)
    refused = await client.post(path, data={"body": "no token"})
    assert refused.status_code == 403
    refused = await client.post("/messages/start", data={"tutor_id": str(uuid.uuid4())})
    assert refused.status_code == 403


async def test_three_messages_make_one_notification_mail_and_a_second_run_sends_nothing(scheduled_notifications):
    scheduled = scheduled_notifications
    student, tutor = await people()
    async with transaction() as session:
        thread = await services.thread_start(session, student=student, tutor_user_id=tutor.id)
    for body in ("one", "two: write to sam@example.com", "three"):
        await direct_send(student, thread.id, body)
    assert len(scheduled) == 1 and scheduled[0]["args"] == (str(thread.id), str(tutor.id))
    assert scheduled[0]["delay"] is None  # no delay in these tests; ten minutes by default
    async with transaction() as session:
        mail = await services.thread_notify(session, thread_id=thread.id, recipient_id=tutor.id)
    assert mail is not None
    async with transaction() as session:
        assert await services.thread_notify(session, thread_id=thread.id, recipient_id=tutor.id) is None
    [message] = await outbox("tia@example.com")
    assert message.subject == "3 new messages from Sam Student on Cadenza"
    assert "one" in message.body_text and "three" in message.body_text
    assert "sam@example.com" not in message.body_text and HIDDEN in message.body_text
    assert f"http://testserver.local/messages/{thread.id}" in message.body_text
    assert await outbox("sam@example.com") == []
    # A new message after the mail starts a new batch.
    await direct_send(student, thread.id, "four")
    assert len(scheduled) == 2
    async with transaction() as session:
        again = await services.thread_notify(session, thread_id=thread.id, recipient_id=tutor.id)
    assert again is not None and "four" in again.body_text and "three" not in again.body_text


async def test_the_notification_waits_ten_minutes_by_default(scheduled_notifications, monkeypatch):
    from marketplace.messaging.services import NOTIFY_DELAY

    monkeypatch.setattr(services, "NOTIFY_DELAY", timedelta(minutes=10))
    student, tutor = await people()
    async with transaction() as session:
        thread = await services.thread_start(session, student=student, tutor_user_id=tutor.id)
    await direct_send(student, thread.id, "hello")
    assert [kw["delay"] for kw in scheduled_notifications] == [600_000]
    assert NOTIFY_DELAY == timedelta(0)  # what this test module runs with


async def test_a_lost_notification_is_scheduled_again_by_a_later_message(scheduled_notifications):
    student, tutor = await people()
    async with transaction() as session:
        thread = await services.thread_start(session, student=student, tutor_user_id=tutor.id)
        old = utcnow() - timedelta(hours=2)
        session.add(Message(thread_id=thread.id, sender_id=student.id, body="never mailed", created_at=old))
    await direct_send(student, thread.id, "hello again")
    assert len(scheduled_notifications) == 1
    async with transaction() as session:
        mail = await services.thread_notify(session, thread_id=thread.id, recipient_id=tutor.id)
    assert "never mailed" in mail.body_text and "hello again" in mail.body_text


async def test_replies_go_both_ways_and_only_the_other_side_is_notified(scheduled_notifications):
    student, tutor = await people()
    async with transaction() as session:
        thread = await services.thread_start(session, student=student, tutor_user_id=tutor.id)
    await direct_send(student, thread.id, "question")
    await direct_send(tutor, thread.id, "answer")
    assert [kw["args"][1] for kw in scheduled_notifications] == [str(tutor.id), str(student.id)]
    async with session_factory()() as session:
        assert await services.unread_total(session, user=student) == 1
        assert await services.unread_total(session, user=tutor) == 0  # replying means having read


async def test_nothing_is_mailed_about_messages_already_read(client):
    student, tutor = await people()
    async with transaction() as session:
        thread = await services.thread_start(session, student=student, tutor_user_id=tutor.id)
    await direct_send(student, thread.id, "hello")
    async with transaction() as session:
        await services.thread_messages(session, viewer=tutor, thread_id=thread.id)
    async with transaction() as session:
        assert await services.thread_notify(session, thread_id=thread.id, recipient_id=tutor.id) is None
    assert await outbox("tia@example.com") == []


async def test_the_notify_job_mails_the_recipient_in_their_language(client, drain_jobs):
    student = await make_user(email="sam@example.com", name="Sam Student")
    tutor = await make_user(email="tobi@example.com", role="tutor", name="Tobi Lehrer", locale="de", tz="Europe/Berlin")
    await log_in(client, "sam@example.com", PASSWORD)
    path = await start(client, tutor.id)
    await send(client, path, "Hallo Tobi!")
    drain_jobs()
    mails = await outbox("tobi@example.com")
    assert len(mails) == 1
    assert "Sam Student" in mails[0].subject and "Hallo Tobi!" in mails[0].body_text
    assert path in mails[0].body_text
    thread = await thread_of(student, tutor)
    assert thread.tutor_notified_at is not None and thread.student_notified_at is None


async def test_the_inbox_needs_the_same_number_of_queries_for_many_threads(client):
    student = await make_user(email="sam@example.com", name="Sam Student")
    tutors = [await make_user(email=f"t{n}@example.com", role="tutor", name=f"Tutor {n}") for n in range(8)]

    async def converse(tutor):
        async with transaction() as session:
            thread = await services.thread_start(session, student=student, tutor_user_id=tutor.id)
        await direct_send(tutor, thread.id, f"hello from {tutor.display_name}")

    await converse(tutors[0])
    await log_in(client, "sam@example.com", PASSWORD)
    await client.get("/messages")  # warm caches
    with count_statements() as few:
        page = await client.get("/messages")
    assert "Tutor 0" in page.text
    for tutor in tutors[1:]:
        await converse(tutor)
    with count_statements() as many:
        page = await client.get("/messages")
    assert "Tutor 7" in page.text and page.text.count("1 unread") == 8
    assert len(many) == len(few), (len(few), len(many))
