"""GET /api/admin/v1/shape (docs/HTTP.md): the queue's shape by domain and
age, the same document `sluice queue shape --json` prints for the same
queue (both merge with admin/shape.h), with ?top= naming fewer domains and
bad values refused.
"""

from __future__ import annotations

import pytest

from test_http import admin_relay, call, cli_json  # noqa: F401 (the fixture)


@pytest.mark.time_limit(90)
def test_shape_matches_the_cli(admin_relay):  # noqa: F811
    relay, token, _ids = admin_relay
    code, _, shape = call(relay, "GET", "/api/admin/v1/shape", token)
    assert code == 200, shape
    cli = cli_json(relay, "shape")
    assert shape == cli, (shape, cli)
    assert shape["source"] == "daemon"
    assert shape["total"]["total"] == 3
    assert {d["domain"]: d["total"] for d in shape["domains"]} == {"d1.test": 2, "d2.test": 1}
    assert shape["domains"][0]["counts"][0] == 2  # younger than 5 minutes

    code, _, top1 = call(relay, "GET", "/api/admin/v1/shape?top=1", token)
    assert code == 200 and [d["domain"] for d in top1["domains"]] == ["d1.test"], top1
    assert top1["other"] == {"domains": 1, "total": 1, "counts": [1, 0, 0, 0, 0, 0, 0]}, top1

    code, _, err = call(relay, "GET", "/api/admin/v1/shape?top=x", token)
    assert code == 400 and "top" in err["error"], err
    code, _, err = call(relay, "GET", "/api/admin/v1/shape")
    assert code == 401, err
    code, headers, err = call(relay, "POST", "/api/admin/v1/shape", token)
    assert code == 405 and headers["allow"] == "GET, HEAD", err
