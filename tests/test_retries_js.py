"""The page's retry engine (static/js/retries.js) run in Chromium on its own: what each waiting
entry's line says and offers when the one ahead of it fails. Entries here are plain objects whose
requests settle when the test says; the page's own lines are tested in
tests/test_waiting_lines_browser.py."""
import pytest

from .browser import browser, close_context  # noqa: F401 - fixture

# A Retries engine on a detached root, its stream "connected"; entries record what they show.
SETUP = """
    const { Retries } = await import('/static/js/retries.js');
    const root = document.createElement('div');
    root.dataset.me = 'ann';
    const engine = Retries(root, { timeoutMs: 5000 });
    root.dispatchEvent(new CustomEvent('chat:state', { detail: { state: 'connected' } }));
    const shown = {};
    const entry = (name, send) => {
      shown[name] = [];
      return { send, show: (state) => shown[name].push(state), sent: () => shown[name].push('SENT'),
               refused: () => shown[name].push('REFUSED') };
    };
    const answer = (status, retryAfter) => ({ response: { ok: status < 300, status,
      headers: { get: (h) => (h === 'Retry-After' ? retryAfter : null) } }, body: {} });
    const settled = () => new Promise((done) => setTimeout(done, 50));
    const carried = (name, promise) => engine.carry(entry(name, () => Promise.reject(new Error('net'))),
                                                    { promise, abort: new AbortController() });
"""


@pytest.fixture(scope="module")
def page(browser, server):  # noqa: F811 - the fixture above
    context = browser.new_context(base_url=server.url)
    page = context.new_page()
    page.goto("/healthz")
    yield page
    close_context(context)


def run(page, scenario):
    return page.evaluate("async () => {%s\n%s\n}" % (SETUP, scenario))


def test_a_carried_change_whose_request_failed_while_the_one_ahead_failed_offers_its_buttons_again(page):
    # Two reactions carried on their way; the first fails and the stream drops: the second's
    # request failed too, but nobody awaited it, and its line said "Sending…" with no button.
    shown = run(page, """
        let failFirst, failSecond;
        const first = new Promise((_, fail) => { failFirst = fail; });
        const second = new Promise((_, fail) => { failSecond = fail; });
        carried('A', first);
        carried('B', second);
        failFirst(new Error('no answer'));
        await settled();
        root.dispatchEvent(new CustomEvent('chat:state', { detail: { state: 'reconnecting' } }));
        failSecond(new Error('no answer'));
        await settled();
        return shown;""")
    assert shown["A"][-1] == "waiting" and shown["B"] == ["sending", "waiting"]


def test_a_carried_change_stored_while_the_one_ahead_failed_is_done(page):
    shown = run(page, """
        let failFirst, storeSecond;
        const first = new Promise((_, fail) => { failFirst = fail; });
        const second = new Promise((done) => { storeSecond = done; });
        carried('A', first);
        carried('B', second);
        failFirst(new Error('no answer'));
        await settled();
        root.dispatchEvent(new CustomEvent('chat:state', { detail: { state: 'reconnecting' } }));
        storeSecond(answer(200));
        await settled();
        return { shown, left: engine.queue.length };""")
    assert shown["shown"]["B"] == ["sending", "SENT"] and shown["left"] == 1


def test_the_one_behind_a_dropped_head_offers_retry_now_rather_than_waiting_out_its_time(page):
    # The head got a 503 with Retry-After: 60, and the person chose "Don't send" on it.
    shown = run(page, """
        engine.add(entry('A', async () => answer(503, '60')), null);
        engine.add(entry('B', async () => answer(201)), null);
        await settled();
        engine.drop(engine.queue[0]);
        await settled();
        return shown;""")
    assert shown["A"][-1] == "waiting" and shown["B"] == ["queued", "waiting"]


def test_a_focused_button_the_line_hides_leaves_the_focus_on_its_line(page):
    # "Retry now" pressed from the keyboard: the attempt hides it, and focus fell to the page's start.
    focused = page.evaluate("""async () => {
        const { appendControls, showControls } = await import('/static/js/retries.js');
        const line = document.createElement('li');
        appendControls(line, { retryLabel: 'Retry now', retry: () => {},
                               discardLabel: "Don't send", discard: () => {} });
        document.body.append(line);
        showControls(line, 'waiting');
        line.querySelector('[data-retry]').focus();
        showControls(line, 'sending');
        const inLine = line.contains(document.activeElement);
        line.remove();
        return inLine;
    }""")
    assert focused
