"""The overview in a real browser: headless Chromium (Debian's ``chromium`` package, driven by
Playwright; ``playwright install`` is never run) loads the dashboard served by uvicorn on a real
Postgres seeded with a week of runs, dead letters, open circuits and a review pair.

Signed in with Airflow's ``_token`` cookie, the page renders every chart with its data points and
the three tables with their rows, under the strict Content-Security-Policy without a single
console error. The full-page screenshot is checked with Pillow: its size, that it is not blank,
and that each chart's region holds its series' colour. Without the cookie the browser ends on the
login redirect and sees no data.

Marked ``chromium``: it is skipped only when ``/usr/bin/chromium`` is absent (CI installs it).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from PIL import Image
from playwright.sync_api import Browser, Page, sync_playwright

from donor_sync.web.dashboard.auth import COOKIE_NAME, CsrfTokens
from donor_sync.web.dashboard.charts import PALETTE
from tests.resolve.test_donors_support import JANE
from tests.web.dashboard.conftest import DESTINATIONS, HOURLY_RUNS, Seeded, Tokens, build_app

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.chromium,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium package (/usr/bin/chromium): apt-get install chromium",
    ),
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
]

#: every chart of the overview: (id, kind, points or bars expected)
CHARTS = {
    "throughput": ("line", HOURLY_RUNS * (1 + len(DESTINATIONS))),
    "success-rate": ("line", HOURLY_RUNS * len(DESTINATIONS)),
    "latency": ("line", HOURLY_RUNS * len(DESTINATIONS) * 2),
    # after each run and now; salesforce has open letters now (seed_health) but none in the runs
    "dead-letter-depth": ("line", (HOURLY_RUNS + 1) * len(DESTINATIONS) + 1),
    "dead-letter-age": ("line", HOURLY_RUNS + 1),
    "quota": ("line", HOURLY_RUNS + 1),  # plus the latest api_usage window
    "quota-used": ("bar", 1),
    "scorecard": ("line", 2 * 5),
}
VIEWPORT = {"width": 1280, "height": 900}


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port (in this process, so the test's Airflow
    auth manager checks the tokens); yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped"
        assert time.monotonic() < deadline, "uvicorn did not start in 20 s"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def base_url(seeded: Seeded, auth_manager: Any) -> Iterator[str]:
    with served(build_app(seeded.url, CsrfTokens(b"browser-test-secret"))) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


def _hex(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _count_colour(image: Image.Image, box: dict[str, float], colour: str) -> int:
    """Return how many pixels inside the element's bounding box have exactly ``colour``."""
    crop = image.crop(
        (int(box["x"]), int(box["y"]), int(box["x"] + box["width"]), int(box["y"] + box["height"]))
    ).convert("RGB")
    wanted = _hex(colour)
    return sum(count for count, rgb in crop.getcolors(maxcolors=1 << 24) or [] if rgb == wanted)


def _signed_in_page(browser: Browser, base_url: str, token: str) -> tuple[Page, list[str]]:
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    context.add_cookies([{"name": COOKIE_NAME, "value": token, "url": base_url}])
    page = context.new_page()
    errors: list[str] = []

    def console(message: Any) -> None:
        # the browser asks for /favicon.ico on its own; the dashboard has none
        if message.type == "error" and not str(message.location.get("url", "")).endswith("/favicon.ico"):
            errors.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page, errors


