// ChatForm: enhances the plain <form method="post"> with fetch; the text is cleared only
// after the server has stored it, and a retry reuses the idempotency key so it never doubles.
// The room's composer and a conversation's (data-kind="direct") are separate forms.
import { formatNumber, t, tn } from './i18n.js';
import { newKey } from './ids.js';
import { useToken } from './session.js';

const STRINGS = {
  empty: t('Type a message first.'),
  failed: (status) => t('Sending failed ({status}).', { status: String(status) }),
  // A 5xx without a sentence of ours (a proxy's error page, a worker that died).
  serverFailed: (status) => t('The server could not take your message just now ({status}). Your message is kept; press Send to retry.',
    { status: String(status) }),
  wait: (seconds) => ' ' + t('Try again in {seconds} s.', { seconds: Number(seconds) }),
  // A post on a dead connection would hang for minutes: after this, say so and offer a retry.
  timedOut: (s) => t('No answer from the server after {s} s. Your message is kept; press Send to retry (it will not be posted twice).', { s }),
  unreachable: t('Could not reach the server. Your message is kept; press Send to retry.'),
  // Said (politely) in place of either of those two once the page's stream is connected again.
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

// What the server stores (app/rooms/messages.py check_text): blank lines around the text dropped.
const stored = (value) => value.replace(/^(?:[^\S\n]*\n)+/, '').trimEnd();
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
  let lost = false;  // the could-not-reach (or no-answer) sentence is showing
  // The text last sent with key.value when no answer came: it may be stored. A retry of the same
  // text keeps the key (never twice); a changed text is a new message and takes a new key (the
  // old key would answer with the first text, and the correction would be lost).
  let unconfirmed = null;
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

  // A page that was out of date (signed in or out in another tab): take a fresh CSRF token.
  async function refreshToken() {
    const response = await fetch(root.dataset.sessionUrl, { headers: { Accept: 'application/json' } });
    const body = await response.json();
    if (!body.csrf_token) return false;
    useToken(body.csrf_token);
    return true;
  }

  async function post(signal) {
    return fetch(form.action, {
      method: 'POST', body: new FormData(form), headers: { Accept: 'application/json' }, signal,
    });
  }

  async function send() {
    if (sending) return;
    if (!text.value.trim()) { showError(STRINGS.empty); return; }
    const n = count();
    if (n > max) { refused = true; showError(STRINGS.tooLong(n, max)); text.focus(); return; }
    sending = true;
    button.disabled = true;
    showNote('');
    const sent = text.value;
    if (unconfirmed !== null && sent !== unconfirmed) key.value = newKey();
    unconfirmed = null;
    echoed = [];
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      let response = await post(abort.signal);
      let body = await response.json().catch(() => ({}));
      if (body.code === 'csrf' && await refreshToken()) {  // nothing was stored: the same key is safe
        response = await post(abort.signal);
        body = await response.json().catch(() => ({}));
      }
      if (abort.signal.aborted) throw new Error('timed out');  // while reading the answer
      if (!response.ok) {
        const wait = response.headers.get('Retry-After');
        // A rate limit's sentence already says how long to wait; a 503 (the store down or full)
        // says when to come back in Retry-After.
        // A 5xx (the service down, a proxy's 502) goes stale like a network error does.
        showError((body.error || (response.status >= 500 ? STRINGS.serverFailed : STRINGS.failed)(response.status))
          + (wait && response.status === 503 ? STRINGS.wait(wait) : ''), response.status >= 500);
        if (response.status < 500 && response.status !== 429) key.value = newKey();  // rejected, not stored
        // A 5xx keeps the key (a 504 may have stored it): a text changed before the retry is
        // a new message, with a new key, as after no answer at all.
        if (response.status >= 500) {
          unconfirmed = sent;
          if (echoed.includes(stored(sent))) confirmed();  // it came back while we waited
        }
        return;
      }
      showError('');
      showNote(response.headers.get('Ripple-Delivery') === 'waiting' ? STRINGS.waiting(body.to) : '');
      // Clear what was sent, but keep anything typed while it was on its way.
      text.value = text.value.startsWith(sent) ? text.value.slice(sent.length) : text.value;
      count();
      key.value = newKey();
      root.dispatchEvent(new CustomEvent(event, { detail: { message: body, live: false }, bubbles: true }));
    } catch (err) {
      // Network failure or no answer in time: the message may or may not be stored; the same
      // key makes a retry safe. The stream may be as dead as this post was: have it checked.
      unconfirmed = sent;
      if (echoed.includes(stored(sent))) { confirmed(); return; }  // it came back while we waited
      showError(abort.signal.aborted ? STRINGS.timedOut(Math.round(timeoutMs / 1000)) : STRINGS.unreachable, true);
      root.dispatchEvent(new CustomEvent('chat:check', { detail: {}, bubbles: true }));
    } finally {
      clearTimeout(timer);
      sending = false;
      button.disabled = false;
      text.focus();
    }
  }

  // The stream is back: "could not reach the server" is no longer true; a sentence that stayed
  // until the next send would say the connection is still down. The note is a polite status.
  root.addEventListener('chat:state', (e) => {
    if (e.detail.state !== 'connected' || !lost || sending) return;
    showError('');
    showNote(text.value.trim() ? STRINGS.backKept : STRINGS.back);
  });

  // The unconfirmed post was stored after all: its own message came on the stream (live, or in
  // the catch-up after a reconnect). The composer clears (if its text is still that message) and
  // says nothing more of a retry.
  function confirmed() {
    if (text.value === unconfirmed) { text.value = ''; count(); }
    unconfirmed = null;
    key.value = newKey();
    showError('');
    showNote('');
  }
  root.addEventListener(event, (e) => {
    const message = e.detail.message;
    if (!message || (message.user ?? message.from) !== root.dataset.me) return;
    if (sending) echoed.push(message.text);
    else if (unconfirmed !== null && message.text === stored(unconfirmed)) confirmed();
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
