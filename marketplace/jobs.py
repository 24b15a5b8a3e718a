"""Background jobs: the Dramatiq broker chosen from BROKER_URL, and the in-process worker.

- ``redis://`` or ``amqp://``: a real broker; run ``marketplace worker`` beside the web processes.
- ``stub://`` (default): Dramatiq's StubBroker with a worker thread inside the web process, so
  the application runs alone on a fresh machine.

Actors are declared with :func:`actor` and sent after commit with
:func:`marketplace.db.after_commit` (``after_commit(session, lambda: some_actor.send(...))``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO

from marketplace.settings import get_settings

log = logging.getLogger(__name__)


class _AsyncIOWithEngines(AsyncIO):
    """Dramatiq's event-loop thread for async actors, which also closes the database engine that
    ``marketplace.db`` made for that loop before the loop stops. Without it every worker start and
    stop (tests drain jobs with short-lived workers) left a pool of open connections behind."""

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        from dramatiq.asyncio import get_event_loop_thread

        from marketplace.db import dispose_engines

        thread = get_event_loop_thread()
        if thread is not None:
            try:
                thread.run_coroutine(dispose_engines())
            except Exception:  # the loop is going away anyway; never block the shutdown
                log.exception("could not dispose the job loop's database engine")
        super().after_worker_shutdown(broker, worker)


def make_broker(url: str) -> dramatiq.Broker:
    middleware = [m() for m in dramatiq.middleware.default_middleware] + [_AsyncIOWithEngines()]
    if url.startswith(("redis://", "rediss://")):
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=url, middleware=middleware, namespace="cadenza")
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url, middleware=middleware, confirm_delivery=True)
    broker = _StubBroker(middleware=middleware)
    broker.emit_after("process_boot")
    return broker


class _StubBroker(StubBroker):
    """Dramatiq's StubBroker drops the messages a stopping worker had fetched but not run (its
    consumers' ``requeue`` does nothing): they are lost and ``join`` waits for them forever. These
    consumers put them back on their queue, so the next in-process worker runs them."""

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 100) -> dramatiq.Consumer:
        consumer = super().consume(queue_name, prefetch, timeout)
        queue = consumer.queue  # type: ignore[attr-defined]

        def requeue(messages: Any) -> None:
            for message in messages:
                queue.put(message.encode())
                try:
                    queue.task_done()  # the fetch that is given back
                except ValueError:
                    pass

        consumer.requeue = requeue  # type: ignore[method-assign]
        return consumer


broker: dramatiq.Broker = make_broker(get_settings().broker_url)
dramatiq.set_broker(broker)


def actor(**options: Any) -> Callable[[Callable[..., Any]], dramatiq.Actor]:
    """Declare an actor on the application's broker (retries with exponential backoff)."""
    options.setdefault("max_retries", 5)
    options.setdefault("min_backoff", 1_000)
    options.setdefault("max_backoff", 300_000)

    def wrap(fn: Callable[..., Any]) -> dramatiq.Actor:
        return dramatiq.actor(fn, broker=broker, **options)

    return wrap


def is_in_process() -> bool:
    return isinstance(broker, StubBroker)


class InProcessWorker:
    """Runs the StubBroker's queues on worker threads inside the web process."""

    def __init__(self, threads: int = 2) -> None:
        self.worker: dramatiq.Worker | None = None
        self.threads = threads

    def start(self, *, any_broker: bool = False) -> None:
        """Start worker threads; only for the stub broker unless ``any_broker`` (tests)."""
        if self.worker is not None or not (is_in_process() or any_broker):
            return
        self.worker = dramatiq.Worker(broker, worker_threads=self.threads, worker_timeout=100)
        self.worker.start()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop(timeout=5_000)
            self.worker = None

    def drain(self, timeout_ms: int = 30_000) -> None:
        """Wait until every queued message has been processed (tests, demo).

        With a real broker and no worker in this process, workers are started for the wait.
        """
        started_here = self.worker is None
        if started_here:
            self.start(any_broker=True)
        try:
            for queue in list(broker.queues):
                if isinstance(broker, StubBroker):
                    broker.join(queue, timeout=timeout_ms, fail_fast=True)
                else:
                    broker.join(queue, timeout=timeout_ms)
            if self.worker is not None:
                self.worker.join()
        finally:
            if started_here:
                self.stop()


in_process_worker = InProcessWorker()


def broker_ping() -> None:
    """Raise when the broker cannot be reached (health check)."""
    if isinstance(broker, StubBroker):
        return
    from dramatiq.brokers.redis import RedisBroker

    if isinstance(broker, RedisBroker):
        broker.client.ping()
        return
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    if isinstance(broker, RabbitmqBroker):
        import pika

        conn = pika.BlockingConnection(broker.parameters)
        conn.close()
