"""The profile state machine: onboarding steps, submission, approval, re-approval of material
edits while the approved version stays live, rejection with a mailed reason, suspension, audit."""

import pytest
from sqlalchemy import select

from marketplace.audit import AuditEntry
from marketplace.db import session_factory, transaction
from marketplace.errors import AppError, Conflict, Forbidden, NotFound, ValidationFailed
from marketplace.tutors import services
from marketplace.tutors.models import ProfileStatus, TaxonomyKind, TutorProfile
from marketplace.tutors.schemas import clean_basics, clean_place, clean_pricing, clean_teaching
from tests.helpers import make_user, outbox

COMPLETE_FORMS = {
    "basics": {"display_name": ["Clara Klavier"], "headline": ["Jazz piano for adult beginners"]},
    "teaching": {
        "instrument": ["piano"],
        "levels_piano": ["beginner", "advanced"],
        "genre": ["jazz"],
        "age_group": ["adults"],
    },
    "place": {"language": ["de", "en"], "online": ["1"]},
    "pricing": {"currency": ["EUR"], "offer_60": ["1"], "price_60": ["45"]},
}


async def fill(user, forms=COMPLETE_FORMS):
    async with transaction() as session:
        instruments = await services.taxonomy_slugs(session, TaxonomyKind.instrument)
        genres = await services.taxonomy_slugs(session, TaxonomyKind.genre)
        languages = await services.taxonomy_slugs(session, TaxonomyKind.language)
        cleaners = {
            "basics": clean_basics,
            "teaching": lambda f: clean_teaching(f, instruments=instruments, genres=genres),
            "place": lambda f: clean_place(f, languages=languages),
            "pricing": clean_pricing,
        }
        for step, form in forms.items():
            fragment, errors = cleaners[step](form)
            assert errors == {}, (step, errors)
            await services.profile_save_step(session, user=user, step=step, fragment=fragment)
        return await services.profile_for_user(session, user=user)


async def submit(user):
    async with transaction() as session:
        return await services.profile_submit(session, user=user)


async def public(slug):
    async with session_factory()() as session:
        return await services.profile_public(session, slug=slug)


async def test_a_new_profile_is_invisible_until_an_admin_approves_it():
    admin = await make_user(email="root@example.com", role="admin")
    tutor = await make_user(email="clara@example.com", role="tutor", name="Clara Klavier")
    profile = await fill(tutor)
    assert profile.slug == "clara-klavier" and profile.onboarding_step == 5
    with pytest.raises(NotFound):
        await public(profile.slug)
    assert (await submit(tutor)).status == ProfileStatus.pending
    with pytest.raises(NotFound):
        await public(profile.slug)
    async with transaction() as session:
        await services.profile_approve(session, admin=admin, profile_id=profile.id)
    live = await public(profile.slug)
    assert live.live["headline"] == "Jazz piano for adult beginners"
    assert live.live["durations"] == [{"minutes": 60, "price": 4500}]


async def test_an_incomplete_profile_cannot_be_submitted():
    tutor = await make_user(email="clara@example.com", role="tutor")
    await fill(tutor, {"basics": COMPLETE_FORMS["basics"]})
    with pytest.raises(ValidationFailed) as info:
        await submit(tutor)
    assert {"instruments", "languages", "durations"} <= set(info.value.errors)


async def test_a_material_edit_waits_for_approval_while_the_approved_version_stays_live():
    admin = await make_user(email="root@example.com", role="admin")
    tutor = await make_user(email="clara@example.com", role="tutor")
    profile = await fill(tutor)
    await submit(tutor)
    async with transaction() as session:
        await services.profile_approve(session, admin=admin, profile_id=profile.id)
    await fill(tutor, {"basics": {"display_name": ["Clara Klavier"], "headline": ["Now also teaching organ"]}})
    edited = await submit(tutor)
    assert edited.status == ProfileStatus.approved and edited.changes_pending
    assert (await public(profile.slug)).live["headline"] == "Jazz piano for adult beginners"
    assert services.profile_diff(edited) == [("headline", "Jazz piano for adult beginners", "Now also teaching organ")]
    async with transaction() as session:
        await services.profile_approve(session, admin=admin, profile_id=profile.id)
    assert (await public(profile.slug)).live["headline"] == "Now also teaching organ"


