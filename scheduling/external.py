"""Tutors' external calendars: fetch an ICS URL safely, expand its events into busy intervals and
store them as ``ExternalBusy`` rows, which block slots (``scheduling.availability``).

Fetching a URL that a user typed is a server-side request forgery risk, so:

* only ``http``/``https`` URLs without credentials;
* every address the host name resolves to must be public (no loopback, private, link-local,
  shared, multicast, reserved or unspecified address, no IPv6 ULA, no IPv4 hidden in an IPv6
  address); a host with one bad address is refused as a whole;
* the connection goes to the address that was checked (:class:`PinnedTransport` rewrites the
  request to the IP and sends the original name as Host header and TLS SNI, and the certificate is
  verified for that name), so DNS rebinding between the check and the connection gains nothing;
* redirects are followed by hand, at most three, each one checked the same way;
* 5 s to connect, 15 s for everything, 2 MB at most (streamed; the download stops beyond);
* no proxy from the environment (it would defeat the pinning).

A periodic job refreshes every calendar every 15 minutes with If-None-Match / If-Modified-Since;
a failure is recorded on the calendar (``last_error``, a code the page translates) and never
raises out of the job. The busy rows of a calendar are replaced in one transaction; after a
failure the previous rows stay (a flaky server must not open up times the tutor is busy).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import recurring_ical_events
from icalendar import Calendar
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace import jobs, periodic
from marketplace.db import transaction
from marketplace.i18n import gettext as _
from marketplace.settings import get_settings
from scheduling.models import Availability, ExternalBusy, ExternalCalendar

log = logging.getLogger(__name__)

MAX_BYTES = 2 * 1024 * 1024
CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 15.0
RESOLVE_TIMEOUT = 5.0
MAX_REDIRECTS = 3
MAX_URL_LENGTH = 2000
MAX_CALENDARS = 10  # per tutor
WINDOW_BEFORE = timedelta(days=1)
WINDOW_AFTER = timedelta(days=91)
#: Expansion limits (see :func:`busy_intervals`): occurrences read, recurring series expanded,
#: seconds of work. A big real calendar (7,000 events, 2 MB) takes about 3 s to parse and expand.
MAX_OCCURRENCES = 20_000
MAX_SERIES = 1_000
PARSE_SECONDS = 20.0
EXPANSION_STEP = timedelta(days=7)
#: A 304 keeps the stored busy rows; a full download at least this often moves the expansion window.
FULL_REFRESH = timedelta(hours=12)
REFRESH_SECONDS = 15 * 60
REDIRECT_CODES = {301, 302, 303, 307, 308}

Resolver = Callable[[str, int], Awaitable[list[str]]]


class FetchError(Exception):
    """A refused URL or a failed fetch. ``code`` is stored (``last_error``) and translated on display."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}:{detail}" if detail else code)
        self.code = code
        self.detail = detail

    @property
    def stored(self) -> str:
        return str(self)[:500]


def error_message(stored: str | None) -> str:
    """The translated text for a stored ``last_error`` (or a :class:`FetchError`'s ``stored``)."""
    if not stored:
        return ""
    code, _sep, detail = stored.partition(":")
    messages = {
        "scheme": _("The address must start with https:// or http://."),
        "url": _("This is not a valid web address."),
        "credentials": _("Addresses with a user name or password are not accepted."),
        "unresolvable": _("The server name could not be found."),
        "private_address": _(
            "This address points to a private or local network; only public internet addresses can be used."
        ),
        "timeout": _("The calendar server did not answer in time."),
        "connect": _("The calendar server could not be reached."),
        "too_large": _("The calendar is larger than 2 MB."),
        "not_ics": _("The address did not return an iCalendar (.ics) file."),
        "redirects": _("The address redirected too many times."),
        "unexpected": _("Something went wrong while reading this calendar."),
    }
    if code == "http_status":
        return _("The calendar server answered with HTTP status %(status)s.") % {"status": detail}
    return messages.get(code, messages["unexpected"])


# ---- address checks --------------------------------------------------------------------------

#: NAT64 (RFC 6052) embeds an IPv4 address in the last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def address_is_public(raw: str) -> bool:
    """True only for a globally routable unicast address. IPv4 addresses carried inside IPv6
    (mapped, 6to4, NAT64, Teredo, compatible) are judged by the IPv4 address they carry."""
    try:
        ip = ipaddress.ip_address(raw.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded: ipaddress.IPv4Address | None = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip.teredo:
            embedded = ip.teredo[1]
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is None and int(ip) >> 32 == 0:  # ::a.b.c.d (deprecated IPv4-compatible), ::, ::1
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
            if int(ip) <= 1:
                return False
        if embedded is not None:
            return address_is_public(str(embedded))
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
        or not ip.is_global
    )


