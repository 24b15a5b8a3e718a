"""Messaging tests: notification jobs kept under control."""

from __future__ import annotations

from datetime import timedelta

import pytest


@pytest.fixture(autouse=True)
def scheduled_notifications(monkeypatch, request) -> list[dict]:
    """Notification jobs are recorded here instead of being sent to the broker (and queued mail stays
    in the outbox), so no job is left half-done in the in-process broker when a test's app stops.
    Tests that use ``drain_jobs`` get the real jobs, without the ten-minute delay, and wait for them."""
    from marketplace import mail
    from marketplace.messaging import jobs as messaging_jobs
    from marketplace.messaging import services

    monkeypatch.setattr(services, "NOTIFY_DELAY", timedelta(0))
    recorded: list[dict] = []
    if "drain_jobs" not in request.fixturenames:
        monkeypatch.setattr(messaging_jobs.messaging_notify, "send_with_options", lambda **kw: recorded.append(kw))
        monkeypatch.setattr(mail.mail_send, "send", lambda *args, **kw: None)
    return recorded
