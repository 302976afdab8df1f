"""The dashboard in a real headless browser: Chromium from the distribution's packages
(``apt-get install chromium``; `.ci/run` installs it), driven by Playwright without
a browser download. After the demo's run, the page loads, lists the run, shows its
timeline picture, and a screenshot of it is a real rendering (not a blank page)."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the demo's whole flow, then a browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _browser_or_skip():
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium: install the distribution's package (apt-get install chromium); .ci/run does")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (the test extra)")
    return sync_playwright


def png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """(width, height, the decompressed scanlines) of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    return width, height, zlib.decompress(idat)


@pytest.mark.timeout(900)  # the shared demo run first when this test is its first reader: minutes on a loaded machine
# a mark, not only the skip in the body: without Chromium the shared demo run is not started for nothing
@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="no Chromium: install the distribution's package (apt-get install chromium); .ci/run does"
)
def test_the_dashboard_lists_the_demos_run_and_draws_its_timeline(demo_run, tmp_path):
    """The demo's run (shared with tests/e2e/test_demo_flow.py: tests/e2e/conftest.py)."""
    sync_playwright = _browser_or_skip()
    from ephemera.cli.dashboard.server import DashboardServer
    from ephemera.context import Context

    assert demo_run.code == 0, demo_run.out
    ctx = Context(str(demo_run.home / "config.yaml"))
    run = next(iter(ctx.ledger.list()))
    server = DashboardServer(ctx, "127.0.0.1", 0).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(server.url)
            assert page.title() == "Ephemera runs"
            row = page.locator("table#runs tr.run", has_text=run.run_id)
            assert row.count() == 1 and "DESTROYED" in row.inner_text()
            assert page.locator("#banner-calm").is_visible()
            page.click(f"text={run.run_id}")
            page.wait_for_selector("figure#timeline svg")
            states = page.eval_on_selector_all("figure#timeline svg rect.state", "els => els.map(e => e.dataset.state)")
            assert states == [t.state for t in run.transitions]
            assert page.locator("figure#timeline svg rect.vm-workload").count() == 1
            box = page.locator("figure#timeline svg").bounding_box()
            assert box["width"] > 800 and box["height"] > 80  # drawn, at its size
            assert "vm0 workload" in page.inner_text("pre#logs")
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=False)
            browser.close()
    finally:
        server.close()
    width, height, pixels = png_pixels(shot.read_bytes())
    assert (width, height) == (1200, 900)
    assert len(set(pixels)) > 64, "the screenshot is (nearly) one colour: the page did not render"


def test_in_a_browser_a_rebound_name_gets_421_and_the_token_leaves_the_url(local_config):
    """Findings 5 and 6 in a real browser. DNS rebinding: Chromium is told that
    ``evil.example`` resolves to 127.0.0.1 (``--host-resolver-rules``), as a rebinding
    attacker's DNS would answer after its page loaded; the page it then fetches from its
    own origin reaches the dashboard with ``Host: evil.example`` and gets 421, no run.
    Token: opening the printed ``?token=`` URL lands on the same page without the token
    in the address bar, and the HttpOnly, SameSite=Strict cookie opens the other pages."""
    sync_playwright = _browser_or_skip()
    from ephemera.cli.dashboard.server import DashboardServer
    from ephemera.context import Context
    from ephemera.model.runs import RunRecord, RunState

    ctx = Context(local_config())
    ctx.storage.create_bucket(ctx.config.state_bucket)
    ctx.ledger.create(RunRecord(run_id="ws-1", workspace="ws", engine="terraform", event={"kind": "alarm", "trigger": "nightly"}))
    ctx.ledger.transition("ws-1", RunState.APPLYING, "private reason")
    loopback = DashboardServer(ctx, "127.0.0.1", 0).start()
    shared = DashboardServer(ctx, "0.0.0.0", 0, "browser-token-0123456789").start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--host-resolver-rules=MAP evil.example 127.0.0.1"]
            )
            page = browser.new_page()
            port = loopback.httpd.server_address[1]
            response = page.goto(f"http://evil.example:{port}/runs/ws-1")
            assert response.status == 421 and "private reason" not in page.content() and "ws-1" not in page.content()
            response = page.goto(f"http://localhost:{port}/runs/ws-1")
            assert response.status == 200 and "private reason" in page.content()

            port = shared.httpd.server_address[1]
            response = page.goto(f"http://127.0.0.1:{port}/runs/ws-1?token=browser-token-0123456789")
            assert response.status == 200 and "private reason" in page.content()
            assert page.url == f"http://127.0.0.1:{port}/runs/ws-1" and "token" not in page.url
            assert "browser-token" not in page.evaluate("document.cookie")  # HttpOnly: no script reads it
            assert page.goto(f"http://127.0.0.1:{port}/activations").status == 200
            browser.close()
    finally:
        loopback.close()
        shared.close()
