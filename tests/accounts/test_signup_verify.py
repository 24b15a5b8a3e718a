"""Sign-up and email verification through the HTTP app."""

from sqlalchemy import func, select

from marketplace.accounts.models import User
from marketplace.db import session_factory
from tests.helpers import csrf_token, last_link, make_user, outbox, post_form, sign_up


async def count_users() -> int:
    async with session_factory()() as session:
        return (await session.execute(select(func.count()).select_from(User))).scalar_one()


async def test_sign_up_creates_an_unverified_account_signs_in_and_mails_a_link(client):
    response = await sign_up(client, email="Ana@Example.com", role="tutor")
    assert response.status_code == 200  # followed the 303
    assert str(response.url).endswith("/tutor")
    async with session_factory()() as session:
        user = (await session.execute(select(User))).scalar_one()
    assert user.email == "ana@example.com"
    assert user.role.value == "tutor"
    assert user.password_hash.startswith("$argon2id$")
    assert user.email_verified_at is None
    mails = await outbox("ana@example.com")
    assert len(mails) == 1 and "/verify-email?token=" in mails[0].body_text


async def test_verification_link_confirms_once_and_then_is_refused(client):
    await sign_up(client, email="ana@example.com")
    link = await last_link("ana@example.com", "/verify-email")
    page = await client.get(link)
    assert page.status_code == 200 and "Confirm my email address" in page.text
    token = link.split("token=")[1]
    ok = await post_form(client, "/verify-email", {"token": token}, page=link)
    assert ok.status_code == 200 and "Your email address is confirmed" in ok.text
    async with session_factory()() as session:
        assert (await session.execute(select(User.email_verified_at))).scalar_one() is not None
    again = await post_form(client, "/verify-email", {"token": token}, page=link)
    assert again.status_code == 400
    assert "invalid or has expired" in again.text


async def test_forged_verification_token_is_refused(client):
    await sign_up(client, email="ana@example.com")
    response = await post_form(client, "/verify-email", {"token": "forged-token-value"}, page="/verify-email")
    assert response.status_code == 400 and "invalid or has expired" in response.text


async def test_expired_verification_token_is_refused(client):
    from datetime import timedelta

    from sqlalchemy import update

    from marketplace.accounts.models import AccountToken
    from marketplace.db import transaction, utcnow

    await sign_up(client, email="ana@example.com")
    link = await last_link("ana@example.com", "/verify-email")
    async with transaction() as session:
        await session.execute(update(AccountToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    response = await post_form(client, "/verify-email", {"token": link.split("token=")[1]}, page=link)
    assert response.status_code == 400


async def test_duplicate_email_in_other_case_is_refused_and_nothing_is_saved(client):
    await make_user(email="ana@example.com")
    response = await sign_up(client, email="ANA@example.COM")
    assert response.status_code == 422
    assert "cannot be used to sign up" in response.text
    assert await count_users() == 1


async def test_bad_sign_up_input_gets_field_messages_and_saves_nothing(client):
    cases = {
        "email": ({"email": "not-an-email"}, "Enter a valid email address"),
        "weak": ({"password": "short"}, "at least 10 characters"),
        "common": ({"password": "1234567890"}, "too easy to guess"),
        "long_pw": ({"password": "x1" * 100}, "at most 128 characters"),
        "long_name": ({"name": "N" * 81}, "at most 80 characters"),
        "tz": ({"timezone": "Mars/Olympus_Mons"}, "Choose a time zone"),
        "locale": ({"locale": "xx"}, "Choose a language"),
        "long_email": ({"email": "a" * 250 + "@example.com"}, "at most 254 characters"),
    }
    for label, (override, message) in cases.items():
        kwargs = {"email": f"{label}@example.com", **override}
        response = await sign_up(client, **kwargs)
        assert response.status_code == 422, label
        assert message in response.text, label
        assert 'aria-invalid="true"' in response.text, label
    assert await count_users() == 0


async def test_role_cannot_be_admin_at_sign_up(client):
    token = await csrf_token(client, "/signup")
    response = await client.post(
        "/signup",
        data={
            "_csrf_token": token,
            "email": "eve@example.com",
            "password": "correct horse battery",
            "display_name": "Eve",
            "role": "admin",
            "timezone": "UTC",
            "locale": "en",
        },
    )
    assert response.status_code == 422
    assert await count_users() == 0


async def test_script_in_name_is_refused_and_never_rendered_raw(client):
    response = await sign_up(client, name="<script>alert(1)</script>")
    assert response.status_code == 422
    assert "<script>alert(1)</script>" not in response.text


async def test_sign_up_messages_follow_the_chosen_language(client):
    response = await sign_up(client, email="x", locale="de", password="short")
    # Negotiated from Accept-Language when nothing else is set: German request, German errors.
    de = await client.post(
        "/signup",
        data={"_csrf_token": await csrf_token(client, "/signup"), "email": "x"},
        headers={"Accept-Language": "de-DE,de;q=0.9"},
    )
    assert response.status_code == 422 and de.status_code == 422
    assert 'lang="de"' in de.text
    assert "Enter a valid email address" not in de.text
