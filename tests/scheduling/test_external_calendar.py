"""External calendars: the address checks against server-side request forgery, the fetch rules
(timeouts, size, 304, redirects), parsing into busy times, the pages, the periodic job, and busy
times blocking slots. No test touches the internet: resolvers and transports are injected."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from sqlalchemy import func, select

from marketplace import periodic
from marketplace.db import session_factory, transaction
from scheduling import external
from scheduling.availability import tutor_slots
from scheduling.external import FetchError, address_is_public, busy_intervals, calendar_refresh, fetch_ics
from scheduling.models import Availability, ExternalBusy, ExternalCalendar
from tests.helpers import log_in, make_user, post_form

PUBLIC = "93.184.216.34"
PUBLIC_2 = "2606:2800:220:1:248:1893:25c8:1946"
NOW = datetime(2030, 1, 7, 6, 0, tzinfo=UTC)  # a Monday morning

ICS = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Test//Test//EN\r
BEGIN:VEVENT\r
UID:weekly@test\r
DTSTAMP:20300101T000000Z\r
DTSTART;TZID=Europe/Berlin:20300107T100000\r
DTEND;TZID=Europe/Berlin:20300107T120000\r
RRULE:FREQ=WEEKLY;COUNT=3\r
SUMMARY:Orchestra rehearsal\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:free@test\r
DTSTAMP:20300101T000000Z\r
DTSTART:20300108T080000Z\r
DTEND:20300108T090000Z\r
TRANSP:TRANSPARENT\r
SUMMARY:Free time\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:cancelled@test\r
DTSTAMP:20300101T000000Z\r
DTSTART:20300108T120000Z\r
DTEND:20300108T130000Z\r
STATUS:CANCELLED\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:holiday@test\r
DTSTAMP:20300101T000000Z\r
DTSTART;VALUE=DATE:20300110\r
DTEND;VALUE=DATE:20300111\r
SUMMARY:Holiday\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:floating@test\r
DTSTAMP:20300101T000000Z\r
DTSTART:20300111T150000\r
DTEND:20300111T153000\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:long-ago@test\r
DTSTAMP:20300101T000000Z\r
DTSTART:20290101T100000Z\r
DTEND:20290101T110000Z\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:far-away@test\r
DTSTAMP:20300101T000000Z\r
DTSTART:20300901T100000Z\r
DTEND:20300901T110000Z\r
END:VEVENT\r
END:VCALENDAR\r
"""


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def resolver_for(table: dict[str, list[str]]):
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def ics_tomorrow() -> tuple[str, bytes]:
    """A calendar with one busy hour tomorrow (for jobs, which run at the real time)."""
    start = (datetime.now(UTC) + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    begin, end = start.strftime("%Y%m%dT%H%M%SZ"), (start + timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")
    body = ICS.replace(b"20300108T080000Z", begin.encode()).replace(b"20300108T090000Z", end.encode())
    return begin, body.replace(b"TRANSP:TRANSPARENT", b"TRANSP:OPAQUE")


PUBLIC_DNS = resolver_for({"cal.example.com": [PUBLIC], "other.example.org": [PUBLIC_2]})


def ics_response(request: httpx.Request, body: bytes = ICS, **headers: str) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"content-type": "text/calendar", **headers})


# ---- address checks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.10.0.5",
        "10.0.0.1",
        "10.255.1.2",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.10",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # shared address space (carrier NAT)
        "0.0.0.0",  # noqa: S104 - an address under test, nothing binds to it
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",  # documentation
        "::1",
        "::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::1",  # 6to4 around 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 around 10.0.0.1
        "2001:db8::1",  # documentation
        "not an address",
    ],
)
def test_private_and_special_addresses_are_refused(address):
    assert address_is_public(address) is False


