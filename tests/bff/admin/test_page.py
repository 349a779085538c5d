"""The admin page in headless Chromium: sign in, charts drawn from live traffic, a screenshot."""

from __future__ import annotations

import base64
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bff.gateway import build_gateway
from tests.conftest import SampleServices
from tests.support.chromium import CHROMIUM, Chromium
from tests.support.gateway import demo_config
from tests.support.png import decode_png
from tests.support.servers import ThreadedServer, free_port

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"{CHROMIUM} is absent (apt-get install chromium; .ci/run does)",
)

TOKEN = "demo-admin-token"
ADMIN = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def served(services: SampleServices) -> Iterator[ThreadedServer]:
    overrides = {
        "rate_limits": {"plans": None},
        # An upstream nobody listens on: its breaker opens, for the page to show.
        "upstreams": {
            "flaky": {
                "targets": [f"http://127.0.0.1:{free_port()}"],
                "breaker": {"failure_threshold": 2, "recovery_timeout": 60},
                "retries": {"attempts": 0},
            }
        },
        "routes": None,
    }
    config = demo_config(services.env, overrides)
    routes = [
        {"id": "users", "path": "/api/users", "upstream": "users", "strip_prefix": "/api"},
        {"id": "products", "path": "/api/products", "upstream": "products", "strip_prefix": "/api"},
        {"id": "flaky", "path": "/api/flaky", "upstream": "flaky"},
    ]
    server = ThreadedServer(build_gateway(config)).start()
    for route in routes:
        r = httpx.post(server.url + "/admin/routes", json=route, headers=ADMIN)
        assert r.status_code == 201, r.text
    yield server
    server.stop()


def traffic(url: str, stop: threading.Event) -> None:
    """A steady mix until ``stop``: users faster than products, a few 404s and 502s."""
    with httpx.Client(base_url=url) as c:
        n = 0
        while not stop.is_set():
            c.get("/api/users/1")
            c.get(f"/api/users/{1 + n % 20}")
            if n % 2 == 0:
                c.get("/api/products/1")
            if n % 10 == 0:
                c.get("/api/users/999999")
                c.get("/api/flaky/x")
            n += 1
            time.sleep(0.01)


def test_the_page_needs_no_token_and_allows_nothing_else(served: ThreadedServer) -> None:
    for path in ("/admin/", "/admin"):
        r = httpx.get(served.url + path)
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'sha256-" in csp
        assert "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert 'data-base="/admin"' in r.text
        assert TOKEN not in r.text and "http://" not in r.text and "https://" not in r.text
    assert httpx.head(served.url + "/admin/").text == ""
    assert httpx.post(served.url + "/admin/").status_code == 401  # only GET and HEAD are open


@pytest.mark.slow
def test_the_admin_page_charts_live_traffic(served: ThreadedServer, tmp_path: Path) -> None:
    stop = threading.Event()
    worker = threading.Thread(target=traffic, args=(served.url, stop), daemon=True)
    worker.start()
    try:
        with Chromium(tmp_path) as browser:
            browser.navigate(served.url + "/admin/")
            assert browser.evaluate("document.body.dataset.state") == "signed-out"

            # A wrong token is refused, and forgotten.
            browser.evaluate(
                "document.getElementById('token').value = 'wrong';"
                "document.getElementById('login-form').requestSubmit()"
            )
            browser.wait_for("document.getElementById('login-error').textContent !== ''")
            assert browser.evaluate("sessionStorage.getItem('bff-admin-token')") is None

            browser.evaluate(
                f"document.getElementById('token').value = '{TOKEN}';"
                "document.getElementById('login-form').requestSubmit()"
            )
            browser.wait_for("document.body.dataset.state === 'ready'")
            assert browser.evaluate("sessionStorage.getItem('bff-admin-token')") == TOKEN
            # Several samples, each with data, before looking.
            browser.wait_for(
                "window.bffAdmin.samples >= 5 && window.bffAdmin.charts.rate.points >= 10",
                timeout=30,
            )
            state = browser.evaluate(
                "({rate: bffAdmin.charts.rate, latency: bffAdmin.charts.latency,"
                " errors: bffAdmin.errors,"
                " routes: [...document.querySelectorAll('#routes tr')].map(r => r.dataset.route),"
                " upstreams: Object.fromEntries([...document.querySelectorAll('#upstreams tr')]"
                "   .map(r => [r.dataset.upstream, r.children[3].textContent])),"
                " legend: [...document.querySelectorAll('#rate-legend span')]"
                "   .map(s => s.textContent)})"
            )
            assert state["errors"] == 0
            assert state["rate"]["max"] > 0 and state["latency"]["points"] >= 10
            assert state["routes"] == ["users", "products", "flaky"]
            assert {"users", "products"} <= set(state["legend"])
            assert state["upstreams"]["users"] == "closed"
            assert state["upstreams"]["flaky"] == "open"

            # Pixels: the rate chart's canvas holds lines in the series' colours.
            colored = browser.evaluate(
                """(() => {
                  const c = document.getElementById('rate-chart');
                  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  let n = 0;
                  for (let i = 0; i < d.length; i += 4) {
                    const [r, g, b, a] = [d[i], d[i + 1], d[i + 2], d[i + 3]];
                    if (a > 200 && Math.max(r, g, b) - Math.min(r, g, b) > 60) n++;
                  }
                  return n;
                })()"""
            )
            assert colored > 200, colored

            page = browser.screenshot(tmp_path / "admin-page.png")
            box = browser.evaluate(
                "(() => { const r = document.getElementById('rate-chart')"
                ".getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })()"
            )
            clip = {"x": box[0], "y": box[1], "width": box[2], "height": box[3], "scale": 1}
            shot = browser.send("Page.captureScreenshot", format="png", clip=clip)
            image = decode_png(base64.b64decode(shot["data"]))
            vivid = sum(
                1
                for y in range(image.height)
                for x in range(0, image.width, 2)
                if max(p := image.pixel(x, y)) - min(p) > 60
            )
            assert vivid > 100, vivid  # the screenshot shows the lines too
            assert decode_png(page).width == 1280

            keep = os.environ.get("BFF_SCREENSHOT_DIR")
            if keep:
                shutil.copy(tmp_path / "admin-page.png", Path(keep) / "admin-page.png")

            # The reset button of an open breaker works from the page.
            stop.set()
            worker.join(5)
            browser.evaluate("document.querySelector('tr[data-upstream=flaky] button').click()")
            browser.wait_for(
                "document.querySelector('tr[data-upstream=flaky]').children[3].textContent"
                " !== 'open'"
            )

            browser.evaluate("document.getElementById('signout').click()")
            assert browser.evaluate("document.body.dataset.state") == "signed-out"
            assert browser.evaluate("sessionStorage.getItem('bff-admin-token')") is None
    finally:
        stop.set()
        worker.join(5)