async def test_price_changes_go_live_without_review():
    admin = await make_user(email="root@example.com", role="admin")
    tutor = await make_user(email="clara@example.com", role="tutor")
    profile = await fill(tutor)
    await submit(tutor)
    async with transaction() as session:
        await services.profile_approve(session, admin=admin, profile_id=profile.id)
    await fill(tutor, {"pricing": {"currency": ["EUR"], "offer_60": ["1"], "price_60": ["50,50"]}})
    assert (await public(profile.slug)).live["durations"] == [{"minutes": 60, "price": 5050}]
    with pytest.raises(AppError, match="no changes"):
        await submit(tutor)


async def test_rejection_mails_the_reason_and_a_rejected_edit_keeps_the_live_version():
    admin = await make_user(email="root@example.com", role="admin")
    tutor = await make_user(email="clara@example.com", role="tutor", locale="de")
    profile = await fill(tutor)
    await submit(tutor)
    async with transaction() as session:
        rejected = await services.profile_reject(
            session, admin=admin, profile_id=profile.id, reason="Please add a real photo."
        )
    assert rejected.status == ProfileStatus.rejected
    (mail,) = await outbox("clara@example.com")
    assert "Please add a real photo." in mail.body_text and "Profil" in mail.subject
    await submit(tutor)
    async with transaction() as session:
        await services.profile_approve(session, admin=admin, profile_id=profile.id)
    await fill(tutor, {"basics": {"display_name": ["Clara Klavier"], "headline": ["Cheap lessons, pay me directly"]}})
    await submit(tutor)
    async with transaction() as session:
        after = await services.profile_reject(session, admin=admin, profile_id=profile.id, reason="Off-platform pay")
    assert after.status == ProfileStatus.approved and not after.changes_pending
    assert (await public(profile.slug)).live["headline"] == "Jazz piano for adult beginners"


async def test_suspension_hides_the_profile_and_reinstatement_brings_it_back_all_audited():
    admin = await make_user(email="root@example.com", role="admin")
    tutor = await make_user(email="clara@example.com", role="tutor")
    profile = await fill(tutor)
    await submit(tutor)
    async with transaction() as session:
        await services.profile_approve(session, admin=admin, profile_id=profile.id)
        await services.profile_suspend(session, admin=admin, profile_id=profile.id, reason="Reported for spam")
    with pytest.raises(NotFound):
        await public(profile.slug)
    async with session_factory()() as session:  # admins still see it
        assert (await services.profile_public(session, slug=profile.slug, viewer=admin)).id == profile.id
    with pytest.raises(Forbidden):
        await fill(tutor, {"basics": COMPLETE_FORMS["basics"]})
    async with transaction() as session:
        await services.profile_reinstate(session, admin=admin, profile_id=profile.id, reason="Appeal")
    assert (await public(profile.slug)).id == profile.id
    async with session_factory()() as session:
        actions = (await session.execute(select(AuditEntry.action).order_by(AuditEntry.created_at))).scalars().all()
    assert actions == ["profile.approve", "profile.suspend", "profile.reinstate"]


async def test_only_admins_moderate_and_only_waiting_profiles_are_approved():
    tutor = await make_user(email="clara@example.com", role="tutor")
    admin = await make_user(email="root@example.com", role="admin")
    profile = await fill(tutor)
    with pytest.raises(Forbidden):
        async with transaction() as session:
            await services.profile_approve(session, admin=tutor, profile_id=profile.id)
    with pytest.raises(Conflict):
        async with transaction() as session:
            await services.profile_approve(session, admin=admin, profile_id=profile.id)
    async with session_factory()() as session:
        assert (await session.get(TutorProfile, profile.id)).status == ProfileStatus.draft


async def test_a_banned_tutors_profile_disappears():
    from marketplace.accounts.services import user_ban

    admin = await make_user(email="root@example.com", role="admin")
    tutor = await make_user(email="clara@example.com", role="tutor")
    profile = await fill(tutor)
    await submit(tutor)
    async with transaction() as session:
        await services.profile_approve(session, admin=admin, profile_id=profile.id)
        await user_ban(session, admin=admin, user_id=tutor.id, reason="fraud")
    with pytest.raises(NotFound):
        await public(profile.slug)


async def test_students_have_no_tutor_profile_and_slugs_stay_unique():
    student = await make_user(email="sam@example.com")
    with pytest.raises(Forbidden):
        async with transaction() as session:
            await services.profile_start(session, user=student)
    a = await make_user(email="a@example.com", role="tutor", name="Zoë Müller")
    b = await make_user(email="b@example.com", role="tutor", name="Zoe Muller")
    async with transaction() as session:
        pa = await services.profile_start(session, user=a)
        pb = await services.profile_start(session, user=b)
    assert (pa.slug, pb.slug) == ("zoe-muller", "zoe-muller-2")
