"""Health check, localized error pages, and errors that never become 500s."""

from marketplace import jobs


async def test_healthz_reports_database_and_broker(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("ok")


async def test_healthz_is_503_when_the_broker_is_down(client, monkeypatch):
    def down():
        raise ConnectionError("no broker")

    monkeypatch.setattr(jobs, "broker_ping", down)
    response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "error: ConnectionError"


async def test_not_found_page_is_localized(client):
    en = await client.get("/no/such/page")
    assert en.status_code == 404 and "Page not found" in en.text and 'href="#main"' in en.text
    de = await client.get("/no/such/page", headers={"Accept-Language": "de"})
    assert de.status_code == 404 and "Seite nicht gefunden" in de.text
    assert "frame-ancestors" in de.headers["content-security-policy"]


async def test_api_paths_get_json_errors(client):
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["status"] == 404


async def test_unexpected_errors_get_a_localized_500_page(app, client, monkeypatch):
    from marketplace import pages

    async def broken(*args, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(pages, "session_factory", lambda: broken)
    # /healthz catches its own errors; the admin page does not: use the home page's template path instead.
    from litestar import get
    from litestar.testing import AsyncTestClient

    from marketplace.app import create_app

    @get("/explode", include_in_schema=False)
    async def explode() -> str:
        raise RuntimeError("kaboom")

    test_app = create_app()
    test_app.register(explode)
    async with AsyncTestClient(app=test_app) as c:
        response = await c.get("/explode", headers={"Accept-Language": "de"})
    assert response.status_code == 500
    assert "Etwas ist schiefgelaufen" in response.text or "Unerwarteter" in response.text
    assert "kaboom" not in response.text


async def test_method_not_allowed_is_a_clear_4xx(client):
    response = await client.put("/login")
    assert response.status_code in (403, 405)


async def test_oversized_request_bodies_are_refused(client):
    from tests.helpers import csrf_token

    token = await csrf_token(client, "/signup")
    response = await client.post("/signup", data={"_csrf_token": token, "display_name": "x" * (3 * 1024 * 1024)})
    assert response.status_code == 413


async def test_bare_route_is_the_benchmark_floor(client):
    response = await client.get("/bare")
    assert response.status_code == 200 and response.text == "ok"
    assert "set-cookie" not in response.headers
