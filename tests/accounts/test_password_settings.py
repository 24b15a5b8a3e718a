"""Password reset, password change, settings and the language switcher."""

import re

from tests.helpers import csrf_token, last_link, log_in, log_out, make_user, outbox, post_form


async def test_reset_request_answers_the_same_for_known_and_unknown_addresses(client):
    await make_user(email="ana@example.com")
    known = await post_form(client, "/forgot-password", {"email": "ana@example.com"})
    unknown = await post_form(client, "/forgot-password", {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 200
    strip = lambda html: re.sub(r'value="[0-9a-f]{20,}"|"x-csrftoken": "[0-9a-f]+"', "", html)  # noqa: E731
    assert strip(known.text) == strip(unknown.text)
    assert len(await outbox("ana@example.com")) == 1
    assert await outbox("nobody@example.com") == []


async def test_password_reset_sets_the_new_password_once_and_ends_sessions(client, app):
    from litestar.testing import AsyncTestClient

    from marketplace.app import create_app  # a second web process: one app per event loop

    await make_user(email="ana@example.com")
    async with AsyncTestClient(app=create_app(), base_url="http://testserver.local") as other_device:
        await log_in(other_device, "ana@example.com", "correct horse battery")
        assert (await other_device.get("/dashboard")).status_code == 200
        await post_form(client, "/forgot-password", {"email": "ana@example.com"})
        link = await last_link("ana@example.com", "/reset-password")
        token = link.split("token=")[1]
        mismatch = await post_form(
            client,
            "/reset-password",
            {"token": token, "password": "new secret phrase", "password_confirm": "x"},
            page=link,
        )
        assert mismatch.status_code == 422 and "do not match" in mismatch.text
        done = await post_form(
            client,
            "/reset-password",
            {"token": token, "password": "new secret phrase", "password_confirm": "new secret phrase"},
            page=link,
        )
        assert done.status_code == 200 and str(done.url).endswith("/login")
        reused = await post_form(
            client,
            "/reset-password",
            {"token": token, "password": "other secret phrase", "password_confirm": "other secret phrase"},
            page=link,
        )
        assert reused.status_code == 400 and "invalid or has expired" in reused.text
        # The session on the other device ended with the reset.
        assert (await other_device.get("/dashboard", follow_redirects=False)).status_code in (302, 303)
    assert (await log_in(client, "ana@example.com", "correct horse battery")).status_code == 422
    assert str((await log_in(client, "ana@example.com", "new secret phrase")).url).endswith("/dashboard")


async def test_reset_with_a_weak_password_keeps_the_token_usable(client):
    await make_user(email="ana@example.com")
    await post_form(client, "/forgot-password", {"email": "ana@example.com"})
    link = await last_link("ana@example.com", "/reset-password")
    token = link.split("token=")[1]
    weak = await post_form(
        client, "/reset-password", {"token": token, "password": "short", "password_confirm": "short"}, page=link
    )
    assert weak.status_code == 422 and "at least 10 characters" in weak.text
    ok = await post_form(
        client,
        "/reset-password",
        {"token": token, "password": "a much better one", "password_confirm": "a much better one"},
        page=link,
    )
    assert ok.status_code == 200


async def test_password_change_needs_the_current_password_and_ends_other_sessions(client, app):
    from litestar.testing import AsyncTestClient

    from marketplace.app import create_app  # a second web process: one app per event loop

    await make_user(email="ana@example.com")
    await log_in(client, "ana@example.com", "correct horse battery")
    async with AsyncTestClient(app=create_app(), base_url="http://testserver.local") as other:
        await log_in(other, "ana@example.com", "correct horse battery")
        wrong = await post_form(
            client,
            "/account/password",
            {
                "current_password": "nope nope nope",
                "new_password": "brand new phrase",
                "new_password_confirm": "brand new phrase",
            },
            page="/account/settings",
        )
        assert wrong.status_code == 422 and "current password is not correct" in wrong.text
        assert (await other.get("/dashboard")).status_code == 200
        ok = await post_form(
            client,
            "/account/password",
            {
                "current_password": "correct horse battery",
                "new_password": "brand new phrase",
                "new_password_confirm": "brand new phrase",
            },
            page="/account/settings",
        )
        assert ok.status_code == 200 and "logged out everywhere else" in ok.text
        assert (await client.get("/dashboard")).status_code == 200  # this session lives on
        assert (await other.get("/dashboard", follow_redirects=False)).status_code in (302, 303)


async def test_settings_save_name_zone_and_language_and_refuse_bad_values(client):
    await make_user(email="ana@example.com")
    await log_in(client, "ana@example.com", "correct horse battery")
    bad = await post_form(client, "/account/settings", {"display_name": "", "timezone": "Nowhere/City", "locale": "fr"})
    assert bad.status_code == 422
    for message in ("Enter the name others will see", "Choose a time zone", "Choose a language"):
        assert message in bad.text
    ok = await post_form(
        client, "/account/settings", {"display_name": "Ana Lopez", "timezone": "America/New_York", "locale": "de"}
    )
    assert ok.status_code == 200
    assert 'lang="de"' in ok.text and "Einstellungen" in ok.text
    assert 'value="America/New_York" selected' in ok.text


async def test_language_switcher_works_for_visitors_and_users(client):
    switched = await post_form(client, "/locale", {"locale": "de", "next": "/login"}, page="/")
    assert switched.status_code == 200 and 'lang="de"' in switched.text
    assert "Anmelden" in switched.text
    bad = await post_form(client, "/locale", {"locale": "tlh", "next": "/"}, page="/")
    assert bad.status_code == 400
    await make_user(email="ana@example.com", locale="en")
    await log_in(client, "ana@example.com", "correct horse battery")
    # The user's own setting wins over the visitor cookie ...
    assert 'lang="en"' in (await client.get("/dashboard")).text
    await post_form(client, "/locale", {"locale": "de", "next": "/dashboard"}, page="/dashboard")
    await log_out(client)
    client.cookies.delete("cadenza_locale")
    await log_in(client, "ana@example.com", "correct horse battery")
    # ... and the switch was stored on the account.
    assert 'lang="de"' in (await client.get("/dashboard")).text


async def test_accept_language_picks_the_locale_when_nothing_else_is_set(client):
    de = await client.get("/", headers={"Accept-Language": "fr-CH, de;q=0.8, en;q=0.5"})
    assert 'lang="de"' in de.text
    en = await client.get("/", headers={"Accept-Language": "ja, en-GB;q=0.9"})
    assert 'lang="en"' in en.text


async def test_mails_are_written_in_the_recipients_language(client):
    await make_user(email="jonas@example.com", locale="de")
    await post_form(client, "/forgot-password", {"email": "jonas@example.com"})
    (mail,) = await outbox("jonas@example.com")
    assert "Passwort" in mail.subject


async def test_timezone_cookie_for_visitors_is_validated(client):
    token = await csrf_token(client, "/")
    ok = await client.post("/timezone", data={"timezone": "Asia/Kolkata"}, headers={"x-csrftoken": token})
    assert ok.status_code == 204
    bad = await client.post("/timezone", data={"timezone": "Asia/Atlantis"}, headers={"x-csrftoken": token})
    assert bad.status_code == 400


async def test_flash_messages_queued_by_consecutive_posts_are_all_kept(client):
    await make_user(email="ana@example.com")
    await log_in(client, "ana@example.com", "correct horse battery")
    form = {
        "_csrf_token": await csrf_token(client, "/account/settings"),
        "display_name": "Ana",
        "timezone": "UTC",
        "locale": "en",
    }
    for _ in range(2):  # no page in between shows (and so consumes) the first message
        response = await client.post("/account/settings", data=form, follow_redirects=False)
        assert response.status_code == 303
    page = await client.get("/account/settings")
    assert page.text.count("Your settings were saved.") == 2
