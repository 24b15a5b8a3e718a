"""The `marketplace` command: run, worker, migrate, demo, create-admin, search reindex/reconcile."""

from __future__ import annotations

import asyncio
import os
import sys

import click

from marketplace.settings import ConfigurationError, get_settings


def _settings():
    try:
        return get_settings()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc


def _run(coro_fn, *args, **kwargs):
    """Run a coroutine on a fresh loop and close that loop's database engine afterwards."""
    from marketplace.db import dispose_engines

    async def go():
        try:
            return await coro_fn(*args, **kwargs)
        finally:
            await dispose_engines()

    return asyncio.run(go())


@click.group()
def main() -> None:
    """Cadenza: a marketplace for music lessons."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--reload", is_flag=True, help="Restart on code changes (development).")
def run(host: str, port: int, workers: int, reload: bool) -> None:
    """Serve the web application (migrates the database first unless MODE=production)."""
    import uvicorn

    settings = _settings()
    if settings.migrate_on_start:
        # In a child process, so that the supervisor does not keep Alembic and the models in memory.
        import subprocess

        subprocess.run([sys.executable, "-m", "marketplace.cli", "migrate"], check=True)
    # The processes must not race to migrate: it is done once, here.
    os.environ["MIGRATE_ON_START"] = "false"
    get_settings.cache_clear()
    click.echo(f"Cadenza on http://{host}:{port} ({workers} worker{'s' if workers > 1 else ''})")
    uvicorn.run(
        "marketplace.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        proxy_headers=True,
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        log_level=settings.log_level.lower(),
        access_log=settings.log_level == "DEBUG",
    )


@main.command()
@click.option("--processes", default=1, show_default=True, type=int)
@click.option("--threads", default=4, show_default=True, type=int)
def worker(processes: int, threads: int) -> None:
    """Run Dramatiq workers for the broker in BROKER_URL."""
    settings = _settings()
    if settings.broker_url.startswith("stub"):
        raise click.ClickException(
            "BROKER_URL is not set: jobs run inside the web process. Set BROKER_URL=redis://... to run workers."
        )
    from dramatiq.cli import main as dramatiq_main

    sys.argv = ["dramatiq", "marketplace.worker", "--processes", str(processes), "--threads", str(threads)]
    raise SystemExit(dramatiq_main())


@main.command()
def clock() -> None:
    """Send the periodic jobs (hold expiry, reminders, calendar fetches, reconciles) to BROKER_URL.

    Run exactly one clock next to the workers. With jobs in-process (no BROKER_URL) the web
    process runs the clock itself.
    """
    settings = _settings()
    if settings.broker_url.startswith("stub"):
        raise click.ClickException("BROKER_URL is not set: the web process runs the periodic jobs itself.")
    from marketplace import periodic
    from marketplace.db import import_all_models

    import_all_models()
    click.echo(f"Clock running: {', '.join(sorted(periodic.registered())) or 'no periodic jobs'}")
    periodic.clock.run()


@main.command()
def migrate() -> None:
    """Upgrade the database schema to the newest migration."""
    from marketplace.migrations import upgrade_head_sync

    _settings()
    upgrade_head_sync()
    click.echo("Database is up to date.")


@main.command("create-admin")
@click.option("--email", prompt=True)
@click.option("--name", "display_name", default="Admin", show_default=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def create_admin(email: str, display_name: str, password: str) -> None:
    """Create an admin account (or make an existing account an admin)."""
    from marketplace.accounts.services import admin_create
    from marketplace.db import import_all_models, transaction
    from marketplace.errors import AppError
    from marketplace.migrations import upgrade_head_sync

    _settings()
    upgrade_head_sync()
    import_all_models()

    async def go() -> str:
        async with transaction() as session:
            user = await admin_create(session, email=email, password=password, display_name=display_name)
            return user.email

    try:
        created = _run(go)
    except AppError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"Admin ready: {created}")


@main.command()
@click.option("--tutors", default=40, show_default=True, type=click.IntRange(0, 1_000_000))
@click.option("--students", default=20, show_default=True, type=click.IntRange(0, 1_000_000))
@click.option("--seed", default=1, show_default=True, type=int)
def demo(tutors: int, students: int, seed: int) -> None:
    """Fill the database with deterministic demo data and print the demo log-ins."""
    import time

    from marketplace.db import import_all_models
    from marketplace.demo import demo_create
    from marketplace.migrations import upgrade_head_sync

    _settings()
    upgrade_head_sync()
    import_all_models()
    from search.sync import reindex_all

    started = time.monotonic()
    result = _run(demo_create, tutors=tutors, students=students, seed=seed)
    steps = ", ".join(f"{step} {seconds:.1f}s" for step, seconds in result.timings.items())
    click.echo(f"Demo data ready: {result.tutors} tutors, {result.students} students, {result.profiles} new profiles.")
    click.echo(f"  generated in {time.monotonic() - started:.1f}s ({steps})")
    started = time.monotonic()
    indexed = _run(reindex_all)
    click.echo(f"Search index ready: {indexed} tutors searchable.")
    click.echo(f"  indexed in {time.monotonic() - started:.1f}s")
    click.echo("Log in with:")
    for role, email, password in result.logins:
        click.echo(f"  {role:<8} {email:<28} {password}")


@main.group()
def search() -> None:
    """Search index maintenance (the index follows the profiles through jobs; these repair it)."""


@search.command()
@click.option("--batch", default=1000, show_default=True, type=click.IntRange(1, 100_000))
def reindex(batch: int) -> None:
    """Rebuild the search index from every visible tutor profile."""
    import contextlib
    import time

    from marketplace.db import import_all_models

    _settings()
    import_all_models()
    from search.sync import reindex_all

    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        bar = None
        shown = 0

        def progress(done: int, total: int) -> None:
            nonlocal bar, shown
            if bar is None:  # the total is known once the first query ran
                bar = stack.enter_context(click.progressbar(length=total, label="Indexing tutor profiles"))
            bar.update(done - shown)
            shown = done

        try:
            count = _run(reindex_all, batch=batch, progress=progress)
        except ConfigurationError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"Indexed {count} tutor profiles in {time.monotonic() - started:.1f}s.")


@search.command("reconcile")
def search_reconcile() -> None:
    """Repair the search index: index missing or stale profiles, delete orphans (run it from cron)."""
    from marketplace.db import import_all_models

    _settings()
    import_all_models()
    from search.sync import reconcile

    try:
        result = _run(reconcile)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(", ".join(f"{key}: {value}" for key, value in result.items()))


@main.group()
def payouts() -> None:
    """Payments: reconcile the ledger with the payment provider."""


@payouts.command("reconcile")
def payouts_reconcile() -> None:
    """Compare the ledger with the provider's objects and list every difference (changes nothing).
    Exits with status 1 when there is a difference."""
    from marketplace.db import import_all_models

    _settings()
    import_all_models()
    from marketplace.db import session_factory
    from payouts.providers import get_provider
    from payouts.reconcile import reconcile

    async def go():
        async with session_factory()() as session:
            return await reconcile(session, get_provider())

    report = _run(go)
    for difference in report.differences:
        click.echo(str(difference))
    books = ", ".join(f"{c} {t}" for c, t in sorted(report.totals.items())) or "empty"
    click.echo(
        f"{report.transactions} ledger transactions, {report.payments} payments checked, books: {books}; "
        f"{len(report.differences)} difference(s)."
    )
    if report.differences:
        sys.exit(1)


if __name__ == "__main__":
    main()
