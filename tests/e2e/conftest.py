"""Browser fixtures for the e2e tests: Debian's Chromium, driven by Playwright's sync API.

No browser is downloaded: Playwright launches the system Chromium by its path. Every page the
tests open is watched for Content-Security-Policy violations, and a test whose pages caused one
fails: the portal's pages and the admin must work under the enforced policy.
"""

import contextlib
import os
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    expect,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from tests.services import service_unavailable

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Every wait (actions, navigations, expect) gives up after this, so a broken page fails fast.
TIMEOUT_MS = 15_000

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
_CSP = pytest.StashKey["CspWatch"]()
# Every document of a watched context reports the violations the browser raises in it.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportCspViolation(
    `${event.effectiveDirective} refused ${event.blockedURI || "(inline)"} on ${location.href}` +
    ` (${event.sourceFile || "the document"}:${event.lineNumber})`
  );
});
"""


class CspWatch:
    """The Content-Security-Policy violations of a test's browser contexts: Chromium's
    "Refused to ..." console errors and the documents' securitypolicyviolation events."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.contexts: list[BrowserContext] = []
        self.paused = False

    def watch(self, context: BrowserContext) -> None:
        self.contexts.append(context)
        _WATCHES[context] = self
        context.expose_function("reportCspViolation", self._event)
        context.add_init_script(REPORT_CSP_VIOLATIONS)
        context.on("console", self._console)

    def _event(self, text: str) -> None:
        if not self.paused:
            self.violations.append(f"securitypolicyviolation: {text}")

    def _console(self, message: ConsoleMessage) -> None:
        if self.paused:
            return
        if message.type == "error" and "Content Security Policy" in message.text:
            where = message.page.url if message.page else "a worker"
            self.violations.append(f"console on {where}: {message.text}")

    def collect(self) -> list[str]:
        """The violations so far, once every open page has delivered its pending events."""
        for context in self.contexts:
            for page in context.pages:
                # A round trip: the page's earlier events arrive before its answer (a page that
                # is closing or navigating has nothing left to deliver).
                with contextlib.suppress(PlaywrightError):
                    page.evaluate("0")
        return self.violations


_WATCHES: "weakref.WeakKeyDictionary[BrowserContext, CspWatch]" = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def csp_unwatched(page: Page) -> Iterator[None]:
    """While a testing tool works in the page: axe-core adds a <style> of its own to see what
    is hidden, which the policy refuses, as it should; that is not the portal's."""
    watch = _WATCHES.get(page.context)
    if watch is None:
        yield
        return
    watch.paused = True
    try:
        yield
    finally:
        with contextlib.suppress(PlaywrightError):
            page.evaluate("0")  # the events raised so far arrive before this answer
        watch.paused = False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield  # a test that already failed keeps its own failure
    watch = item.stash.get(_CSP, None)
    if watch is not None and (violations := watch.collect()):
        pytest.fail(
            "The Content-Security-Policy refused something on the test's pages:\n"
            + "\n".join(violations),
            pytrace=False,
        )
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the item, so that fixture teardown knows the test failed.
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    # Django keeps connections per thread, but per asyncio context while an event loop runs in
    # the thread, and Playwright leaves its loop marked as running between calls. Without this,
    # the test, pytest-django's flush and every later test would get a second connection
    # that lacks the test database's serialized contents (serialized_rollback then breaks).
    thread_connections = {alias: connections[alias] for alias in connections}
    # Playwright's sync API runs an asyncio event loop in this thread, so Django would refuse
    # the test's own (synchronous) ORM calls with SynchronousOnlyOperation. Only for sessions
    # that start a browser.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as driver:
        for alias, connection in thread_connections.items():
            connections[alias] = connection
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        service_unavailable(f"{CHROMIUM} is not installed (Debian package chromium)")
    expect.set_options(timeout=TIMEOUT_MS)
    chromium = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=30_000
    )
    yield chromium
    chromium.close()


@pytest.fixture
def new_context(
    browser: Browser, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], BrowserContext]]:
    """Makes fresh browser contexts (cookies of their own: one person each), watched for
    Content-Security-Policy violations and closed after the test; when the test failed, each
    open page is saved under tmp_path first."""
    contexts: list[BrowserContext] = []
    watch = request.node.stash.setdefault(_CSP, CspWatch())

    def make() -> BrowserContext:
        # Reduced motion: Bootstrap scrolls smoothly otherwise, and on a busy machine an element
        # scrolled into view can still be moving when the click lands (on its neighbour).
        context = browser.new_context(reduced_motion="reduce")
        context.set_default_timeout(TIMEOUT_MS)
        watch.watch(context)
        contexts.append(context)
        return context

    yield make
    reports = request.node.stash.get(_REPORTS, {})
    failed = any(report.failed for report in reports.values())
    for number, context in enumerate(contexts, start=1):
        if failed:
            _save_pages(context, tmp_path / f"context{number}")
        context.close()


def _save_pages(context: BrowserContext, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for number, page in enumerate(context.pages, start=1):
        path = folder / f"page{number}.png"
        try:
            page.screenshot(path=path, full_page=True)
            path.with_suffix(".html").write_text(page.content())
        except PlaywrightError as exc:
            print(f"could not save {page.url}: {exc}")
        else:
            print(f"saved {page.url} as {path} (and .html)")


@pytest.fixture
def context(new_context: Callable[[], BrowserContext]) -> BrowserContext:
    return new_context()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def csp_watch(request: pytest.FixtureRequest, new_context) -> CspWatch:
    """The watch over the test's pages (a test that provokes a violation on purpose empties its
    list, or it fails)."""
    return request.node.stash[_CSP]
