"""The `marketplace` command: create-admin, demo, migrate."""

import asyncio

from click.testing import CliRunner
from sqlalchemy import func, select

from marketplace.accounts.models import Role, User
from marketplace.cli import main
from marketplace.db import session_factory


def run_cli(*args: str, input: str | None = None):
    # Called through asyncio.to_thread: the command runs (and closes) its own event loop.
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


async def users() -> list[User]:
    async with session_factory()() as session:
        return list((await session.execute(select(User).order_by(User.email))).scalars())


async def test_create_admin_makes_a_verified_admin_and_refuses_weak_passwords():
    weak = await asyncio.to_thread(run_cli, "create-admin", "--email", "boss@example.com", "--password", "short")
    assert weak.exit_code != 0 and "at least 10 characters" in weak.output
    ok = await asyncio.to_thread(
        run_cli, "create-admin", "--email", "Boss@Example.com", "--name", "Boss", "--password", "a long admin secret"
    )
    assert ok.exit_code == 0, ok.output
    (admin,) = await users()
    assert admin.email == "boss@example.com" and admin.role == Role.admin and admin.is_verified


async def test_demo_is_deterministic_and_prints_the_logins():
    first = await asyncio.to_thread(run_cli, "demo", "--tutors", "7", "--students", "4", "--seed", "42")
    assert first.exit_code == 0, first.output
    for email in ("admin@demo.cadenza.test", "tutor@demo.cadenza.test", "student@demo.cadenza.test"):
        assert email in first.output
    assert "cadenza-demo-2026" in first.output
    snapshot = [(u.id, u.email, u.display_name, u.timezone) for u in await users()]
    assert len(snapshot) == 3 + 7 + 4
    # Running it again changes nothing; the same seed on an empty database gives the same people.
    again = await asyncio.to_thread(run_cli, "demo", "--tutors", "7", "--students", "4", "--seed", "42")
    assert again.exit_code == 0
    assert [(u.id, u.email, u.display_name, u.timezone) for u in await users()] == snapshot
    async with session_factory()() as session:
        tutors = (await session.execute(select(func.count()).where(User.role == Role.tutor))).scalar_one()
    assert tutors == 8


async def test_demo_logins_work(client):
    await asyncio.to_thread(run_cli, "demo", "--tutors", "1", "--students", "1")
    from tests.helpers import log_in

    response = await log_in(client, "tutor@demo.cadenza.test", "cadenza-demo-2026")
    assert str(response.url).endswith("/tutor")


def test_worker_command_explains_that_jobs_run_in_process_without_a_broker(monkeypatch):
    from marketplace.settings import get_settings

    if not get_settings().broker_url.startswith("stub"):
        return
    result = CliRunner().invoke(main, ["worker"])
    assert result.exit_code != 0 and "BROKER_URL" in result.output


async def test_migrate_is_idempotent():
    result = await asyncio.to_thread(run_cli, "migrate")
    assert result.exit_code == 0 and "up to date" in result.output


async def test_demo_population_is_believable_and_gives_the_admin_work():
    from marketplace.reviews.models import Review
    from marketplace.tutors.models import ProfileStatus, TutorProfile

    result = await asyncio.to_thread(run_cli, "demo", "--tutors", "60", "--students", "20", "--seed", "7")
    assert result.exit_code == 0, result.output
    async with session_factory()() as session:
        profiles = (await session.execute(select(TutorProfile))).scalars().all()
        reviews = (await session.execute(select(func.count()).select_from(Review))).scalar_one()
    assert len(profiles) == 61  # 60 generated tutors and the fixed demo tutor
    docs = [p.draft for p in profiles]
    assert len({i["slug"] for d in docs for i in d["instruments"]}) >= 25
    assert len({g for d in docs for g in d["genres"]}) >= 15
    assert len({lang for d in docs for lang in d["languages"]}) >= 10
    assert len({d["city"]["geonameid"] for d in docs}) >= 40
    assert len({(d["city"]["lat"] // 30, d["city"]["lng"] // 60) for d in docs}) >= 5  # several continents
    assert len({d["currency"] for d in docs}) >= 3
    assert all(d.get("photo") for d in docs)
    statuses = {p.status for p in profiles}
    assert {ProfileStatus.approved, ProfileStatus.pending, ProfileStatus.suspended, ProfileStatus.draft} <= statuses
    assert reviews > 0
    assert all(p.rating_count == 0 or 1 <= p.rating_sum / p.rating_count <= 5 for p in profiles)
    clara = next(p for p in profiles if p.slug == "clara-klavier")
    assert clara.status == ProfileStatus.approved
