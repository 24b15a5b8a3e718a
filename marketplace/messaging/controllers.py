"""Messaging pages: the inbox, a thread with its send form, htmx sending and polling."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Response, Template

from marketplace.db import session_factory, transaction
from marketplace.errors import NotFound, TooManyRequests, ValidationFailed
from marketplace.i18n import gettext as _
from marketplace.messaging import jobs as _jobs  # noqa: F401 - declares the notify actor
from marketplace.messaging import services
from marketplace.messaging.models import Thread
from marketplace.web import current_user, form_data, is_htmx, login_required, page, redirect


def _version(thread: Thread) -> str:
    """Changes whenever a message arrives: the polling URL carries it, so a poll without news is a 204."""
    last = thread.last_message_at
    return str(int(last.timestamp() * 1_000_000)) if last else "0"


def _thread_context(view: services.ThreadView, **extra: Any) -> dict[str, Any]:
    return {
        "view": view,
        "thread_id": view.thread.id,
        "version": _version(view.thread),
        "errors": {},
        "form": {"body": ""},
        "error_message": None,
        **extra,
    }


class MessagingController(Controller):
    path = "/messages"
    guards = [login_required]
    tags = ["messaging"]
    include_in_schema = False

    @get("/", name="messages")
    async def inbox(self, request: Request) -> Template:
        user = current_user(request)
        async with session_factory()() as session:
            threads = await services.threads_for_user(session, user=user)
        return Template(
            "messaging/inbox.html",
            context={"threads": threads, "unread_total": sum(t.unread for t in threads)},
        )

    @get("/unread", name="messages_unread")
    async def unread(self, request: Request) -> Template:
        """A small badge with the unread count (for the site header, refreshed with htmx)."""
        user = current_user(request)
        async with session_factory()() as session:
            total = await services.unread_total(session, user=user)
        return Template("messaging/_unread_badge.html", context={"unread_total": total})

    @post("/start", name="messages_start")
    async def start(self, request: Request) -> Redirect:
        form = await form_data(request)
        try:
            tutor_id = uuid.UUID(form.get("tutor_id", "").strip())
        except ValueError as exc:
            raise NotFound(_("We could not find this tutor.")) from exc
        async with transaction() as session:
            thread = await services.thread_start(session, student=current_user(request), tutor_user_id=tutor_id)
        return redirect(f"/messages/{thread.id}")

    @get("/{thread_id:uuid}", name="messages_thread")
    async def thread(self, request: Request, thread_id: FromPath[uuid.UUID]) -> Template:
        async with transaction() as session:
            view = await services.thread_messages(session, viewer=current_user(request), thread_id=thread_id)
        return Template("messaging/thread.html", context=_thread_context(view))

    @get("/{thread_id:uuid}/list", name="messages_list")
    async def message_list(self, request: Request, thread_id: FromPath[uuid.UUID]) -> Template | Response:
        """The message list alone, for htmx polling; the whole page for anyone else."""
        user = current_user(request)
        if is_htmx(request):
            async with session_factory()() as session:
                thread = await services.thread_get(session, viewer=user, thread_id=thread_id)
            if request.query_params.get("v") == _version(thread):
                return Response(b"", status_code=204)
        async with transaction() as session:
            view = await services.thread_messages(session, viewer=user, thread_id=thread_id)
        return page(request, "messaging/thread.html", partial="messaging/_messages.html", **_thread_context(view))

    @post("/{thread_id:uuid}", name="messages_send")
    async def send(self, request: Request, thread_id: FromPath[uuid.UUID]) -> Template | Redirect:
        form = await form_data(request)
        user = current_user(request)
        errors: dict[str, str] = {}
        message: str | None = None
        headers: dict[str, str] = {}
        try:
            async with transaction() as session:
                await services.message_send(session, sender=user, thread_id=thread_id, body=form.get("body", ""))
        except ValidationFailed as exc:
            errors, message = exc.errors or {"body": exc.message}, exc.message
            status = 422
        except TooManyRequests as exc:
            if not is_htmx(request):
                raise
            # htmx swaps 422 answers only (base.html): show the limit inside the form.
            errors, message = {"body": exc.message}, exc.message
            headers["Retry-After"] = str(exc.retry_after)
            status = 422
        else:
            if not is_htmx(request):
                return redirect(f"/messages/{thread_id}")
            status = 200
        async with transaction() as session:
            view = await services.thread_messages(session, viewer=user, thread_id=thread_id)
        form_values = {"body": form.get("body", "")[: services.BODY_MAX + 100]} if errors else {"body": ""}
        context = _thread_context(view, errors=errors, form=form_values, error_message=message)
        name = "messaging/_conversation.html" if is_htmx(request) else "messaging/thread.html"
        return Template(name, context=context, status_code=status, headers=headers)
