// ChatForm: enhances the plain <form method="post"> with fetch; the text is cleared only
// after the server has stored it, or once it waits in the log as a pending post (pending.js) when
// the outcome is unknown or the answer is slow to come: a retry reuses the idempotency key so it
// never doubles.
// The room's composer and a conversation's (data-kind="direct") are separate forms.
import { formatNumber, t, tn } from './i18n.js';
import { newKey } from './ids.js';
import { PendingPosts, stored } from './pending.js';
import { SHOW_AFTER_MS } from './retries.js';
import { refreshToken } from './session.js';

const STRINGS = {
  empty: t('Type a message first.'),
  failed: (status) => t('Sending failed ({status}).', { status: String(status) }),
  // A 5xx without a sentence of ours (a proxy's error page, a worker that died).
  serverFailed: (status) => t('The server could not take your message just now ({status}). Your message is kept; press Send to retry.',
    { status: String(status) }),
  wait: (seconds) => ' ' + t('Try again in {seconds} s.', { seconds: Number(seconds) }),
  // Said (politely) in place of a 5xx's sentence once the page's stream is connected again.
  back: t('Connected again.'),
  backKept: t('Connected again. Your message is kept; press Send to send it (it will not be posted twice).'),
  tooLong: (count, max) => t('Your message is {count} characters; the limit is {max}. Shorten it by {over} to send it.',
    { count, max, over: count - max }),
  counter: (count, max) => `${formatNumber(count)} / ${formatNumber(max)}`,
  over: (count, max) => tn('{n} too many', '{n} too many', count - max),
  hintKeyboard: t('Enter sends · Shift+Enter adds a line'),
  hintTouch: t('Enter adds a line · tap Send to send'),
  // A direct message to an account that is away (the answer's Ripple-Delivery: waiting).
  waiting: (name) => t('Sent. {name} is away: it is delivered when they are back.', { name }),
};
const COUNTER_FROM = 0.9;  // the counter shows from this share of the limit on

// A phone or tablet: its on-screen Enter key is the only way to start a new line.
const touch = matchMedia('(pointer: coarse)');

// A 503 is refused before anything is stored (docs/api.md: the store down or full; a proxy's
// 503, its backend not reached): the text stays in the composer. Any other 5xx (a 504
// "unconfirmed", a proxy's 502, a worker that died) may have stored it.
const NOT_STORED = 503;
const length = (value) => [...stored(value)].length;  // code points, as the server counts

