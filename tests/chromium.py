"""The test process's one Chromium (Playwright's sync API), launched when a test first wants it.

A launch costs ~3 s of CPU; the browser files and three single tests each launched their own.
tests/conftest.py holds one per process (pytest-xdist worker): ``chromium_process``.
"""


class ChromiumProcess:
    """Debian's Chromium driven by Playwright, started on demand, stopped on demand."""

    def __init__(self):
        self._playwright = self._browser = None

    def get(self):
        """The running Chromium; launched first if there is none, or if it died (a crash of one
        test's Chromium then fails that file's tests, not every browser test after it in the
        process). Skips without Chromium."""
        if self._browser is not None and not self._browser.is_connected():
            self.stop()
        if self._browser is None:
            from playwright.sync_api import sync_playwright

            from .browser import CHROMIUM, CHROMIUM_ARGS  # skips the test when it is not installed
            playwright = sync_playwright().start()
            try:
                self._browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                           args=CHROMIUM_ARGS)
            except BaseException:
                playwright.stop()
                raise
            self._playwright = playwright
        return self._browser

    def stop(self):
        """Close Chromium and Playwright; the next ``get()`` launches again. Playwright's sync API
        marks the thread's asyncio loop as running between its calls, so while it runs
        ``asyncio.run()`` refuses to start ("cannot be called from a running event loop")."""
        if self._playwright is not None:
            try:
                if self._browser.is_connected():
                    self._browser.close()
            finally:
                self._playwright.stop()
                self._playwright = self._browser = None