@pytest.mark.parametrize(
    "address", [PUBLIC, "8.8.8.8", "1.1.1.1", PUBLIC_2, "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address):
    assert address_is_public(address) is True


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("", "url"),
        ("ftp://cal.example.com/a.ics", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("webcal://cal.example.com/a.ics", "scheme"),
        ("https://user:secret@cal.example.com/a.ics", "credentials"),
        ("https://user@cal.example.com/a.ics", "credentials"),
        ("https:///no-host.ics", "url"),
        ("https://cal.example.com/" + "a" * 2100, "url"),
    ],
)
async def test_urls_are_checked_before_any_lookup(url, code):
    resolve = resolver_for({})
    with pytest.raises(FetchError) as info:
        await external.url_validate(url, resolver=resolve)
    assert info.value.code == code
    assert resolve.calls == []


@pytest.mark.parametrize(
    ("table", "code"),
    [
        ({"cal.example.com": ["127.0.0.1"]}, "private_address"),
        ({"cal.example.com": ["10.1.2.3"]}, "private_address"),
        ({"cal.example.com": [PUBLIC, "192.168.0.5"]}, "private_address"),  # one bad address is enough
        ({"cal.example.com": ["::ffff:127.0.0.1"]}, "private_address"),
        ({"cal.example.com": []}, "unresolvable"),
        ({}, "unresolvable"),
    ],
)
async def test_every_resolved_address_must_be_public(table, code):
    with pytest.raises(FetchError) as info:
        await external.url_validate("https://cal.example.com/a.ics", resolver=resolver_for(table))
    assert info.value.code == code


async def test_literal_addresses_are_judged_without_dns():
    resolve = resolver_for({})
    for url in ("http://127.0.0.1/a.ics", "http://[::1]:8080/a.ics", "http://169.254.169.254/latest/meta-data"):
        with pytest.raises(FetchError) as info:
            await external.url_validate(url, resolver=resolve)
        assert info.value.code == "private_address"
    assert await external.url_validate(f"https://{PUBLIC}/a.ics", resolver=resolve) == f"https://{PUBLIC}/a.ics"
    assert resolve.calls == []


# ---- fetching --------------------------------------------------------------------------------


async def test_the_connection_goes_to_the_checked_address_with_the_original_name():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ics_response(request, etag='"v1"', **{"last-modified": "Mon, 07 Jan 2030 05:00:00 GMT"})

    result = await fetch_ics(
        "https://cal.example.com:8443/team.ics?key=1", resolver=PUBLIC_DNS, transport=httpx.MockTransport(handler)
    )
    (request,) = seen
    assert request.url.host == PUBLIC and request.url.port == 8443 and request.url.query == b"key=1"
    assert request.headers["host"] == "cal.example.com:8443"
    assert request.extensions["sni_hostname"] == "cal.example.com"  # TLS name and certificate check
    assert "if-none-match" not in request.headers
    assert result.body == ICS and result.etag == '"v1"' and not result.not_modified
    assert result.last_modified == "Mon, 07 Jan 2030 05:00:00 GMT"


async def test_a_304_answer_to_the_stored_validators_is_not_modified():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(304)

    result = await fetch_ics(
        "https://cal.example.com/a.ics",
        etag='"v1"',
        last_modified="Mon, 07 Jan 2030 05:00:00 GMT",
        resolver=PUBLIC_DNS,
        transport=httpx.MockTransport(handler),
    )
    assert result.not_modified
    assert seen[0].headers["if-none-match"] == '"v1"'
    assert seen[0].headers["if-modified-since"] == "Mon, 07 Jan 2030 05:00:00 GMT"


async def test_redirects_are_followed_and_each_hop_is_checked():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.headers['host']}{request.url.path}")
        if request.url.path == "/start.ics":
            return httpx.Response(302, headers={"location": "https://other.example.org/moved.ics"})
        return ics_response(request)

    result = await fetch_ics(
        "https://cal.example.com/start.ics", resolver=PUBLIC_DNS, transport=httpx.MockTransport(handler)
    )
    assert result.body == ICS
    assert seen == ["cal.example.com/start.ics", "other.example.org/moved.ics"]


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1:8080/internal.ics",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://intranet.local/cal.ics",  # resolves to a private address below
        "ftp://cal.example.com/x",
        "http://admin:pw@cal.example.com/x",
    ],
)
async def test_a_redirect_into_the_private_network_is_refused(location):
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(301, headers={"location": location})

    dns = resolver_for({"cal.example.com": [PUBLIC], "intranet.local": ["10.0.0.8"]})
    with pytest.raises(FetchError) as info:
        await fetch_ics("https://cal.example.com/a.ics", resolver=dns, transport=httpx.MockTransport(handler))
    assert info.value.code in {"private_address", "scheme", "credentials"}
    assert len(seen) == 1  # the private target was never contacted