async def system_resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


#: The resolver used when none is passed (tests put a fake one here or pass their own).
default_resolver: Resolver = system_resolve


def _http_transport() -> httpx.AsyncBaseTransport:
    return httpx.AsyncHTTPTransport(retries=0)


#: Makes the transport that really talks HTTP, under :class:`PinnedTransport` (tests put an
#: ``httpx.MockTransport`` factory here to run the jobs without network).
default_transport: Callable[[], httpx.AsyncBaseTransport] = _http_transport


def url_check(url: str) -> httpx.URL:
    """The checks that need no network: scheme, credentials, a host name, a sane length."""
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise FetchError("url")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise FetchError("url") from exc
    if parsed.scheme not in ("http", "https"):
        raise FetchError("scheme")
    if parsed.userinfo:
        raise FetchError("credentials")
    if not parsed.host:
        raise FetchError("url")
    try:
        _port(parsed)
    except ValueError as exc:
        raise FetchError("url") from exc
    return parsed


def _port(url: httpx.URL) -> int:
    port = url.port or (443 if url.scheme == "https" else 80)
    if not 0 < port < 65536:
        raise ValueError(port)
    return port


async def resolve_public(host: str, port: int, resolver: Resolver | None = None) -> str:
    """The address to connect to: every address of ``host`` must be public, else FetchError."""
    resolver = resolver or default_resolver
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT):
                addresses = await resolver(host, port)
        except TimeoutError as exc:
            raise FetchError("unresolvable") from exc
        except (OSError, UnicodeError) as exc:
            raise FetchError("unresolvable") from exc
    if not addresses:
        raise FetchError("unresolvable")
    if not all(address_is_public(a) for a in addresses):
        raise FetchError("private_address")
    return addresses[0]


async def url_validate(url: str, *, resolver: Resolver | None = None) -> str:
    """Everything that can be checked before saving a calendar (the add form's 400s)."""
    parsed = url_check(url)
    await resolve_public(parsed.host, _port(parsed), resolver)
    return str(parsed)


