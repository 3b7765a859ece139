def test_server_fixture_serves_health(server):
    import httpx

    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    with server.client() as c:
        assert c.list_models() == []
