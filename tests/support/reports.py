"""Report pages opened as a reader opens them: in headless Chromium (Debian's),
from the file, offline."""

from __future__ import annotations

import shutil
from pathlib import Path


def open_report(path: Path, screenshot: Path | None = None) -> dict:
    """The sections (id → heading) and images (alt → rendered width) of the page
    as Chromium shows it, and any request it tried to make to the network."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed: apt-get install -y chromium (.ci/run installs it)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            remote: list[str] = []
            page.on("request", lambda r: remote.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
            page.goto(Path(path).resolve().as_uri())
            page.wait_for_load_state("load")
            found = page.evaluate(
                """() => ({
                    sections: Object.fromEntries([...document.querySelectorAll('section')]
                        .map(s => [s.id, s.querySelector('h2').innerText])),
                    images: Object.fromEntries([...document.images].map(i => [i.alt, i.naturalWidth])),
                    text: document.body.textContent,
                })"""
            )
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return found | {"remote_requests": remote}