export function ChatForm(form, root) {
  const text = form.querySelector('textarea[name=text]');
  const key = form.querySelector('input[name=idempotency_key]');
  const error = form.querySelector('[data-error]');
  const button = form.querySelector('button[type=submit]');
  const hint = form.querySelector('[data-hint]');
  const counter = form.querySelector('[data-counter]');
  const max = Number(text.dataset.maxChars);
  const event = form.dataset.kind === 'direct' ? 'chat:direct' : 'chat:message';
  const timeoutMs = Number(root.dataset.postTimeoutMs) || 12000;
  let sending = false;
  let refused = false;  // the too-long sentence is showing
  let lost = false;  // a 5xx's sentence is showing: the service may be back with the stream
  let echoed = [];  // texts of this person's messages that came on the stream while sending

  const note = form.querySelector('[data-note]');
  const showError = (message, unreachable = false) => {
    error.textContent = message;
    error.hidden = !message;
    lost = unreachable;
  };
  const showNote = (message) => { if (note) { note.textContent = message; note.hidden = !message; } };

  function count() {
    const n = length(text.value);
    const over = n > max;
    counter.hidden = n < max * COUNTER_FROM;
    counter.textContent = STRINGS.counter(n, max) + (over ? ` — ${STRINGS.over(n, max)}` : '');
    counter.classList.toggle('over', over);
    text.setAttribute('aria-invalid', String(over));
    if (!over && refused) { refused = false; showError(''); }
    return n;
  }

  function device() {
    hint.textContent = touch.matches ? STRINGS.hintTouch : STRINGS.hintKeyboard;
    text.enterKeyHint = touch.matches ? 'enter' : 'send';
  }

  // Post data() (a FormData, built again after a CSRF refresh); {response, body}, or throws
  // when the network fails or nothing answers before signal.
  async function submit(data, signal) {
    const post = () => fetch(form.action, {
      method: 'POST', body: data(), headers: { Accept: 'application/json' }, signal,
    });
    let response = await post();
    let body = await response.json().catch(() => ({}));
    if (body.code === 'csrf' && await refreshToken(root.dataset.sessionUrl)) {  // nothing was stored: the same key is safe
      response = await post();
      body = await response.json().catch(() => ({}));
    }
    if (signal.aborted) throw new Error('timed out');  // while reading the answer
    return { response, body };
  }

  const log = (form.closest('[data-conversation]') || root).querySelector('[data-log]');
  const pending = PendingPosts(form, root, log, { submit, event, timeoutMs });
  const replyId = () => form.querySelector('[data-replying-id]')?.value || '';
  // What it answers, as the composer shows it: the waiting post shows it too (pending.js).
  const replyQuote = () => (replyId() ? {
    user: form.querySelector('[data-replying-user]')?.textContent || '',
    text: form.querySelector('[data-replying-text]')?.textContent || '',
  } : null);

  // The text left the composer (stored, or waiting in the log): clear it, but keep anything typed
  // while it was on its way; the next message takes a new key. The draft (session.js) follows.
  function sent(value) {
    text.value = text.value.startsWith(value) ? text.value.slice(value.length) : text.value;
    count();
    key.value = newKey();
    form.dispatchEvent(new CustomEvent('chat:sent', { detail: {}, bubbles: true }));
  }

  // Outcome unknown: the post waits in the log and is sent again with its key (pending.js); the
  // composer is free. A reply's quote goes with it.
  function park(value, outcome) {
    pending.add({ key: key.value, text: value, reply_to: replyId(), quote: replyQuote() },
      { ...outcome, echoed: echoed.includes(stored(value)) });  // it came back while we waited
    sent(value);
    if (replyId()) form.querySelector('[data-replying-cancel]')?.click();
    showError('');
  }

  async function send() {
    if (sending) return;
    if (!text.value.trim()) { showError(STRINGS.empty); return; }
    const n = count();
    if (n > max) { refused = true; showError(STRINGS.tooLong(n, max)); text.focus(); return; }
    showNote('');
    const value = text.value;
    if (pending.busy()) {  // posts still waiting go first: this one waits behind them, in order
      pending.add({ key: key.value, text: value, reply_to: replyId(), quote: replyQuote() }, null);
      sent(value);
      if (replyId()) form.querySelector('[data-replying-cancel]')?.click();
      showError('');
      return;
    }
    sending = true;
    button.disabled = true;
    echoed = [];
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    const attempt = submit(() => new FormData(form), abort.signal);
    // No answer yet after a moment (a slow or dead network): the post waits in the log as
    // "Sending…", the same attempt carried on there (the same key), and the composer is free.
    let carried = false;
    const carry = setTimeout(() => {
      carried = true;
      pending.carry({ key: key.value, text: value, reply_to: replyId(), quote: replyQuote() }, { promise: attempt, abort },
        echoed.includes(stored(value)));
      sent(value);
      if (replyId()) form.querySelector('[data-replying-cancel]')?.click();
      showError('');
      sending = false;
      button.disabled = false;
    }, SHOW_AFTER_MS);
    try {
      const { response, body } = await attempt;
      if (carried) {  // pending.js has its outcome; a direct message's "away" still says so
        if (response.ok) showNote(response.headers.get('Ripple-Delivery') === 'waiting' ? STRINGS.waiting(body.to) : '');
        return;
      }
      if (!response.ok) {
        if (response.status >= 500 && response.status !== NOT_STORED) {
          park(value, { response });  // a 504 "unconfirmed", a proxy's 502: it may be stored
          return;
        }
        const wait = response.headers.get('Retry-After');
        // A rate limit's sentence already says how long to wait; a 503 (the store down or full)
        // says when to come back in Retry-After.
        // A 5xx (the service down, a proxy's 502) goes stale like a network error does.
        showError((body.error || (response.status >= 500 ? STRINGS.serverFailed : STRINGS.failed)(response.status))
          + (wait && response.status === 503 ? STRINGS.wait(wait) : ''), response.status >= 500);
        // Refused, not stored: a new key (a 429 or a 503 keeps it: nothing was stored either way).
        if (response.status < 500 && response.status !== 429) key.value = newKey();
        return;
      }
      showError('');
      showNote(response.headers.get('Ripple-Delivery') === 'waiting' ? STRINGS.waiting(body.to) : '');
      sent(value);
      root.dispatchEvent(new CustomEvent(event, { detail: { message: body, live: false, answer: true }, bubbles: true }));
    } catch (err) {
      if (carried) return;  // pending.js has it, and has the stream checked
      // Network failure or no answer in time: the message may or may not be stored. It waits in
      // the log, sent again with the same key (never twice), and the stream may be as dead as this
      // post was: have it checked.
      park(value, {});
      root.dispatchEvent(new CustomEvent('chat:check', { detail: {}, bubbles: true }));
    } finally {
      clearTimeout(carry);
      clearTimeout(timer);
      if (!carried) {
        sending = false;
        button.disabled = false;
        text.focus();
      }
    }
  }

  // The stream is back: "the service is unavailable" may no longer be true; a sentence that stayed
  // until the next send would say it is still down. The note is a polite status.
  root.addEventListener('chat:state', (e) => {
    if (e.detail.state !== 'connected' || !lost || sending) return;
    showError('');
    showNote(text.value.trim() ? STRINGS.backKept : STRINGS.back);
  });

  // This person's message on the stream (live, or in the catch-up after a reconnect): a post
  // still waiting for its answer, or waiting in the log, may be it.
  root.addEventListener(event, (e) => {
    const message = e.detail.message;
    if (!message || e.detail.answer || (message.user ?? message.from) !== root.dataset.me) return;
    if (sending) echoed.push(message.text);
    pending.echo(message);
  });

  form.addEventListener('submit', (e) => { e.preventDefault(); send(); });
  text.addEventListener('keydown', (e) => {
    // Enter while an IME is composing (e.g. pinyin) picks a candidate; it must not send.
    // On a touch screen Enter adds a line: the Send button sends.
    if (e.key !== 'Enter' || e.shiftKey || e.isComposing || e.keyCode === 229 || touch.matches) return;
    e.preventDefault();
    send();
  });
  text.addEventListener('input', count);
  touch.addEventListener('change', device);
  device();
  count();
}