async def test_more_than_three_redirects_are_refused():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(307, headers={"location": f"/hop{len(seen)}.ics"})

    with pytest.raises(FetchError) as info:
        await fetch_ics("https://cal.example.com/a.ics", resolver=PUBLIC_DNS, transport=httpx.MockTransport(handler))
    assert info.value.code == "redirects"
    assert seen == ["/a.ics", "/hop1.ics", "/hop2.ics", "/hop3.ics"]


async def test_a_download_beyond_2_mb_is_stopped():
    sent: list[int] = []

    async def endless():
        for _ in range(100):  # 6.4 MB if nobody stopped reading
            sent.append(1)
            yield b"x" * 65_536

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless())  # streamed, no Content-Length

    with pytest.raises(FetchError) as info:
        await fetch_ics("https://cal.example.com/a.ics", resolver=PUBLIC_DNS, transport=httpx.MockTransport(handler))
    assert info.value.code == "too_large"
    assert len(sent) <= 34  # 2 MB / 64 KiB = 32 chunks, plus the one that crossed the limit

    def declared(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"BEGIN:VCALENDAR", headers={"content-length": str(50_000_000)})

    with pytest.raises(FetchError) as info:
        await fetch_ics("https://cal.example.com/a.ics", resolver=PUBLIC_DNS, transport=httpx.MockTransport(declared))
    assert info.value.code == "too_large"


async def test_a_server_that_does_not_answer_in_time_is_a_timeout(monkeypatch):
    monkeypatch.setattr(external, "TOTAL_TIMEOUT", 0.3)

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return ics_response(request)

    started = time.monotonic()
    with pytest.raises(FetchError) as info:
        await fetch_ics("https://cal.example.com/a.ics", resolver=PUBLIC_DNS, transport=httpx.MockTransport(slow))
    assert info.value.code == "timeout"
    assert time.monotonic() - started < 2

    def connect_timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    with pytest.raises(FetchError) as info:
        await fetch_ics(
            "https://cal.example.com/a.ics", resolver=PUBLIC_DNS, transport=httpx.MockTransport(connect_timeout)
        )
    assert info.value.code == "timeout"


async def test_the_client_timeouts_are_5_seconds_to_connect_and_15_in_all():
    assert external.CONNECT_TIMEOUT == 5 and external.TOTAL_TIMEOUT == 15 and external.MAX_BYTES == 2 * 1024 * 1024


async def test_http_errors_and_unreachable_servers_are_reported():
    def not_found(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404)

    with pytest.raises(FetchError) as info:
        await fetch_ics("https://cal.example.com/a.ics", resolver=PUBLIC_DNS, transport=httpx.MockTransport(not_found))
    assert info.value.stored == "http_status:404"
    assert "404" in external.error_message(info.value.stored)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(FetchError) as info:
        await fetch_ics("https://cal.example.com/a.ics", resolver=PUBLIC_DNS, transport=httpx.MockTransport(refused))
    assert info.value.code == "connect"


# ---- with real sockets (a local server) ------------------------------------------------------


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.requests = []  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def requests(self) -> list[dict[str, str]]:
        return self.httpd.requests  # type: ignore[attr-defined]


class _IcsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.requests.append({"path": self.path, "host": self.headers.get("Host", "")})  # type: ignore[attr-defined]
        if self.path == "/slow.ics":
            self.send_response(200)
            self.send_header("Content-Type", "text/calendar")
            self.end_headers()
            self.wfile.write(b"BEGIN:VCALENDAR\r\n")
            self.wfile.flush()
            time.sleep(3)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/calendar")
        self.send_header("Content-Length", str(len(ICS)))
        self.end_headers()
        self.wfile.write(ICS)

    def log_message(self, *args: object) -> None:
        pass


async def test_a_local_server_is_never_contacted():
    with _Server(_IcsHandler) as server:
        for url, dns in (
            (f"http://127.0.0.1:{server.port}/cal.ics", resolver_for({})),
            (f"http://calendar.test:{server.port}/cal.ics", resolver_for({"calendar.test": ["127.0.0.1"]})),
            (f"http://localhost:{server.port}/cal.ics", resolver_for({"localhost": ["127.0.0.1", "::1"]})),
        ):
            with pytest.raises(FetchError) as info:
                await fetch_ics(url, resolver=dns)
            assert info.value.code == "private_address"
    assert server.requests == []


