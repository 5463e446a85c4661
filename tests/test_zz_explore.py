import time, json
import pytest
from playwright.sync_api import sync_playwright, expect
from .conftest import post

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

def test_offline(server, room):
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
        ctx = b.new_context(base_url=server.url)
        page = ctx.new_page()
        log = []
        page.on("console", lambda m: log.append(("console", m.text)))
        page.on("request", lambda r: log.append(("req", r.method, r.url, r.headers.get("last-event-id"))))
        page.on("requestfailed", lambda r: log.append(("failed", r.url, r.failure)))
        page.add_init_script("""
          const Orig = window.EventSource;
          window.__es = [];
          window.EventSource = class extends Orig { constructor(...a){ super(...a); window.__es.push(this);
            this.addEventListener('error', () => console.log('es error rs=' + this.readyState)); } };
        """)
        page.goto(f"/rooms/{room}")
        expect(page.locator("[data-status]")).to_have_text("connected")
        t0 = time.monotonic()
        ctx.set_offline(True)
        try:
            expect(page.locator("[data-status]")).not_to_have_text("connected", timeout=3000)
        except AssertionError as e:
            print("still connected after offline", e)
        print("after offline", time.monotonic()-t0, page.locator("[data-status]").text_content(), page.evaluate("navigator.onLine"), page.evaluate("window.__es.map(e=>e.readyState)"))
        post(server.url, room, "m1")
        ctx.set_offline(False)
        expect(page.locator("li.msg")).to_have_count(1, timeout=8000)
        print("got after", time.monotonic()-t0, page.evaluate("window.__es.map(e=>e.readyState)"))
        for l in log: print(l)
        b.close()