def test_the_overview_renders_every_chart_and_table_with_real_data(
    browser: Browser, base_url: str, seeded: Seeded, tokens: Tokens, tmp_path: Path
) -> None:
    page, errors = _signed_in_page(browser, base_url, tokens.valid("vic", "viewer"))
    response = page.goto(base_url + "/")
    assert response is not None
    assert response.status == 200
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert page.locator("h1").inner_text() == "Sync health"

    for chart_id, (kind, expected) in CHARTS.items():
        figure = page.locator(f"figure#chart-{chart_id}")
        assert figure.count() == 1, chart_id
        svg = figure.locator("svg.chart-svg")
        assert svg.get_attribute("role") == "img", chart_id
        marks = svg.locator("circle.point" if kind == "line" else "rect.bar")
        assert marks.count() == expected, (chart_id, marks.count())
        assert marks.first.locator("title").text_content(), chart_id  # each point has its tooltip
        assert "No data yet" not in figure.inner_text(), chart_id
        box = svg.bounding_box()
        assert box is not None
        assert box["width"] > 300, (chart_id, box)  # drawn at a readable size, not collapsed
    # the data tables of a chart open without script
    throughput = page.locator("figure#chart-throughput")
    throughput.locator("summary").click()
    assert throughput.locator("table.chart-data tbody tr").count() == CHARTS["throughput"][1]
    assert [t.strip() for t in page.locator("figure#chart-throughput ul.legend li").all_inner_texts()] == [
        "read (all sources)",
        "pushed to hubspot",
        "pushed to mailchimp",
    ]

    assert page.locator("table#circuits tbody tr").count() == 2
    assert page.locator("table#reviews tbody tr").count() == 1
    assert page.locator("table#dead-letters tbody tr").count() == 2
    review_link = page.locator(f'table#reviews a[href="/reviews/{seeded.review_id}"]')
    assert review_link.count() == 1
    assert "donor-sync dlq replay" in page.locator("table#dead-letters").inner_text()
    freshness = page.locator("table#freshness tbody tr").all_inner_texts()
    assert [row.split("\t")[0] for row in freshness] == [
        "donations_hourly",
        "donors_nightly",
        "privacy_requests",
    ]
    assert "never" in freshness[2]
    assert JANE["email"] not in page.content()  # the overview shows ids, never donors
    assert errors == [], errors  # no CSP violation, no broken markup

    shot = tmp_path / "overview.png"
    page.screenshot(path=str(shot), full_page=True)
    height = page.evaluate("document.documentElement.scrollHeight")
    with Image.open(shot) as image:
        assert image.size == (VIEWPORT["width"], height)
        assert height > VIEWPORT["height"]  # charts and tables make a long page
        colours = image.convert("RGB").getcolors(maxcolors=1 << 24) or []
        assert len(colours) > 200, "the screenshot is (nearly) blank"
        header = page.locator("header").bounding_box()
        assert header is not None
        assert _count_colour(image, header, "#1d2733") > header["width"] * header["height"] * 0.5
        for chart_id in CHARTS:
            box = page.locator(f"figure#chart-{chart_id} svg.chart-svg").bounding_box()
            assert box is not None
            # the first series' (or bar's) colour is drawn inside that chart
            assert _count_colour(image, box, PALETTE[0]) >= 10, chart_id
            if chart_id == "throughput":  # and every series' colour, in its own chart only
                for colour in PALETTE[1:3]:
                    assert _count_colour(image, box, colour) >= 10, (chart_id, colour)
        tables = page.locator("table#dead-letters").bounding_box()
        assert tables is not None
        assert _count_colour(image, tables, PALETTE[0]) == 0  # no chart colour leaks into the tables


def test_without_a_login_the_browser_sees_no_data(browser: Browser, base_url: str, seeded: Seeded) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    response = page.goto(base_url + "/")
    assert response is not None
    # sent to Airflow's login page (not served here), with the way back
    assert page.url == base_url + "/auth/login?next=%2F"
    assert page.locator("figure.chart").count() == 0
    assert page.locator("table").count() == 0
    text = page.content()
    for leak in (
        "hubspot",
        "INVALID_EMAIL",
        f"/reviews/{seeded.review_id}",
        "donations_hourly",
        JANE["email"],
    ):
        assert leak not in text, leak
    health = context.request.get(base_url + "/api/health")
    assert health.status == 401
    assert health.json()["error"] == "token_missing"
    context.close()


def test_the_health_endpoint_answers_the_browsers_login_cookie(
    browser: Browser, base_url: str, tokens: Tokens
) -> None:
    page, _ = _signed_in_page(browser, base_url, tokens.valid("vic", "viewer"))
    health = page.context.request.get(base_url + "/api/health")
    assert health.status == 200
    body = health.json()
    assert body["status"] == "degraded"  # privacy_requests never succeeded; hubspot's circuit is open
    assert body["checks"]["database"]["ok"] is True
    page.context.close()
