"""The agent console in a real browser (Playwright with Debian's Chromium) against the API
served by uvicorn on a free port, a worker that requires principals, and the dev server:
sign in, the queue, a ticking countdown, claim, escalate with a reason, a refusal shown
verbatim, CSRF refusal, escaped control characters, sign out. Saves docs/images/console.png."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from runtime.config import PROJECT_ROOT
from tests.api_support import TOKENS, ApiRig, api_rig, serving

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = PROJECT_ROOT / "docs" / "images" / "console.png"

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason=f"{CHROMIUM} missing (.ci/run installs it with apt)"
)


@pytest_asyncio.fixture(loop_scope="session")
async def served(dev_env: Any, db_pool: Any, tmp_path: Path) -> AsyncIterator[tuple[ApiRig, str]]:
    async with api_rig(dev_env, db_pool, tmp_path, require=True) as web, serving(web) as url:
        yield web, url


@pytest.mark.slow
async def test_an_agent_works_a_ticket_in_the_browser(served: tuple[ApiRig, str]) -> None:
    from playwright.async_api import async_playwright

    web, base = served
    tid, _ = await web.open(priority="urgent", subject="Refund \x1b[2Knot received")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(base_url=base, viewport={"width": 1280, "height": 900})
            # --- sign in --------------------------------------------------------------------
            first = await page.goto("/")
            assert first is not None and page.url.endswith("/signin")
            csp = first.headers["content-security-policy"]
            assert "unsafe-inline" not in csp and "script-src 'self'" in csp
            await page.fill("#token", "not-a-token")
            await page.click("#signin button")
            assert "not signed in: the token is not known" in await page.inner_text("#flash")
            await page.fill("#token", TOKENS["ann"])
            await page.click("#signin button")
            await page.wait_for_url(f"{base}/")
            assert "ann" in await page.inner_text("#who")
            cookie = next(c for c in await page.context.cookies() if c["name"].startswith("esc"))
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            # --- the queue: ann's team's unassigned ticket, with a ticking countdown ---------
            row = page.locator("#queue tr", has=page.locator(f"a:text-is('{tid}')"))
            for _ in range(100):  # visibility lags the open briefly
                if await row.count():
                    break
                await asyncio.sleep(0.1)
                await page.goto("/")
            countdown = row.locator("time.countdown")
            before = await countdown.inner_text()
            assert re.match(r"in \d+m \d\ds", before), before
            await page.wait_for_function(
                "([id, old]) => [...document.querySelectorAll('#queue tr')]"
                ".find(r => r.textContent.includes(id))"
                ".querySelector('time.countdown').textContent !== old",
                arg=[tid, before],
            )
            # --- the ticket: claim, escalate with a reason, a refusal -----------------------
            await row.locator("a").click()
            await page.wait_for_url(f"{base}/t/{tid}")
            assert "Refund \\x1b[2Knot received" in await page.inner_text("#subject")
            await page.click("#form-claim button")
            await page.wait_for_selector("#flash.ok")
            assert await page.inner_text("#assignee") == "ann"
            await page.fill("#request_escalation-reason", "needs payments engineering")
            await page.click("#form-request_escalation button")
            await page.wait_for_selector("#flash.ok")
            assert await page.inner_text("#tier") == "L2"
            assert "needs payments engineering" in await page.inner_text("#timeline")
            await page.fill("#respond-message", "I am still on it")
            await page.click("#form-respond button")
            await page.wait_for_selector("#flash.error")
            text = await page.inner_text("#flash.error")
            assert text == f"agent ann may not act on ticket {tid} at tier L2 (ann is agent of L1)"
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SCREENSHOT), full_page=True)
            # --- CSRF: the session's cookie without the form's token is refused -------------
            forged = await page.request.post(
                f"/t/{tid}/respond", form={"message": "forged"}, max_redirects=0
            )
            assert forged.status == 403 and "CSRF" in (await forged.json())["detail"]
            # --- sign out ------------------------------------------------------------------
            await page.click("#signout")
            await page.wait_for_url(f"{base}/signin")
            await page.goto("/")
            assert page.url.endswith("/signin")
        finally:
            await browser.close()
    view = (await web.http.get(f"/v1/tickets/{tid}", headers=web.auth("max"))).json()
    assert (view["tier"], view["assignee"], view["first_responded_at"]) == ("L2", None, None)
