async def test_home_page_renders_with_security_headers(client):
    response = await client.get("/")
    assert response.status_code == 200
    assert "Cadenza" in response.text
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
