"""The search page in a real browser: headless Chromium (Debian's `chromium`, driven by Playwright) loads the page
from a live server, uploads a query, sees the ranked thumbnails and the threshold line, clicks a match and sees a
new list; an unreadable file and an empty gallery are said plainly. Screenshots go to the test's temp folder
(and to $REIDKIT_SERVE_SCREENSHOT when set: how docs/images/serve.png is made)."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from serve_helpers import LiveServer, draw_unseen_view, make_app, save_small_png

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1280, "height": 800}  # a laptop screen


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run the browser test (.ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium")
    if executable is None:
        _unavailable("no chromium on PATH (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _until(condition, timeout: float = 30.0) -> None:
    """Polls from Python: Playwright's wait_for_function evaluates strings, which the page's CSP forbids."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the page did not get there in time"
        time.sleep(0.05)


class PageWatch:
    """A page that records console errors, uncaught exceptions and every URL it requests."""

    def __init__(self, browser) -> None:
        self.page = browser.new_page(viewport=VIEWPORT)
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda msg: msg.type == "error" and self.problems.append(msg.text))
        self.page.on("pageerror", lambda exc: self.problems.append(str(exc)))
        self.page.on("request", lambda request: self.requests.append(request.url))


def _threshold_between_ranks(db: Path, embedder, query: Path, rank: int) -> float:
    """A same-person threshold that falls between the rank-th and the next match of `query` (the tiny test
    model has no calibrated one)."""
    from reidkit.gallery import Gallery

    with Gallery(db) as gallery:
        hits = gallery.search(embedder.embed([query])[0], rank + 1)
    return (hits[rank - 1].score + hits[rank].score) / 2


def test_upload_see_matches_follow_one(browser, indexed, serve_embedder, tmp_path):
    from playwright.sync_api import expect

    db, crops = indexed
    query = draw_unseen_view(tmp_path / "query" / "person_0002.jpg", person=1)
    threshold = _threshold_between_ranks(db, serve_embedder, query, 4)
    app, gallery = make_app(db, serve_embedder, uploads=None, threshold=threshold)
    with gallery, LiveServer(app) as url:
        watch = PageWatch(browser)
        page = watch.page
        page.goto(url + "/")
        expect(page.locator("#gallery-info")).to_contain_text("40 crops")
        page.set_input_files("#file", str(query))
        page.wait_for_selector("#results .hit")
        assert page.locator("#results .hit").count() == 30
        assert page.locator("#results .threshold").count() == 1
        assert page.locator("#results > *").nth(4).get_attribute("class") == "threshold"  # after the 4 best
        assert page.locator("#results .hit.same").count() == 4
        first = page.locator("#results .hit img").first
        _until(lambda: first.evaluate("img => img.complete && img.naturalWidth > 0"))
        assert "the uploaded crop" in page.inner_text("#summary")
        page.screenshot(path=str(tmp_path / "upload.png"), full_page=False)
        shot = os.environ.get("REIDKIT_SERVE_SCREENSHOT")  # how docs/images/serve.png is made
        if shot:
            save_small_png(page.screenshot(), shot)

        before = [page.locator("#results .hit img").nth(i).get_attribute("src") for i in range(30)]
        clicked = before[1].split("/")[3]
        page.locator("#results .hit").nth(1).click()
        expect(page.locator("#summary")).to_contain_text(f"item #{clicked}")
        after = [page.locator("#results .hit img").nth(i).get_attribute("src") for i in range(30)]
        assert after != before and f"/api/items/{clicked}/image" not in after  # a new list, without the query
        assert page.locator("#trail .step").count() == 2
        assert page.get_attribute("#query-image", "src").endswith(f"/api/items/{clicked}/image")
        page.screenshot(path=str(tmp_path / "followed.png"))
        assert (tmp_path / "upload.png").stat().st_size > 0 and (tmp_path / "followed.png").stat().st_size > 0

        page.set_input_files("#file", files=[{"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not a jpeg"}])
        page.wait_for_selector("#message.error")
        message = page.inner_text("#message")
        assert "could not be searched" in message and "not an image" in message
        assert page.locator("#results .hit").count() == 0
        page.close()
    assert all(seen.startswith(url) or seen.startswith("blob:") for seen in watch.requests), watch.requests
    # the only console errors allowed are the failed upload's 415 and the broken preview of the non-image
    assert all("415" in p or "Unsupported" in p for p in watch.problems), watch.problems


def test_an_empty_gallery_is_said_plainly(browser, tmp_path, serve_embedder):
    app, gallery = make_app(tmp_path / "empty", serve_embedder)
    with gallery, LiveServer(app) as url:
        watch = PageWatch(browser)
        watch.page.goto(url + "/")
        watch.page.wait_for_selector("#message.empty")
        assert "The gallery is empty" in watch.page.inner_text("#message")
        watch.page.screenshot(path=str(tmp_path / "empty.png"))
        watch.page.close()
    assert not watch.problems, watch.problems