async def test_over_real_sockets_the_pinned_address_is_used_and_slow_bodies_time_out(monkeypatch):
    """Only here is 127.0.0.1 let through, to show the real transport connects to the checked
    address while the server sees the original host name."""
    monkeypatch.setattr(external, "address_is_public", lambda ip: ip == "127.0.0.1")
    dns = resolver_for({"calendar.test": ["127.0.0.1"]})
    with _Server(_IcsHandler) as server:
        result = await fetch_ics(f"http://calendar.test:{server.port}/cal.ics", resolver=dns)
        assert result.body == ICS
        assert server.requests == [{"path": "/cal.ics", "host": f"calendar.test:{server.port}"}]
        monkeypatch.setattr(external, "TOTAL_TIMEOUT", 0.5)
        started = time.monotonic()
        with pytest.raises(FetchError) as info:
            await fetch_ics(f"http://calendar.test:{server.port}/slow.ics", resolver=dns)
        assert info.value.code == "timeout" and time.monotonic() - started < 2.5


# ---- parsing ---------------------------------------------------------------------------------


def test_events_become_merged_busy_times_in_the_window():
    busy = busy_intervals(ICS, zone="Europe/Berlin", now=NOW)
    assert busy == [
        (utc(2030, 1, 7, 9), utc(2030, 1, 7, 11)),  # weekly rehearsal, 10:00-12:00 Berlin
        (utc(2030, 1, 9, 23), utc(2030, 1, 10, 23)),  # all-day holiday: the whole 10th in Berlin
        (utc(2030, 1, 11, 14), utc(2030, 1, 11, 14, 30)),  # floating time read in the tutor's zone
        (utc(2030, 1, 14, 9), utc(2030, 1, 14, 11)),
        (utc(2030, 1, 21, 9), utc(2030, 1, 21, 11)),
    ]  # transparent, cancelled, long past and far future events are not there


def test_all_day_events_follow_the_tutors_zone():
    busy = busy_intervals(ICS, zone="America/New_York", now=NOW)
    assert (utc(2030, 1, 10, 5), utc(2030, 1, 11, 5)) in busy


def test_an_endless_rule_stays_inside_the_window_and_is_bounded():
    body = b"""BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTAMP:20300101T000000Z\r
DTSTART:20200101T080000Z\r\nDTEND:20200101T081000Z\r\nRRULE:FREQ=DAILY\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:b\r
DTSTAMP:20300101T000000Z\r\nDTSTART:20300101T000000Z\r\nDTEND:20300101T000030Z\r\nRRULE:FREQ=MINUTELY\r\nEND:VEVENT\r
END:VCALENDAR\r\n"""
    started = time.monotonic()
    busy = busy_intervals(body, zone="UTC", now=NOW)
    assert time.monotonic() - started < 30
    assert busy and busy[0][0] >= NOW - timedelta(days=1)
    assert all(end <= NOW + timedelta(days=91) for _start, end in busy)


def _calendar(events: list[str]) -> bytes:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n" + "".join(events) + "END:VCALENDAR\r\n").encode()


def test_a_big_calendar_is_read_in_seconds():
    events = []
    for i in range(3000):
        start = NOW + timedelta(hours=(3 * i) % (24 * 90), minutes=i % 60)
        events.append(
            f"BEGIN:VEVENT\r\nUID:e{i}\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:{start:%Y%m%dT%H%M%SZ}\r\n"
            f"DTEND:{start + timedelta(minutes=45):%Y%m%dT%H%M%SZ}\r\nSUMMARY:Event {i}\r\n"
            f"DESCRIPTION:{'x' * 150}\r\nEND:VEVENT\r\n"
        )
    started = time.monotonic()
    busy = busy_intervals(_calendar(events), zone="UTC", now=NOW)
    assert time.monotonic() - started < 15
    assert len(busy) == 720  # every 3 hours for 90 days, merged where they touch


