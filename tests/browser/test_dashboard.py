"""The live dashboard in a real browser, over the real pipeline on the real broker.

Headless Chromium from Debian (``apt-get install -y chromium``; ``make test`` installs it)
driven by Playwright's Python package with ``executable_path`` (no ``playwright install``).
Workers run recognize, infer, fuse, monitor and dashboard; the test produces news items and
an escalating support conversation and checks that the results, the escalation alert and
the conversation at risk reach the page without a reload. The screenshot is saved under
tests/browser/artifacts/ (git-ignored) and its path printed.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import REPO, Env, Worker

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(900)]

CHROMIUM = Path(os.environ.get("STREAMFUSE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
NEWS = REPO / "data" / "demo" / "financial_news.jsonl"
CONVERSATION = "conv-browser-1"
ESCALATING_TURNS = [
    "My card was stolen and someone is spending money with it right now!!!",
    "I ALREADY CALLED TWICE AND NOBODY HAS BLOCKED THE CARD YET",
    "This is unacceptable, another payment just went through!!! Block it now!",
    "I WANT TO SPEAK TO A MANAGER RIGHT NOW, THIS IS A DISGRACE!!!",
]


@pytest.fixture(scope="module")
def chromium():
    """A headless Debian Chromium driven by Playwright; fails (never skips) when missing."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the browser test needs Debian's chromium "
            "(`apt-get install -y chromium`, which `make test` runs) or STREAMFUSE_CHROMIUM "
            "pointing at a Chromium binary",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "the Python package playwright is missing: `pip install -e '.[dev]'` "
            "(never `playwright install`: the test uses Debian's chromium)",
            pytrace=False,
        )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, worker: Worker, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise AssertionError(f"the worker exited:\n{worker.output()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}healthz", timeout=2) as resp:
                if json.load(resp).get("ready"):
                    return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read()[:300]!r}"
        except OSError as exc:
            last = str(exc)
        time.sleep(1.0)
    raise AssertionError(f"dashboard not ready after {timeout}s ({last}):\n{worker.output()[-4000:]}")


def _feed(path: Path) -> tuple[list[str], list[str]]:
    """News items from the demo feed plus an escalating support conversation."""
    news = [json.loads(line) for line in NEWS.read_text().splitlines() if line.strip()][:24]
    chat = [
        {
            "id": f"browser-chat-{i}",
            "text": text,
            "source": "support-chat",
            "key": CONVERSATION,
            "meta": {"turn": i + 1, "channel": "app"},
        }
        for i, text in enumerate(ESCALATING_TURNS)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in news + chat))
    return [r["id"] for r in news], [r["id"] for r in chat]


def test_dashboard_shows_results_alerts_and_models_live(chromium, env: Env, start_worker, tmp_path: Path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    worker = start_worker(
        "recognize,infer,fuse,monitor,dashboard",
        {"STREAMFUSE_DASHBOARD_PORT": str(port), "STREAMFUSE_STATS_INTERVAL_S": "1"},
    )
    _wait_ready(url, worker, timeout=420)

    page = chromium.new_page(viewport={"width": 1440, "height": 1000})
    errors: list[str] = []
    remote: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "request",
        lambda req: remote.append(req.url)
        if urlparse(req.url).hostname not in ("127.0.0.1", "localhost")
        else None,
    )
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    try:
        page.goto(url)
        page.wait_for_selector("#conn.live", timeout=30_000)
        loaded_version = page.evaluate("document.body.dataset.version")

        feed = tmp_path / "feed.jsonl"
        news_ids, chat_ids = _feed(feed)
        env.cli("produce", str(feed))

        # every result reaches the page (no reload: the same document keeps updating)
        total = len(news_ids) + len(chat_ids)
        page.wait_for_function(
            "n => Number(document.getElementById('kpi-results').textContent.replace(/,/g, '')) >= n",
            arg=total,
            timeout=300_000,
        )
        shown = set(page.eval_on_selector_all("#results tr", "rows => rows.map(r => r.dataset.id)"))
        assert set(news_ids + chat_ids) <= shown, f"missing rows: {set(news_ids + chat_ids) - shown}"
        row = page.locator(f'#results tr[data-id="{chat_ids[-1]}"]')
        assert "MANAGER" in row.inner_text()
        assert row.locator(".task").count() >= 1
        assert row.locator(".votes b").count() >= 1  # the models that produced the outputs

        # the escalation alert and the conversation at risk, with their evidence
        alert = page.locator(f'#alerts li[data-rule="escalation"][data-key="{CONVERSATION}"]')
        alert.first.wait_for(timeout=120_000)
        assert "escalating" in alert.first.inner_text()
        evidence = alert.first.locator("details.evidence li")
        assert evidence.count() >= 3
        assert set(evidence.evaluate_all("els => els.map(e => e.dataset.id)")) <= set(chat_ids)
        conv = page.locator(f'#conversations li[data-key="{CONVERSATION}"]')
        conv.wait_for(timeout=30_000)
        assert "escalating" in conv.inner_text()

        # per-model load from sf.stats, and the allocator's choices
        page.wait_for_selector("#models tr[data-model]", timeout=60_000)
        page.wait_for_selector("#allocation .alloc .bar", timeout=30_000)

        # sentiment per entity: the chart is drawn, and a typed entity joins it
        page.wait_for_selector("#sentiment-chart .uplot", timeout=60_000)
        entities = page.evaluate("fetch('api/snapshot').then(r => r.json()).then(s => s.sentiment.entities)")
        assert entities, "no entity sentiment series"
        page.fill("#watch", entities[-1].lower())
        page.press("#watch", "Enter")
        page.wait_for_function(
            "name => [...document.querySelectorAll('#sentiment-chart .u-legend th')]"
            ".some(th => th.textContent.includes(name + ' (tracked)'))",
            arg=entities[-1],
            timeout=30_000,
        )

        assert page.evaluate("document.body.dataset.version") != loaded_version
        assert not errors, f"JavaScript errors on the page: {errors}"
        assert not remote, f"the page fetched from outside the dashboard: {remote}"
        page.wait_for_timeout(1500)  # let the last push settle before the picture
    finally:
        page.screenshot(path=str(shot), full_page=True)
        print(f"\ndashboard screenshot: {shot}")
        page.close()
