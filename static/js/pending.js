// PendingPosts: the posts of one composer whose outcome is unknown (no answer in time, the
// connection failed, a 5xx that may have stored them). As in Telegram, Signal or Slack, each
// waits at the end of the log as "Sending…" / "Not sent yet — will retry", with its text and its
// idempotency key, and the composer is free for new text: a post kept in the composer invited a
// correction, and the corrected text (a new message, a new key) was posted beside the first,
// which had been stored after all.
//
// Each is sent again with the same key (never stored twice): when the stream is connected again,
// when the browser is back online, on "Retry now", and on a backing-off timer; one at a time and in
// order, and a new post from the composer waits behind them. "Don't send" drops one (if it had
// arrived, its message comes on the stream anyway). Its own message on the stream (matched by
// author, text and reply) shows it was stored: the entry gives way to the message at once, and a
// last retry with its key confirms it quietly (200 and the original, or 201 if the message seen
// was another one with the same words). The queue is kept in the tab (sessionStorage) for its
// writer, so a reload sends what was waiting instead of losing it; signing out forgets it.
import { t } from './i18n.js';

const STRINGS = {
  sending: t('Sending…'),
  waiting: t('Not sent yet — will retry.'),
  retry: t('Retry now'),
  discard: t("Don't send"),
  failed: (status) => t('Sending failed ({status}).', { status: String(status) }),
};
const MAX_BACKOFF_MS = 30000;

// What the server stores (app/rooms/messages.py check_text): blank lines around the text dropped.
export const stored = (value) => value.replace(/^(?:[^\S\n]*\n)+/, '').trimEnd();

/**
 * form: the composer; log: its [data-log]; submit(data, signal): post a FormData, resolve to
 * {response, body} or throw (network failure, timeout); event: 'chat:message' or 'chat:direct'.
 * Returns { add(fields, outcome), busy(), echo(message) }: fields {key, text, reply_to};
 * outcome {response?, echoed?} of the attempt that failed.
 */