def test_a_hostile_calendar_costs_bounded_work():
    """5,000 series firing every hour: the expansion stops at its caps instead of running for minutes."""
    rule = "RRULE:FREQ=DAILY;BYHOUR=" + ",".join(str(h) for h in range(24))
    events = [
        f"BEGIN:VEVENT\r\nUID:h{i}\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300101T000000Z\r\n"
        f"DTEND:20300101T000500Z\r\n{rule}\r\nEND:VEVENT\r\n"
        for i in range(5000)
    ]
    started = time.monotonic()
    busy = busy_intervals(_calendar(events), zone="UTC", now=NOW)
    assert time.monotonic() - started < 20
    assert busy and busy[-1][1] <= NOW + timedelta(days=3)  # complete for the first day(s), then stopped


@pytest.mark.parametrize(
    "body",
    [
        b"<!doctype html><html><body>Log in</body></html>",
        b'{"events": []}',
        b"",
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:garbage\r\n",
    ],
)
def test_anything_but_icalendar_is_a_clear_error(body):
    with pytest.raises(FetchError) as info:
        busy_intervals(body, zone="UTC", now=NOW)
    assert info.value.code == "not_ics"
    assert "iCalendar" in external.error_message(info.value.stored)


# ---- storing, and busy times blocking slots --------------------------------------------------


async def tutor_with_calendar(url: str = "https://cal.example.com/team.ics"):
    tutor = await make_user(email="tutor@example.com", role="tutor", name="Clara Tutor")
    async with transaction() as session:
        session.add(
            Availability(
                tutor_id=tutor.id,
                zone="Europe/Berlin",
                weekly={str(d): [["09:00", "17:00"]] for d in range(7)},
                notice_minutes=0,
                horizon_days=60,
            )
        )
        cal = ExternalCalendar(tutor_id=tutor.id, url=url)
        session.add(cal)
    return tutor, cal


async def busy_rows(calendar_id) -> list[tuple[datetime, datetime]]:
    async with session_factory()() as session:
        rows = await session.execute(
            select(ExternalBusy.starts_at, ExternalBusy.ends_at)
            .where(ExternalBusy.calendar_id == calendar_id)
            .order_by(ExternalBusy.starts_at)
        )
        return [tuple(r) for r in rows]


async def stored(calendar_id) -> ExternalCalendar:
    async with session_factory()() as session:
        return await session.get(ExternalCalendar, calendar_id)


async def slot_starts(tutor_id, day: date) -> set[datetime]:
    async with session_factory()() as session:
        slots = await tutor_slots(
            session, tutor_id, duration=60, viewer_zone="UTC", date_from=day, date_to=day, now=NOW
        )
    return {s.start for s in slots}


async def test_busy_times_are_stored_and_block_slots_then_304_keeps_them():
    tutor, cal = await tutor_with_calendar()
    before = await slot_starts(tutor.id, date(2030, 1, 7))
    assert {utc(2030, 1, 7, 9), utc(2030, 1, 7, 10), utc(2030, 1, 7, 11)} <= before

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304)
        return ics_response(request, etag='"v1"')

    transport = httpx.MockTransport(handler)
    assert await calendar_refresh(cal.id, now=NOW, resolver=PUBLIC_DNS, transport=transport) is None
    rows = await busy_rows(cal.id)
    assert rows[0] == (utc(2030, 1, 7, 9), utc(2030, 1, 7, 11)) and len(rows) == 5
    row = await stored(cal.id)
    assert row.etag == '"v1"' and row.fetched_at == NOW and row.last_error is None

    after = await slot_starts(tutor.id, date(2030, 1, 7))
    assert utc(2030, 1, 7, 9) not in after and utc(2030, 1, 7, 10) not in after
    assert utc(2030, 1, 7, 10, 30) not in after  # would end inside the busy time
    assert utc(2030, 1, 7, 8) in after and utc(2030, 1, 7, 11) in after
    assert await slot_starts(tutor.id, date(2030, 1, 10)) == set()  # the all-day holiday

    later = NOW + timedelta(minutes=15)
    assert await calendar_refresh(cal.id, now=later, resolver=PUBLIC_DNS, transport=transport) is None
    assert seen[-1].headers["if-none-match"] == '"v1"'
    assert await busy_rows(cal.id) == rows  # 304: unchanged

    # Twelve hours on, the calendar is downloaded in full again so the window moves on.
    assert (
        await calendar_refresh(cal.id, now=NOW + timedelta(hours=13), resolver=PUBLIC_DNS, transport=transport) is None
    )
    assert "if-none-match" not in seen[-1].headers


