"""Tutor photos are served from the media folder only by their exact content-hash name, only
when they belong to a profile the viewer may see."""

from __future__ import annotations

from marketplace.db import transaction
from marketplace.settings import get_settings
from marketplace.tutors import services
from tests.helpers import log_in, make_user
from tests.profiles.support import PASSWORD, admin_user, approved_tutor, photo_hash, write_photo


async def test_an_approved_photo_is_served_with_its_type_and_a_long_cache(client):
    _tutor, profile = await approved_tutor()
    digest = profile.live["photo"]["hash"]
    webp = await client.get(f"/media/tutors/{digest}-256.webp")
    assert webp.status_code == 200 and webp.headers["content-type"] == "image/webp"
    assert "max-age=31536000" in webp.headers["cache-control"] and "public" in webp.headers["cache-control"]
    assert webp.headers["x-content-type-options"] == "nosniff"
    jpg = await client.get(f"/media/tutors/{digest}-640.jpg")
    assert jpg.status_code == 200 and jpg.headers["content-type"] == "image/jpeg"


async def test_traversal_and_unknown_names_are_not_found(client):
    _tutor, profile = await approved_tutor()
    digest = profile.live["photo"]["hash"]
    (get_settings().var_dir / "secret.txt").write_text("TOP-SECRET-CONTENT")
    for name in (
        "..%2F..%2Fsecret.txt",
        "%2e%2e%2fsecret_key",
        "../../secret.txt",
        f"{digest}-256.png",
        f"{digest}-300.webp",
        f"{digest.upper()}-256.webp",
        f"{digest}-256.webp%00.txt",
        f"{digest}-256.webp.tmp",
        f"{photo_hash('never-uploaded')}-256.webp",
        "secret.txt",
    ):
        response = await client.get(f"/media/tutors/{name}")
        assert response.status_code == 404, name
        assert b"TOP-SECRET-CONTENT" not in response.content


async def test_photos_of_hidden_or_unapproved_profiles_are_not_public(client):
    admin = await admin_user()
    _tutor, profile = await approved_tutor()
    digest = profile.live["photo"]["hash"]
    async with transaction() as session:
        await services.profile_suspend(session, admin=admin, profile_id=profile.id, reason="Spam")
    assert (await client.get(f"/media/tutors/{digest}-256.webp")).status_code == 404
    draft_only = write_photo("draft-only")  # on disk, but in no live profile
    assert (await client.get(f"/media/tutors/{draft_only['hash']}-96.webp")).status_code == 404
    await make_user(email="stu@example.com")
    await log_in(client, "stu@example.com", PASSWORD)
    assert (await client.get(f"/media/tutors/{digest}-256.webp")).status_code == 404
    await log_in(client, "root@example.com", PASSWORD)
    seen = await client.get(f"/media/tutors/{digest}-256.webp")
    assert seen.status_code == 200 and "no-store" in seen.headers["cache-control"]