export function PendingPosts(form, root, log, { submit, event, timeoutMs }) {
  const list = document.createElement('ol');
  list.className = 'messages pending-posts';
  list.dataset.pending = '';
  list.setAttribute('aria-live', 'polite');
  log.querySelector('[data-messages]').after(list);
  const storageKey = `ripple-pending:${new URL(form.action, location.href).pathname}`;
  const queue = [];  // {key, text, reply_to, echoed, li, abort}
  let running = false;
  let failures = 0;   // failed attempts in a row: the automatic retries back off
  let lastAttempt = 0;
  let timer = null;
  let state = '';     // the stream's

  const backoff = () => Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.max(0, failures - 1));

  function save() {
    try {
      const posts = queue.map(({ key, text, reply_to }) => ({ key, text, reply_to }));
      if (posts.length) sessionStorage.setItem(storageKey, JSON.stringify({ writer: root.dataset.me, posts }));
      else sessionStorage.removeItem(storageKey);
    } catch (err) { /* storage off: kept on this page only */ }
  }

  function render(entry) {
    const li = document.createElement('li');
    li.className = 'pending-post';
    li.dataset.key = entry.key;
    const who = document.createElement('span');
    who.className = 'who';
    who.dir = 'auto';
    who.textContent = root.dataset.me || '';
    const text = document.createElement('p');
    text.className = 'text';
    text.dir = 'auto';
    text.textContent = stored(entry.text);
    const line = document.createElement('p');
    line.className = 'pending-state';
    const status = document.createElement('span');
    status.dataset.pendingStatus = '';
    const retry = document.createElement('button');
    retry.type = 'button';
    retry.className = 'link';
    retry.dataset.retry = '';
    retry.textContent = STRINGS.retry;
    retry.addEventListener('click', () => { failures = 0; flush(); });
    const discard = document.createElement('button');
    discard.type = 'button';
    discard.className = 'link';
    discard.dataset.discard = '';
    discard.textContent = STRINGS.discard;
    discard.addEventListener('click', () => drop(entry));
    line.append(status, ' ', retry, ' ', discard);
    li.append(who, text, line);
    li.hidden = !!entry.echoed;
    entry.li = li;
    list.append(li);
    log.scrollTop = log.scrollHeight;  // one's own post: show it, as a sent one is shown
  }

  function show(entry, what, sentence = '') {
    const status = entry.li.querySelector('[data-pending-status]');
    status.textContent = what === 'refused' ? sentence : STRINGS[what];
    entry.li.dataset.state = what;
    entry.li.querySelector('[data-retry]').hidden = what !== 'waiting';
  }

  function remove(entry) {
    const at = queue.indexOf(entry);
    if (at >= 0) queue.splice(at, 1);
    entry.li.remove();
    save();
  }

  function drop(entry) {
    if (entry.abort) entry.abort.abort();  // if it got there, its message comes on the stream
    remove(entry);
    form.querySelector('textarea[name=text]')?.focus();
  }

  function data(entry) {
    const body = new FormData(form);  // the session's CSRF token and the form's other fields
    body.set('text', entry.text);
    body.set('idempotency_key', entry.key);
    if (body.has('reply_to')) body.set('reply_to', entry.reply_to || '');
    return body;
  }

  // The attempt failed: wait for the connection, or (a 5xx, a rate limit) for the server's time.
  function failed(entry, response) {
    failures += 1;
    lastAttempt = Date.now();
    show(entry, 'waiting');
    const after = Number(response?.headers.get('Retry-After')) * 1000 || 0;
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      // Known down: the stream's 'connected' sends them (a post now would only hang).
      if (state !== 'reconnecting' && state !== 'offline') flush();
    }, Math.max(after, backoff()));
  }

  async function attempt(entry) {
    const abort = new AbortController();
    entry.abort = abort;
    const timeout = setTimeout(() => abort.abort(), timeoutMs);
    if (!entry.echoed) show(entry, 'sending');
    lastAttempt = Date.now();
    let result = null;
    try {
      result = await submit(() => data(entry), abort.signal);
    } catch (err) { /* no answer: unknown again */ } finally {
      clearTimeout(timeout);
      entry.abort = null;
    }
    if (!queue.includes(entry)) return 'gone';  // "Don't send" meanwhile
    const response = result?.response;
    if (response?.ok) {
      failures = 0;
      remove(entry);
      root.dispatchEvent(new CustomEvent(event, {
        detail: { message: result.body, live: false, answer: true, retried: true }, bubbles: true }));
      return 'sent';
    }
    if (response && response.status < 500 && response.status !== 429) {
      // Refused (signed out, banned, ...): nothing was stored and a retry would not change that.
      // The entry stays with the server's sentence, its text to copy, until dismissed (one whose
      // message already showed gives way to it).
      if (entry.echoed) { remove(entry); return 'refused'; }
      queue.splice(queue.indexOf(entry), 1);
      save();
      entry.li.hidden = false;
      show(entry, 'refused', result.body.error || STRINGS.failed(response.status));
      return 'refused';
    }
    failed(entry, response);
    // The network failed or nothing answered: have the stream prove itself (the status says
    // "reconnecting…" until it does); its 'connected' sends the queue again.
    if (!response) root.dispatchEvent(new CustomEvent('chat:check', { detail: {}, bubbles: true }));
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
  // fails posts while its stream is fine would otherwise be asked again at every reconnect).
  function back() {
    if (queue.length && Date.now() - lastAttempt >= backoff()) flush();
  }
  root.addEventListener('chat:state', (e) => {
    const was = state;
    state = e.detail.state;
    if (state === 'connected' && was !== 'connected') back();
  });
  addEventListener('online', () => { failures = 0; back(); });
  // Signed out (here or in another tab): nothing of theirs stays on the page or goes out later
  // under no session (session.js forgets the tab's copy).
  root.addEventListener('chat:signed-out', () => {
    for (const entry of queue) if (entry.abort) entry.abort.abort();
    queue.length = 0;
    clearTimeout(timer);
    list.replaceChildren();
  });

  // Kept by a reload (or a phone that discarded the tab): its writer's posts are sent again.
  try {
    const kept = JSON.parse(sessionStorage.getItem(storageKey) || 'null');
    if (kept && kept.writer && kept.writer === root.dataset.me) {
      for (const post of kept.posts || []) {
        const entry = { key: post.key, text: post.text, reply_to: post.reply_to || '' };
        queue.push(entry);
        render(entry);
        show(entry, 'waiting');
      }
      if (queue.length) flush();
    } else if (kept) sessionStorage.removeItem(storageKey);
  } catch (err) { /* storage off, or unreadable: nothing kept */ }

  return {
    /** Wait in the log (after a failed attempt, or behind the others when ``outcome`` is null). */
    add(fields, outcome) {
      const entry = { ...fields, echoed: !!outcome?.echoed };
      queue.push(entry);
      render(entry);
      save();
      if (outcome) {
        failed(entry, outcome.response);
        if (entry.echoed) back();
      } else {
        show(entry, 'waiting');
        failures = 0;
        flush();
      }
    },
    busy: () => queue.length > 0,
    /** This person's message came on the stream: a pending post of the same words gives way. */
    echo(message) {
      const reply = message.reply_to?.id || '';
      const entry = queue.find((p) => !p.echoed && stored(p.text) === message.text
        && (p.reply_to || '') === reply);
      if (!entry) return;
      entry.echoed = true;
      entry.li.hidden = true;  // the message is in the log now; the retry below only confirms it
      back();
    },
  };
}