async def test_new_content_replaces_the_rows_and_failures_keep_them():
    _tutor, cal = await tutor_with_calendar()
    bodies = [ICS]

    def handler(request: httpx.Request) -> httpx.Response:
        return ics_response(request, body=bodies[-1])

    transport = httpx.MockTransport(handler)
    await calendar_refresh(cal.id, now=NOW, resolver=PUBLIC_DNS, transport=transport)
    assert len(await busy_rows(cal.id)) == 5
    bodies.append(ICS.replace(b"COUNT=3", b"COUNT=1"))
    await calendar_refresh(cal.id, now=NOW, resolver=PUBLIC_DNS, transport=transport, force=True)
    good = await busy_rows(cal.id)
    assert len(good) == 3

    bodies.append(b"<html>Sign in to see this calendar</html>")
    error = await calendar_refresh(cal.id, now=NOW, resolver=PUBLIC_DNS, transport=transport, force=True)
    assert error == "not_ics"
    row = await stored(cal.id)
    assert row.last_error == "not_ics" and row.fetched_at == NOW
    assert await busy_rows(cal.id) == good  # a failure does not free the tutor's busy times

    moved = resolver_for({"cal.example.com": ["10.0.0.7"]})  # the name now points inside
    assert await calendar_refresh(cal.id, now=NOW, resolver=moved, transport=transport, force=True) == "private_address"
    assert (await stored(cal.id)).last_error == "private_address"


async def test_a_refresh_never_raises_even_on_unexpected_errors(monkeypatch):
    _tutor, cal = await tutor_with_calendar()

    def boom(*args, **kwargs):
        raise RuntimeError("parser bug")

    monkeypatch.setattr(external, "busy_intervals", boom)
    transport = httpx.MockTransport(ics_response)
    assert await calendar_refresh(cal.id, now=NOW, resolver=PUBLIC_DNS, transport=transport) == "unexpected"
    assert (await stored(cal.id)).last_error == "unexpected"


async def test_the_periodic_job_refreshes_every_calendar(monkeypatch, drain_jobs):
    assert periodic.registered()["external_calendars_refresh"].seconds == 15 * 60
    tutor, good = await tutor_with_calendar()
    async with transaction() as session:
        bad = ExternalCalendar(tutor_id=tutor.id, url="https://other.example.org/missing.ics")
        session.add(bad)

    tomorrow, body = ics_tomorrow()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["host"] == "other.example.org":
            return httpx.Response(404)
        return ics_response(request, body=body)

    monkeypatch.setattr(external, "default_resolver", PUBLIC_DNS)
    monkeypatch.setattr(external, "default_transport", lambda: httpx.MockTransport(handler))
    external.external_calendars_refresh.send()
    await asyncio.to_thread(drain_jobs)
    assert [start.strftime("%Y%m%dT%H%M%SZ") for start, _end in await busy_rows(good.id)] == [tomorrow]
    assert (await stored(good.id)).last_error is None and (await stored(good.id)).fetched_at is not None
    assert (await stored(bad.id)).last_error == "http_status:404"


# ---- the page --------------------------------------------------------------------------------


async def count_calendars() -> int:
    async with session_factory()() as session:
        return (await session.execute(select(func.count()).select_from(ExternalCalendar))).scalar_one()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:8000/cal.ics", "private or local network"),
        ("http://192.168.0.1/cal.ics", "private or local network"),
        ("https://intranet.example.com/cal.ics", "private or local network"),
        ("ftp://cal.example.com/cal.ics", "https://"),
        ("https://me:secret@cal.example.com/cal.ics", "user name or password"),
        ("https://nowhere.example.net/cal.ics", "could not be found"),
        ("not a url", "https://"),
    ],
)
async def test_adding_a_bad_address_is_a_400_and_saves_nothing(client, monkeypatch, url, message):
    monkeypatch.setattr(
        external, "default_resolver", resolver_for({"cal.example.com": [PUBLIC], "intranet.example.com": ["10.2.3.4"]})
    )
    await make_user(email="tutor@example.com", role="tutor")
    await log_in(client, "tutor@example.com", "correct horse battery")
    response = await post_form(client, "/calendar/external", {"url": url}, page="/calendar")
    assert response.status_code == 400
    assert message in response.text
    assert 'aria-invalid="true"' in response.text
    assert await count_calendars() == 0


