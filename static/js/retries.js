// Retries: the page's requests whose outcome is unknown (no answer in time, the connection failed,
// a 5xx that may have done it), sent again until the server answers. One engine for posts
// (pending.js, with their idempotency key) and for edits, deletions and reactions (unsaved.js:
// each sets a state, so sending it again is safe).
//
// Each waits in order, one attempt at a time (a later one waits behind it): when the stream is
// connected again, when the browser is back online, on "Retry now", and on a backing-off timer.
// An attempt that fails for want of the network has the stream prove itself on a new connection
// (chat:check 'send'): the status says "reconnecting…" until it does, and its 'connected' sends
// the queue again. One that has had no answer after SHOW_AFTER_MS (it then shows as waiting) only
// makes the status stop saying "connected" until the stream speaks (chat:check 'slow'): it had
// said so for the whole post timeout (12 s) of a stalled network, above "Sending…" and then "Not
// sent yet"; dropping the stream then had every posting tab of a merely slow server reconnect,
// again and again.
//
// A request the page started itself and that has not answered within SHOW_AFTER_MS is handed
// over still in flight (carry): it shows as waiting ("Sending…") and the composer or the menu is
// free at once, without sending it twice.
import { t } from './i18n.js';
import { refreshToken } from './session.js';

const CHECK_NOW = t('Check now');

const MAX_BACKOFF_MS = 30000;
export const SHOW_AFTER_MS = 1000;

// Withdraw the request of idempotency key `key` at `url` (api.withdraw_post): {response, body},
// or throws when the network fails or nothing answers before signal. A page out of date (signed
// in or out in another tab) takes a fresh CSRF token from `sessionUrl` and asks again.
async function withdrawal(url, sessionUrl, key, signal) {
  for (let again = 0; ; again += 1) {
    const response = await fetch(url, {
      method: 'POST', signal, body: JSON.stringify({ idempotency_key: key }),
      headers: { Accept: 'application/json', 'Content-Type': 'application/json',
                 'X-CSRF-Token': document.querySelector('input[name=csrf_token]')?.value || '' },
    });
    const body = await response.json().catch(() => ({}));
    if (signal.aborted) throw new Error('timed out');  // while reading the answer
    if (body.code !== 'csrf' || again || !sessionUrl || !await refreshToken(sessionUrl)) return { response, body };
  }
}

/**
 * A withdrawal is done (nothing of it was, or will be, done): say ``sentence`` (a string or a
 * Node) where the composer ``form`` says such things (its role=status note), and move the
 * keyboard's focus there when ``focused`` (it was on the line that went): not into the text
 * box, which would open a phone's keyboard unasked. ``restore``, if given, is offered as a button after the sentence ("Put it
 * back to edit"): "Don't send" is often pressed to correct a post, and its text was gone. Each
 * such sentence is a line of its own, under those still showing: a second one replaced the
 * first, and the first post's text could no longer be put back.
 */
export function sayWithdrawn(form, sentence, focused, restore = null) {
  const note = form?.querySelector('[data-note]');
  if (!note) return;
  const others = note.querySelectorAll(':scope > [data-withdrawn]');
  if (note.hidden || others.length !== note.children.length || !others.length) note.replaceChildren();
  const item = document.createElement('span');
  item.dataset.withdrawn = '';
  item.append(sentence);
  if (restore) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'link';
    button.dataset.restore = '';
    button.textContent = t('Put it back to edit');
    button.addEventListener('click', () => {
      item.remove();
      if (!note.children.length) note.hidden = true;
      restore();
    });
    item.append(' ', button);
  }
  note.append(item);
  note.hidden = false;
  if (focused) {  // its own line, not the whole note: a screen reader read every line again
    item.tabIndex = -1;
    item.focus();
  }
}

/**
 * A waiting entry's controls, appended to its line `line`: the status (data-pending-status, which
 * the entry's show() fills), "Retry now" (retry: every waiting entry goes again) and the discard
 * button (`discardLabel`, calls discard()). Both buttons are plain links to look at.
 */
export function appendControls(line, { retryLabel, retry, discardLabel, discard }) {
  const status = document.createElement('span');
  status.dataset.pendingStatus = '';
  const button = (label, data, onClick) => {
    const el = document.createElement('button');
    el.type = 'button';
    el.className = 'link';
    el.dataset[data] = '';
    el.textContent = label;
    el.addEventListener('click', onClick);
    return el;
  };
  line.append(status, ' ', button(retryLabel, 'retry', retry), ' ', button(discardLabel, 'discard', discard));
}

