"""Log-in, log-out, sessions, throttling and guards."""

import re

from tests.helpers import log_in, log_out, make_user, post_form


def session_cookie(client) -> str | None:
    return client.cookies.get("cadenza_session")


async def test_log_in_rotates_the_session_id_and_log_out_destroys_it(client, app):
    await make_user(email="ana@example.com")
    await client.get("/login")
    # Give the anonymous visitor a session first (a flash message does that).
    await post_form(client, "/forgot-password", {"email": "nobody@example.com"})
    before = session_cookie(client)
    response = await log_in(client, "ana@example.com", "correct horse battery")
    assert response.status_code == 200 and str(response.url).endswith("/dashboard")
    after = session_cookie(client)
    assert after and after != before
    from marketplace.accounts.sessions import make_session_store
    from marketplace.settings import get_settings

    store = make_session_store(get_settings())  # the app's own store lives on the server's loop
    assert await store.get(after) is not None
    await log_out(client)
    assert await store.get(after) is None
    page = await client.get("/dashboard", follow_redirects=False)
    assert page.status_code in (302, 303) and page.headers["location"].startswith("/login")


async def test_wrong_password_and_unknown_email_get_the_same_message(client):
    await make_user(email="ana@example.com")
    wrong = await log_in(client, "ana@example.com", "wrong password!")
    unknown = await log_in(client, "nobody@example.com", "wrong password!")
    assert wrong.status_code == unknown.status_code == 422
    message = "The email address or password is not correct."
    assert message in wrong.text and message in unknown.text


async def test_log_in_is_throttled_per_account(client, monkeypatch):
    await make_user(email="ana@example.com")
    for _ in range(5):
        assert (await log_in(client, "ana@example.com", "wrong password!")).status_code == 422
    blocked = await log_in(client, "ana@example.com", "correct horse battery")
    assert blocked.status_code == 429
    assert "Too many failed attempts" in blocked.text
    assert int(blocked.headers["retry-after"]) > 0


async def test_log_in_is_throttled_per_address_across_accounts(client):
    from marketplace.settings import get_settings

    limit = get_settings().login_max_failures_address
    for i in range(limit):
        await log_in(client, f"user{i}@example.com", "wrong password!")
    await make_user(email="fresh@example.com")
    blocked = await log_in(client, "fresh@example.com", "correct horse battery")
    assert blocked.status_code == 429


async def test_anonymous_visitor_is_sent_to_log_in_and_back_afterwards(client):
    await make_user(email="ana@example.com")
    response = await client.get("/account/settings", follow_redirects=False)
    assert response.status_code in (302, 303)
    assert response.headers["location"] == "/login?next=/account/settings"
    page = await client.get(response.headers["location"])
    assert 'name="next" value="/account/settings"' in page.text
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)
    back = await client.post(
        "/login",
        data={
            "_csrf_token": token,
            "email": "ana@example.com",
            "password": "correct horse battery",
            "next": "/account/settings",
        },
        follow_redirects=False,
    )
    assert back.headers["location"] == "/account/settings"


async def test_next_parameter_cannot_send_users_to_another_site(client):
    await make_user(email="ana@example.com")
    for target in ("https://evil.example", "//evil.example", "/\\evil.example"):
        response = await post_form(
            client,
            "/login",
            {"email": "ana@example.com", "password": "correct horse battery", "next": target},
            follow_redirects=False,
        )
        assert response.headers["location"] == "/dashboard", target
        await log_out(client)


async def test_student_gets_403_on_tutor_and_admin_pages(client):
    await make_user(email="ana@example.com")
    await log_in(client, "ana@example.com", "correct horse battery")
    for path in ("/tutor", "/admin", "/admin/outbox"):
        response = await client.get(path)
        assert response.status_code == 403, path
        assert "Access denied" in response.text


async def test_tutor_gets_tutor_pages_but_not_admin_pages(client):
    await make_user(email="tom@example.com", role="tutor")
    await log_in(client, "tom@example.com", "correct horse battery")
    assert (await client.get("/tutor")).status_code == 200
    assert (await client.get("/admin")).status_code == 403


async def test_admin_reads_the_outbox(client):
    await make_user(email="root@example.com", role="admin")
    await post_form(client, "/forgot-password", {"email": "root@example.com"})
    await log_in(client, "root@example.com", "correct horse battery")
    page = await client.get("/admin/outbox")
    assert page.status_code == 200
    assert "Reset your Cadenza password" in page.text


async def test_banned_user_cannot_log_in_and_loses_sessions(client):
    from sqlalchemy import update

    from marketplace.accounts.models import User
    from marketplace.db import transaction, utcnow

    await make_user(email="ana@example.com")
    await log_in(client, "ana@example.com", "correct horse battery")
    assert (await client.get("/dashboard")).status_code == 200
    async with transaction() as session:
        await session.execute(update(User).values(banned_at=utcnow()))
    assert (await client.get("/dashboard", follow_redirects=False)).status_code in (302, 303)
    assert (await log_in(client, "ana@example.com", "correct horse battery")).status_code == 422


async def test_forms_without_or_with_a_wrong_csrf_token_are_refused(client):
    await make_user(email="ana@example.com")
    await client.get("/login")
    missing = await client.post("/login", data={"email": "ana@example.com", "password": "correct horse battery"})
    wrong = await client.post(
        "/login", data={"_csrf_token": "0" * 64, "email": "ana@example.com", "password": "correct horse battery"}
    )
    for response in (missing, wrong):
        assert response.status_code == 403
        assert "Reload the page and try again" in response.text
    assert client.cookies.get("cadenza_session") is None


async def test_htmx_requests_carry_csrf_in_a_header(client):
    await make_user(email="ana@example.com")
    await log_in(client, "ana@example.com", "correct horse battery")
    page = await client.get("/account/settings")
    header_token = re.search(r'hx-headers=\'\{"x-csrftoken": "([^"]+)"\}\'', page.text).group(1)
    ok = await client.post(
        "/account/settings",
        data={"display_name": "Ana B", "timezone": "Europe/Berlin", "locale": "en"},
        headers={"HX-Request": "true", "x-csrftoken": header_token},
    )
    assert ok.status_code == 200
    assert 'id="settings-form"' in ok.text and "<html" not in ok.text  # the partial, not the page
    refused = await client.post(
        "/account/settings",
        data={"display_name": "Ana C", "timezone": "Europe/Berlin", "locale": "en"},
        headers={"HX-Request": "true"},
    )
    assert refused.status_code == 403
