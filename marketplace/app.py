"""create_app(): the one composition root. Wires settings, database, sessions, CSRF, i18n,
templates, static files, jobs and every domain's routers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from litestar import Litestar
from litestar.config.compression import CompressionConfig
from litestar.config.csrf import CSRFConfig
from litestar.openapi import OpenAPIConfig
from litestar.plugins.htmx import HTMXPlugin, HTMXRequest
from litestar.plugins.jinja import JinjaTemplateEngine as _Engine
from litestar.static_files import create_static_files_router
from litestar.stores.registry import StoreRegistry
from litestar.template.config import TemplateConfig

from lessons.controllers import LessonRoomController, LiveKitWebhookController, PracticeController
from marketplace import jobs, periodic
from marketplace.accounts.controllers import AccountController
from marketplace.accounts.sessions import make_session_config, make_session_store
from marketplace.accounts.throttle import make_throttle
from marketplace.admin.controllers import AdminController
from marketplace.admin.moderation import ModerationController
from marketplace.admin.people import PeopleController
from marketplace.admin.reports import ReportsController
from marketplace.db import dispose_engines, import_all_models
from marketplace.errors import exception_handlers
from marketplace.i18n import install_jinja
from marketplace.messaging.controllers import MessagingController
from marketplace.pages import PagesController, bare, healthz
from marketplace.reviews.controllers import ReviewController
from marketplace.settings import ROOT, Settings, get_settings
from marketplace.tutors.controllers import TutorProfileController
from marketplace.tutors.public import FavouritesController, PublicProfileController
from marketplace.web import RequestContextMiddleware, SecurityHeadersMiddleware, locale_options, pop_flashes
from payouts.controllers import (
    CheckoutController,
    DisputesAdminController,
    FinanceController,
    PayoutsController,
    StudentPaymentsController,
)
from payouts.webhooks import StripeWebhookController
from scheduling.api import SlotsApiController, WeekPickerController
from scheduling.calendar import CalendarController
from scheduling.editor import AvailabilityEditorController
from scheduling.pages import BookingController, HoldCheckoutController, LessonsController
from search.admin import ExchangeRateAdminController
from search.backend import search_backend
from search.controllers import SearchApiController, SearchPageController

log = logging.getLogger("marketplace")


def _template_config() -> TemplateConfig:
    def configure(engine: _Engine) -> None:
        env = engine.engine
        install_jinja(env)
        env.globals.update(pop_flashes=pop_flashes, locale_options=locale_options)
        env.trim_blocks = True
        env.lstrip_blocks = True

    return TemplateConfig(directory=Path(ROOT / "templates"), engine=_Engine, engine_callback=configure)


async def _warm_up_search() -> None:
    """The embedded search keeps an in-memory copy of its index per process: load it at start-up
    rather than on the first search. Best effort: a failure only means the first search loads it."""
    try:
        backend = search_backend()
        warm_up = getattr(backend, "warm_up", None)
        if warm_up is not None:
            await warm_up()
    except asyncio.CancelledError:
        raise
    except Exception:  # the search page reports a broken index itself; start-up must not fail
        log.warning("search warm-up failed", exc_info=True)


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "dramatiq"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    import_all_models()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            from marketplace.migrations import upgrade_head

            await upgrade_head()
        jobs.in_process_worker.start()
        run_clock = jobs.is_in_process() and settings.mode != "test"
        if run_clock:
            periodic.clock.start()
        warm = asyncio.create_task(_warm_up_search()) if settings.mode != "test" else None
        try:
            yield
        finally:
            if warm is not None and not warm.done():
                warm.cancel()
            if run_clock:
                periodic.clock.stop()
            jobs.in_process_worker.stop()
            await dispose_engines()

    session_config = make_session_config(settings)
    app = Litestar(
        route_handlers=[
            PagesController,
            AccountController,
            TutorProfileController,
            AdminController,
            ModerationController,
            PeopleController,
            ReportsController,
            PublicProfileController,
            FavouritesController,
            ReviewController,
            MessagingController,
            SearchPageController,
            SearchApiController,
            ExchangeRateAdminController,
            AvailabilityEditorController,
            SlotsApiController,
            WeekPickerController,
            LessonRoomController,
            PracticeController,
            LiveKitWebhookController,
            CheckoutController,
            PayoutsController,
            StudentPaymentsController,
            FinanceController,
            DisputesAdminController,
            StripeWebhookController,
            CalendarController,
            BookingController,
            HoldCheckoutController,
            LessonsController,
            healthz,
            bare,
            create_static_files_router(
                path="/static",
                directories=[ROOT / "static"],
                name="static",
                include_in_schema=False,
                opt={"skip_session": True},
            ),
        ],
        lifespan=[lifespan],
        middleware=[session_config.middleware, RequestContextMiddleware],
        csrf_config=CSRFConfig(
            secret=settings.secret_key,
            cookie_secure=settings.secure_cookies,
            cookie_httponly=False,  # htmx reads nothing from it; the token is rendered into pages
            exclude=["/webhooks/", "/healthz", "/bare"],
        ),
        stores=StoreRegistry(stores={"sessions": make_session_store(settings)}),
        template_config=_template_config(),
        plugins=[HTMXPlugin()],
        request_class=HTMXRequest,
        exception_handlers=exception_handlers,
        compression_config=CompressionConfig(backend="gzip", minimum_size=1024, exclude=["/bare"]),
        openapi_config=OpenAPIConfig(title="Cadenza API", version="1", path="/api/schema"),
        request_max_body_size=2 * 1024 * 1024,
        debug=False,
    )
    # Outside Litestar's per-route middleware, so that 404s and static files get the headers too.
    app.asgi_handler = SecurityHeadersMiddleware(app.asgi_handler)
    app.state.settings = settings
    app.state.throttle = make_throttle(settings)
    return app