// A waiting entry is 'queued' (never tried: behind the one before it), 'sending' (an attempt in
// flight) or 'waiting' (tried, failed, to be tried again), and its line offers what is true of
// that. A request in flight cannot be called back: a stalled network holds it and delivers it
// late, and the server stores it then. So, as in Slack or Signal, one on its way offers no "Don't
// send" (nor "Don't save"), only "Sending…": offered, it hid the line, and the post stored once
// the network was back showed as a message the person had asked not to send. Hidden rather than
// disabled with a note: a greyed button asks to be tried and explained, and the attempt ends
// within the post timeout, after which it is offered again. "Retry now" is for one that failed:
// a queued one goes right after the one before it anyway.
/** Show the buttons of an entry's line `line` that are true of its state (none to discard one
 * being withdrawn: `withdrawing`). */
export function showControls(line, state, withdrawing = false) {
  const buttons = [line.querySelector('[data-retry]'), line.querySelector('[data-discard]')];
  // Being withdrawn, "Retry now" would read as "send it after all": it asks the server again.
  if (withdrawing) {
    buttons[0].textContent = CHECK_NOW;
    line.dataset.withdrawing = '';  // not "not sent yet" (waiting.js)
  }
  const focused = buttons.find((button) => button === document.activeElement);
  buttons[0].hidden = state !== 'waiting';
  buttons[1].hidden = state === 'sending' || (withdrawing && state !== 'refused');
  if (focused?.hidden) {
    // A hidden button drops the keyboard's focus to the page's start: keep it on this line.
    const status = line.querySelector('[data-pending-status]');
    status.tabIndex = -1;
    status.focus();
  }
}

/**
 * root: the room's element (chat:state, chat:signed-out; chat:check goes out on it);
 * timeoutMs: how long an attempt waits for its answer; onChange(): the queue changed;
 * withdrawUrl: where its entries are withdrawn (the room's data-withdraw-url by default, a
 * conversation's for its direct messages; none: the server keeps no idempotency keys).
 * An entry: { send(signal) -> Promise<{response, body}> (throws: no answer), show(state)
 * ('queued' | 'sending' | 'waiting'), sent(result), refused(result) }.
 */