async def test_a_tutor_adds_a_calendar_and_sees_its_result(client, monkeypatch, drain_jobs):
    monkeypatch.setattr(external, "default_resolver", PUBLIC_DNS)
    _tomorrow, body = ics_tomorrow()
    monkeypatch.setattr(
        external, "default_transport", lambda: httpx.MockTransport(lambda r: ics_response(r, body=body))
    )
    await make_user(email="tutor@example.com", role="tutor")
    await log_in(client, "tutor@example.com", "correct horse battery")
    page = await client.get("/calendar")
    assert "Busy times from your other calendars" in page.text
    response = await post_form(
        client,
        "/calendar/external",
        {"url": " https://cal.example.com/team.ics "},
        page="/calendar",
        follow_redirects=False,
    )
    assert response.status_code == 303
    async with session_factory()() as session:
        (cal,) = (await session.execute(select(ExternalCalendar))).scalars()
    assert cal.url == "https://cal.example.com/team.ics"
    await asyncio.to_thread(drain_jobs)
    done = await client.get(f"/calendar/external/{cal.id}/status", headers={"HX-Request": "true"})
    assert "Busy times read on" in done.text and "hx-trigger" not in done.text
    assert len(await busy_rows(cal.id)) > 0

    again = await post_form(client, "/calendar/external", {"url": "https://cal.example.com/team.ics"}, page="/calendar")
    assert again.status_code == 400 and "already added" in again.text

    removed = await post_form(
        client, f"/calendar/external/{cal.id}/delete", {}, page="/calendar", follow_redirects=False
    )
    assert removed.status_code == 303
    assert await count_calendars() == 0 and await busy_rows(cal.id) == []


async def test_a_calendar_being_read_is_polled_until_done(client):
    _tutor, cal = await tutor_with_calendar()  # saved, not fetched yet
    await log_in(client, "tutor@example.com", "correct horse battery")
    page = await client.get("/calendar")
    assert f'hx-get="/calendar/external/{cal.id}/status" hx-trigger="every 2s"' in page.text
    assert 'role="status" aria-live="polite"' in page.text
    partial = await client.get(f"/calendar/external/{cal.id}/status", headers={"HX-Request": "true"})
    assert partial.text.lstrip().startswith("<p") and "<html" not in partial.text
    assert 'hx-trigger="every 2s"' in partial.text
    without_js = await client.get(f"/calendar/external/{cal.id}/status", follow_redirects=False)
    assert without_js.status_code == 303


async def test_a_failed_fetch_is_explained_on_the_page(client, monkeypatch, drain_jobs):
    monkeypatch.setattr(external, "default_resolver", PUBLIC_DNS)
    monkeypatch.setattr(
        external, "default_transport", lambda: httpx.MockTransport(lambda r: ics_response(r, body=b"<html></html>"))
    )
    await make_user(email="tutor@example.com", role="tutor")
    await log_in(client, "tutor@example.com", "correct horse battery")
    await post_form(client, "/calendar/external", {"url": "https://cal.example.com/team.ics"}, page="/calendar")
    await asyncio.to_thread(drain_jobs)
    page = await client.get("/calendar")
    assert "Could not read this calendar: The address did not return an iCalendar (.ics) file." in page.text


async def test_students_and_other_tutors_cannot_touch_a_tutors_calendars(client, monkeypatch):
    _tutor, cal = await tutor_with_calendar()
    await make_user(email="ana@example.com")
    await log_in(client, "ana@example.com", "correct horse battery")
    page = await client.get("/calendar")
    assert page.status_code == 200 and "Busy times from your other calendars" not in page.text
    response = await post_form(client, "/calendar/external", {"url": "https://cal.example.com/x.ics"}, page="/calendar")
    assert response.status_code == 403

    await make_user(email="other@example.com", role="tutor")
    await log_in(client, "other@example.com", "correct horse battery")
    for action in ("delete", "refresh"):
        response = await post_form(client, f"/calendar/external/{cal.id}/{action}", {}, page="/calendar")
        assert response.status_code == 404
    assert (await client.get(f"/calendar/external/{cal.id}/status")).status_code == 404
    assert await count_calendars() == 1
