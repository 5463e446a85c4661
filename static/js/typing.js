// Typing: "ann is typing…" under the log, and the signal this person's own typing sends.
// Signals are ephemeral: the server broadcasts one per person per 3 s at most and never
// stores them; a page forgets a name 6 s after its last signal, or when that person's
// message arrives.
import { t, tn } from './i18n.js';
import { sameName } from './messages.js';

const SHOW_MS = 6000;   // a name stays this long after its last signal
const SEND_EVERY_MS = 3000;  // the server's throttle: sending more often would be wasted
const TEXTS = {
  one: (name) => t('{name} is typing…', { name }),
  two: (a, b) => t('{a} and {b} are typing…', { a, b }),
  many: (n) => tn('{n} person is typing…', '{n} people are typing…', n),
};

/**
 * TypingLine(el, root): show who is typing in the room from chat:typing events (bubbling to
 * ``root``), never the person themselves (root.dataset.me).
 */
export function TypingLine(el, root) {
  if (!el) return;
  const typing = new Map();  // name -> timer that forgets it

  function render() {
    const names = [...typing.keys()];
    el.textContent = names.length === 0 ? '' : names.length === 1 ? TEXTS.one(names[0])
      : names.length === 2 ? TEXTS.two(names[0], names[1]) : TEXTS.many(names.length);
  }

  function forget(name) {
    clearTimeout(typing.get(name));
    typing.delete(name);
    render();
  }

  root.addEventListener('chat:typing', (e) => {
    const { name } = e.detail;
    if (!name || sameName(name, root.dataset.me || '')) return;
    clearTimeout(typing.get(name));
    typing.set(name, setTimeout(() => forget(name), SHOW_MS));
    render();
  });
  // Their message is what they were typing: the line goes at once.
  root.addEventListener('chat:message', (e) => {
    const author = e.detail.message && e.detail.message.user;
    for (const name of typing.keys()) if (sameName(name, author || '')) forget(name);
  });
  root.addEventListener('chat:signed-out', () => { for (const name of [...typing.keys()]) forget(name); });
}

/**
 * TypingSignal(form, url): while the person types in ``form``'s textarea, POST ``url`` (with
 * the form's CSRF token) at most once per SEND_EVERY_MS. Failures are ignored: a typing line
 * is a courtesy, never worth an error on the page.
 */
export function TypingSignal(form, url) {
  const text = form && form.querySelector('textarea[name=text]');
  if (!text || !url) return;
  let sentAt = 0;
  text.addEventListener('input', () => {
    const now = Date.now();
    if (!text.value.trim() || now - sentAt < SEND_EVERY_MS) return;
    sentAt = now;
    const token = form.querySelector('input[name=csrf_token]');
    fetch(url, { method: 'POST', headers: { 'X-CSRF-Token': token ? token.value : '' } }).catch(() => {});
  });
}