export function Retries(root, { timeoutMs, onChange = () => {}, withdrawUrl = root.dataset.withdrawUrl }) {
  const queue = [];
  let running = false;
  let failures = 0;   // failed attempts in a row: the automatic retries back off
  let lastAttempt = 0;
  let timer = null;
  let state = '';     // the stream's

  const backoff = () => Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.max(0, failures - 1));

  function remove(entry) {
    const at = queue.indexOf(entry);
    if (at < 0) return;
    queue.splice(at, 1);
    onChange();
  }

  // The attempt failed: wait for the connection, or (a 5xx, a rate limit) for the server's time.
  function failed(entry, response) {
    failures += 1;
    lastAttempt = Date.now();
    entry.show('waiting');
    const after = Number(response?.headers.get('Retry-After')) * 1000 || 0;
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      // Known down: the stream's 'connected' sends them (a request now would only hang).
      if (state !== 'reconnecting' && state !== 'offline') flush();
    }, Math.max(after, backoff()));
  }

  // why: 'send' (no answer at all: the network failed) or 'slow' (unanswered for SHOW_AFTER_MS).
  const check = (why) => root.dispatchEvent(new CustomEvent('chat:check', { detail: { why }, bubbles: true }));

  // From its first attempt on, an entry may have been done, whatever happens to that attempt:
  // "Don't send" / "Don't save" then withdraws it (mustWithdraw). Kept by onChange (a reload).
  function tried(entry) {
    if (entry.tried) return;
    entry.tried = true;
    onChange();
  }

  async function attempt(entry) {
    tried(entry);
    let { promise, abort } = entry.inflight || {};
    entry.inflight = null;
    let timeout = null;
    let slow = null;
    if (!promise) {
      abort = new AbortController();
      timeout = setTimeout(() => abort.abort(), timeoutMs);
      slow = setTimeout(() => check('slow'), SHOW_AFTER_MS);
      entry.show('sending');
      promise = entry.send(abort.signal);
    } else check('slow');  // carried over: already unanswered for SHOW_AFTER_MS
    entry.abort = abort;
    lastAttempt = Date.now();
    let result = null;
    try {
      result = await promise;
    } catch (err) { /* no answer: unknown again */ } finally {
      clearTimeout(timeout);
      clearTimeout(slow);
      entry.abort = null;
    }
    if (!queue.includes(entry)) return 'gone';  // dropped meanwhile
    const response = result?.response;
    if (response?.ok) {
      failures = 0;
      remove(entry);
      entry.sent(result);
      return 'sent';
    }
    if (response && response.status < 500 && response.status !== 429) {
      // Refused (signed out, banned, too late to edit...): a retry would not change that.
      remove(entry);
      entry.refused(result);
      return 'refused';
    }
    failed(entry, response);
    // The network failed or nothing answered: the stream on the same path may be as dead.
    if (!response) check('send');
    return 'failed';
  }

  async function flush() {
    if (running || !root.dataset.me) return;
    clearTimeout(timer);
    timer = null;
    running = true;
    try {
      while (queue.length) {
        if (await attempt(queue[0]) === 'failed') break;  // in order: the rest wait behind it
      }
    } finally {
      running = false;
    }
  }

  // Back: send now, unless an attempt failed just now (its timer comes first: a server that
  // fails requests while its stream is fine would otherwise be asked again at every reconnect).
  function back() {
    if (queue.length && Date.now() - lastAttempt >= backoff()) flush();
  }
  root.addEventListener('chat:state', (e) => {
    const was = state;
    state = e.detail.state;
    if (state === 'connected' && was !== 'connected') back();
  });
  addEventListener('online', () => { failures = 0; back(); });
  // Signed out (here or in another tab): nothing goes out later under no session.
  root.addEventListener('chat:signed-out', () => {
    for (const entry of queue) if (entry.abort) entry.abort.abort();
    queue.length = 0;
    clearTimeout(timer);
  });

  return {
    queue,
    /** Wait in the queue: after a failed attempt (``outcome`` {response?}), or behind the others (null). */
    add(entry, outcome) {
      if (outcome) entry.tried = true;
      queue.push(entry);
      onChange();
      if (outcome) failed(entry, outcome.response);
      else {
        entry.show('queued');  // not tried yet: "not sent yet — will retry" was not true of it
        failures = 0;
        flush();
      }
    },
    /** Take over an attempt still in flight ({promise, abort}); it shows as sending meanwhile. */
    carry(entry, inflight) {
      entry.inflight = inflight;
      entry.tried = true;
      queue.push(entry);
      onChange();
      entry.show('sending');
      // Settled before its turn came (the one ahead of it failed, and the queue stopped): it no
      // longer is on its way. Stored: done; else it waits as tried, with its buttons back.
      inflight.promise.then((result) => result, () => null).then((result) => {
        if (entry.inflight !== inflight || !queue.includes(entry)) return;  // its turn came, or gone
        if (result?.response?.ok) {
          entry.inflight = null;
          remove(entry);
          entry.sent(result);
        } else entry.show('waiting');
      });
      flush();
    },
    /** Forget it (if it got there, the stream shows its outcome anyway). */
    drop(entry) {
      if (entry.abort) entry.abort.abort();
      if (entry.inflight) entry.inflight.abort.abort();
      entry.inflight = null;
      const head = queue[0] === entry;
      remove(entry);
      // The one behind it comes first now: with nothing on its way, it offers "Retry now" rather
      // than waiting out, buttonless, the time the dropped one was told to wait.
      if (head && !running && queue.length && !queue[0].inflight) queue[0].show('waiting');
    },
    retry() { failures = 0; flush(); },
    back,
    /** Tell whether "Don't send" / "Don't save" must withdraw ``entry`` (it was tried, so it may
     * have been done) rather than forget it, and whether the page can (withdrawUrl). */
    mustWithdraw: (entry) => queue.includes(entry) && !!entry.tried && !!entry.key && !!withdrawUrl,
    /** Tell whether the page can withdraw at all. */
    canWithdraw: () => !!withdrawUrl,
    /**
     * From now on the attempts of ``entry`` (one that may have been done: its sender chose "Don't
     * send" or "Don't save" after trying it) withdraw it by its key (at withdrawUrl),
     * waiting and retried as it was; {sent(result), refused(result)}: 200
     * nothing was done, and never will be; a refusal (409 "already_sent": it was done first).
     * Kept so by onChange (a reload): such an entry is never sent as itself again.
     */
    withdraw(entry, { sent, refused }) {
      const send = (signal) => withdrawal(withdrawUrl, root.dataset.sessionUrl, entry.key, signal);
      Object.assign(entry, { withdrawing: true, sent, refused, send });
      entry.show(queue[0] === entry ? 'sending' : 'queued');
      if (queue.includes(entry)) {
        onChange();
        failures = 0;
        flush();
      }
    },
  };
}
