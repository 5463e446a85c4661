// ChatForm: enhances the plain <form method="post"> with fetch; the text is cleared only
// after the server has stored it, and a retry reuses the idempotency key so it never doubles.
// The same form sends direct messages: "Reply" or a name in the online list points it at a person.
import { newKey } from './ids.js';

// A post on a dead connection would hang for minutes: after this, say so and offer a retry.
const TIMED_OUT = (s) => `No answer from the server after ${s} s. Your message is kept; press Send to retry (it will not be posted twice).`;
const UNREACHABLE = 'Could not reach the server. Your message is kept; press Send to retry.';

export function ChatForm(form, root) {
  const text = form.querySelector('textarea[name=text]');
  const key = form.querySelector('input[name=idempotency_key]');
  const error = form.querySelector('[data-error]');
  const button = form.querySelector('button[type=submit]');
  const to = form.querySelector('[data-to]');
  const toLabel = form.querySelector('[data-to-label]');
  const placeholder = text.placeholder;
  const timeoutMs = Number(root.dataset.postTimeoutMs) || 12000;
  let recipient = null;  // null: the room; else the name a direct message goes to
  let sending = false;

  const showError = (message) => { error.textContent = message; error.hidden = !message; };

  function target(name) {
    recipient = name;
    to.hidden = !name;
    toLabel.textContent = name ? `Direct message to ${name}` : '';
    text.placeholder = name ? `Message ${name} privately` : placeholder;
    form.action = name ? form.dataset.directAction.replace('__NAME__', encodeURIComponent(name))
                       : form.dataset.roomAction;
    text.focus();
  }

  async function send() {
    if (sending) return;
    if (!text.value.trim()) { showError('Type a message first.'); return; }
    sending = true;
    button.disabled = true;
    const sent = text.value;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      const response = await fetch(form.action, {
        method: 'POST', body: new FormData(form),
        headers: { Accept: 'application/json' }, signal: abort.signal,
      });
      const body = await response.json().catch(() => ({}));
      if (abort.signal.aborted) throw new Error('timed out');  // while reading the answer
      if (!response.ok) {
        const wait = response.headers.get('Retry-After');
        showError((body.error || `Sending failed (${response.status}).`) + (wait ? ` Try again in ${wait} s.` : ''));
        if (response.status < 500 && response.status !== 429) key.value = newKey();  // rejected, not stored
        return;
      }
      showError('');
      // Clear what was sent, but keep anything typed while it was on its way.
      text.value = text.value.startsWith(sent) ? text.value.slice(sent.length) : text.value;
      key.value = newKey();
      const name = recipient ? 'chat:direct' : 'chat:message';
      root.dispatchEvent(new CustomEvent(name, { detail: { message: body, live: false }, bubbles: true }));
    } catch (err) {
      // Network failure or no answer in time: the message may or may not be stored; the same
      // key makes a retry safe. The stream may be as dead as this post was: have it checked.
      showError(abort.signal.aborted ? TIMED_OUT(Math.round(timeoutMs / 1000)) : UNREACHABLE);
      root.dispatchEvent(new CustomEvent('chat:check', { detail: {}, bubbles: true }));
    } finally {
      clearTimeout(timer);
      sending = false;
      button.disabled = false;
      text.focus();
    }
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); send(); });
  text.addEventListener('keydown', (e) => {
    // Enter while an IME is composing (e.g. pinyin) picks a candidate; it must not send.
    if (e.key === 'Escape' && recipient) { target(null); return; }
    if (e.key !== 'Enter' || e.shiftKey || e.isComposing || e.keyCode === 229) return;
    e.preventDefault();
    send();
  });
  form.querySelector('[data-to-cancel]').addEventListener('click', () => target(null));
  root.addEventListener('chat:reply', (e) => target(e.detail.name));
}
