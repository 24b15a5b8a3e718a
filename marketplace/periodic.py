"""Periodic jobs: a tiny clock that sends registered Dramatiq actors at fixed intervals.

Modules register their periodic actors with :func:`every` at import (so registering happens
wherever ``import_all_models()`` runs). The clock runs

* inside the web process when jobs run in-process (the embedded default), started by the app's
  lifespan outside tests; and
* as its own process in production: ``marketplace clock`` (run exactly one).

Every periodic actor must be idempotent: a tick may be repeated (several web processes each run a
clock in embedded mode) or missed (the process was down); the next tick repairs either.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import dramatiq

log = logging.getLogger(__name__)


@dataclass
class PeriodicJob:
    actor: dramatiq.Actor
    seconds: float
    next_at: float = 0.0


_REGISTRY: dict[str, PeriodicJob] = {}


def every(seconds: float):
    """Decorator for an actor (apply it on top of ``@jobs.actor``): send it every ``seconds``."""

    def register(actor: dramatiq.Actor) -> dramatiq.Actor:
        _REGISTRY[actor.actor_name] = PeriodicJob(actor=actor, seconds=seconds)
        return actor

    return register


def registered() -> dict[str, PeriodicJob]:
    return dict(_REGISTRY)


def tick(now: float | None = None) -> list[str]:
    """Send every job that is due; returns the names sent. The first tick sends all of them."""
    now = time.monotonic() if now is None else now
    sent = []
    for name, job in _REGISTRY.items():
        if now >= job.next_at:
            try:
                job.actor.send()
            except Exception:  # a broker hiccup must not stop the clock
                log.exception("could not send periodic job %s", name)
                continue
            job.next_at = now + job.seconds
            sent.append(name)
    return sent


class Clock:
    """Calls :func:`tick` about once a second on a daemon thread until stopped."""

    def __init__(self, resolution: float = 1.0) -> None:
        self.resolution = resolution
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="periodic-clock", daemon=True)
        self._thread.start()

    def run(self) -> None:
        while not self._stop.is_set():
            tick()
            self._stop.wait(self.resolution)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


clock = Clock()