class PinnedTransport(httpx.AsyncBaseTransport):
    """Connects to the checked address: resolves and checks the request's host, then sends the
    request to that IP with the original Host header and TLS server name (certificate checked
    against the name). Every request (so every redirect hop) goes through the check."""

    def __init__(self, *, resolver: Resolver | None = None, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.resolver = resolver
        self.inner = inner or default_transport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url_check(str(request.url))
        host = request.url.host
        ip = await resolve_public(host, _port(request.url), self.resolver)
        extensions = dict(request.extensions)
        if request.url.scheme == "https":
            extensions["sni_hostname"] = host
        pinned = httpx.Request(
            request.method,
            request.url.copy_with(host=ip),
            headers=request.headers,  # carries Host: <original name>
            stream=request.stream,
            extensions=extensions,
        )
        return await self.inner.handle_async_request(pinned)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass(frozen=True, slots=True)
class Fetched:
    not_modified: bool
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None


async def fetch_ics(
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    resolver: Resolver | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Fetched:
    """Download a calendar under the rules in the module doc. ``transport`` is the inner transport
    (tests pass an ``httpx.MockTransport``); the address check and pinning always wrap it."""
    headers = {
        "User-Agent": f"Cadenza calendar sync (+{get_settings().base_url})",
        "Accept": "text/calendar, text/plain;q=0.5, */*;q=0.1",
    }
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    client = httpx.AsyncClient(
        transport=PinnedTransport(resolver=resolver, inner=transport),
        timeout=httpx.Timeout(TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT),
        follow_redirects=False,
        trust_env=False,
        headers=headers,
    )
    try:
        async with asyncio.timeout(TOTAL_TIMEOUT), client:
            return await _fetch_following(client, url_check(url))
    except TimeoutError as exc:
        raise FetchError("timeout") from exc
    except httpx.TimeoutException as exc:
        raise FetchError("timeout") from exc
    except httpx.HTTPError as exc:
        raise FetchError("connect", type(exc).__name__) from exc


async def _fetch_following(client: httpx.AsyncClient, url: httpx.URL) -> Fetched:
    for _hop in range(MAX_REDIRECTS + 1):
        async with client.stream("GET", url) as response:
            if response.status_code in REDIRECT_CODES:
                location = response.headers.get("location")
                if not location:
                    raise FetchError("http_status", str(response.status_code))
                try:
                    url = url_check(str(url.join(location)))
                except httpx.InvalidURL as exc:
                    raise FetchError("url") from exc
                continue
            if response.status_code == 304:
                return Fetched(not_modified=True)
            if response.status_code != 200:
                raise FetchError("http_status", str(response.status_code))
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_BYTES:
                raise FetchError("too_large")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_BYTES:
                    raise FetchError("too_large")
                chunks.append(chunk)
            return Fetched(
                not_modified=False,
                body=b"".join(chunks),
                etag=(response.headers.get("etag") or None),
                last_modified=(response.headers.get("last-modified") or None),
            )
    raise FetchError("redirects")


# ---- parsing ---------------------------------------------------------------------------------


def _instant(value: date | datetime, zone: ZoneInfo) -> datetime:
    """A DTSTART/DTEND value as a UTC instant: dates start at midnight in ``zone``, floating times
    are read in ``zone``."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0, 0))
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def busy_intervals(body: bytes, *, zone: str, now: datetime) -> list[tuple[datetime, datetime]]:
    """Busy UTC intervals within [now - 1 day, now + 91 days], merged and sorted.

    Recurring events are expanded; transparent (free) and cancelled events are skipped; all-day
    events block their whole days in ``zone`` (the tutor's availability zone). Raises
    ``FetchError("not_ics")`` for anything that is not an iCalendar file.
    """
    head = body[:64].lstrip(b"\xef\xbb\xbf \t\r\n").upper()
    if not head.startswith(b"BEGIN:VCALENDAR"):
        raise FetchError("not_ics")
    try:
        cal = Calendar.from_ical(body)
    except Exception as exc:  # icalendar raises ValueError, KeyError, ... on broken input
        raise FetchError("not_ics") from exc
    if not isinstance(cal, Calendar) or cal.name != "VCALENDAR":
        raise FetchError("not_ics")
    tz = ZoneInfo(zone)
    start, end = now - WINDOW_BEFORE, now + WINDOW_AFTER
    # Many recurring events: smaller steps, so that the caps stop a hostile file early.
    step = EXPANSION_STEP if _drop_costly_rules(cal, start) <= 100 else timedelta(days=1)
    intervals: list[tuple[datetime, datetime]] = []
    deadline = monotonic() + PARSE_SECONDS
    count = 0
    try:
        query = recurring_ical_events.of(cal, skip_bad_series=True)
        # Step by step: ``between`` is fast (``after`` is quadratic in the number of events), and
        # the caps below end the expansion after a whole step, so what is stored is complete up
        # to that day.
        chunk = start
        while chunk < end and count < MAX_OCCURRENCES and monotonic() < deadline:
            chunk_end = min(chunk + step, end)
            for event in query.between(chunk, chunk_end):
                count += 1
                if str(event.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
                    continue
                if str(event.get("STATUS", "")).upper() == "CANCELLED":
                    continue
                try:
                    ev_start, ev_end = _instant(event.start, tz), _instant(event.end, tz)
                except Exception:  # an event without a usable DTSTART is skipped, not fatal
                    log.debug("skipping an event without usable times", exc_info=True)
                    continue
                ev_start, ev_end = max(ev_start, start), min(ev_end, end)
                if ev_end > ev_start:
                    intervals.append((ev_start, ev_end))
            chunk = chunk_end
    except Exception as exc:  # a broken recurrence rule and the like
        raise FetchError("not_ics", type(exc).__name__) from exc
    return _merge(intervals)


def _drop_costly_rules(cal: Calendar, start: datetime) -> int:
    """Make the expansion's cost bounded by the file's size: recurrence rules that repeat more
    often than hourly (FREQ=SECONDLY/MINUTELY, or several BYMINUTE/BYSECOND values) keep only
    their first occurrence, series that ended before the window are left out, and at most
    MAX_SERIES recurring events are expanded. Returns the number of recurring events kept."""
    kept: list[Any] = []
    series = 0
    for component in cal.subcomponents:
        rule = component.get("RRULE") if component.name == "VEVENT" else None
        if rule is None:
            kept.append(component)
            continue
        rules = rule if isinstance(rule, list) else [rule]
        costly = any(
            str((r.get("FREQ") or [""])[0]).upper() in {"SECONDLY", "MINUTELY"}
            or len(r.get("BYMINUTE") or []) > 1
            or len(r.get("BYSECOND") or []) > 1
            for r in rules
        )
        if costly:
            del component["RRULE"]
            kept.append(component)
            continue
        untils = [r.get("UNTIL") for r in rules]
        if all(u for u in untils) and all(_until_before(u[0], start) for u in untils):
            continue
        series += 1
        if series <= MAX_SERIES:
            kept.append(component)
    cal.subcomponents[:] = kept
    return min(series, MAX_SERIES)


def _until_before(until: date | datetime, start: datetime) -> bool:
    if not isinstance(until, datetime):
        return until < start.date() - timedelta(days=1)
    if until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    return until < start - timedelta(days=1)


def _merge(intervals: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for s, e in sorted(intervals):
        if merged and s <= merged[-1][1]:
            if e > merged[-1][1]:
                merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


# ---- storing ---------------------------------------------------------------------------------


async def _tutor_zone(session: AsyncSession, tutor_id: uuid.UUID) -> str:
    zone = (
        await session.execute(select(Availability.zone).where(Availability.tutor_id == tutor_id))
    ).scalar_one_or_none()
    try:
        ZoneInfo(zone or "UTC")
    except (ValueError, KeyError):
        return "UTC"
    return zone or "UTC"


async def calendar_refresh(
    calendar_id: uuid.UUID,
    *,
    now: datetime | None = None,
    force: bool = False,
    resolver: Resolver | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> str | None:
    """Fetch one calendar and replace its busy rows. Returns the stored error (None on success).

    Never raises for anything the calendar's server does; the outcome is recorded on the row.
    ``force`` skips the conditional request (a tutor pressed "refresh").
    """
    now = now or datetime.now(UTC)
    async with transaction(write=False) as session:
        cal = await session.get(ExternalCalendar, calendar_id)
        if cal is None:
            return None
        url, tutor_id = cal.url, cal.tutor_id
        conditional = not force and cal.fetched_at is not None and now - cal.fetched_at < FULL_REFRESH
        etag, last_modified = (cal.etag, cal.last_modified) if conditional else (None, None)
        zone = await _tutor_zone(session, tutor_id)
    error: str | None = None
    fetched: Fetched | None = None
    intervals: list[tuple[datetime, datetime]] = []
    try:
        fetched = await fetch_ics(url, etag=etag, last_modified=last_modified, resolver=resolver, transport=transport)
        if not fetched.not_modified:
            intervals = await asyncio.to_thread(busy_intervals, fetched.body, zone=zone, now=now)
    except FetchError as exc:
        error = exc.stored
    except Exception:
        log.exception("calendar %s: unexpected failure", calendar_id)
        error = "unexpected"
    async with transaction() as session:
        # Locks the row on PostgreSQL (SQLite's write transaction is serialized already): two
        # refreshes of one calendar must not both insert their rows.
        cal = await session.get(ExternalCalendar, calendar_id, with_for_update=True, populate_existing=True)
        if cal is None or cal.url != url:
            return error  # removed (or replaced) while we were fetching
        if error is not None or fetched is None:
            cal.last_error = error
            return error
        cal.last_error = None
        if fetched.not_modified:
            return None
        await session.execute(delete(ExternalBusy).where(ExternalBusy.calendar_id == calendar_id))
        session.add_all(
            ExternalBusy(calendar_id=calendar_id, tutor_id=tutor_id, starts_at=s, ends_at=e) for s, e in intervals
        )
        cal.etag = (fetched.etag or "")[:300] or None
        cal.last_modified = (fetched.last_modified or "")[:100] or None
        cal.fetched_at = now
    return None


async def calendar_add(session: AsyncSession, *, tutor_id: uuid.UUID, url: str) -> ExternalCalendar:
    """Save a validated URL (:func:`url_validate` first) and fetch it after commit."""
    from marketplace.db import after_commit

    cal = ExternalCalendar(tutor_id=tutor_id, url=url)
    session.add(cal)
    await session.flush()
    cal_id = str(cal.id)
    after_commit(session, lambda: external_calendar_fetch.send(cal_id))
    return cal


@jobs.actor(queue_name="calendars", max_retries=0, time_limit=120_000)
async def external_calendar_fetch(calendar_id: str, force: bool = False) -> None:
    """Refresh one calendar; failures are recorded on it, not retried (the next tick retries)."""
    try:
        await calendar_refresh(uuid.UUID(calendar_id), force=force)
    except Exception:  # the database itself failed: log it, the periodic job tries again
        log.exception("calendar %s could not be refreshed", calendar_id)


@periodic.every(REFRESH_SECONDS)
@jobs.actor(queue_name="calendars", max_retries=0)
async def external_calendars_refresh() -> None:
    """Every 15 minutes: one fetch job per external calendar (idempotent; jobs spread over workers)."""
    async with transaction(write=False) as session:
        ids = list((await session.execute(select(ExternalCalendar.id).order_by(ExternalCalendar.id))).scalars())
    for calendar_id in ids:
        external_calendar_fetch.send(str(calendar_id))
