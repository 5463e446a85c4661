// MentionSuggest: an "@" typed in the composer suggests names of people in the room (those
// online, and the authors on the page), filtered by what follows the "@" the way the server
// compares names (fold.js). ArrowUp/ArrowDown move, Enter or Tab pick, Escape closes. Never
// while an IME composes: Enter then picks the IME's candidate, not a name.
import { fold } from './fold.js';
import { t } from './i18n.js';

const MAX = 8;

/** Mount on the composer's textarea; ``root`` is the room's <main> (its names live there). */
export function MentionSuggest(text, root) {
  if (!text) return;
  const list = document.createElement('ul');
  list.className = 'suggest';
  list.id = `${text.id}-suggest`;
  list.setAttribute('role', 'listbox');
  list.setAttribute('aria-label', t('People to mention'));
  list.hidden = true;
  text.after(list);
  text.setAttribute('aria-autocomplete', 'list');
  text.setAttribute('aria-controls', list.id);
  let options = [];
  let active = 0;
  let start = -1;  // where the "@" is
  let composing = false;

  function known() {
    const me = fold(root.dataset.me || '');
    const names = new Map();
    const add = (name) => { if (name && fold(name) !== me && !names.has(fold(name))) names.set(fold(name), name); };
    document.querySelectorAll('[data-online] li').forEach((li) => add(li.dataset.name || li.textContent.trim()));
    Array.from(root.querySelectorAll('li.msg[data-user]')).reverse().forEach((li) => add(li.dataset.user));
    return Array.from(names.values());
  }

  function close() {
    list.hidden = true;
    options = [];
    text.removeAttribute('aria-activedescendant');
  }

  function show() {
    list.replaceChildren(...options.map((name, i) => {
      const li = document.createElement('li');
      li.id = `${list.id}-${i}`;
      li.setAttribute('role', 'option');
      li.dir = 'auto';
      li.textContent = name;
      li.setAttribute('aria-selected', String(i === active));
      li.addEventListener('mousedown', (e) => { e.preventDefault(); pick(i); });
      return li;
    }));
    list.hidden = !options.length;
    if (options.length) text.setAttribute('aria-activedescendant', `${list.id}-${active}`);
  }

  function update() {
    if (composing) return;
    const before = text.value.slice(0, text.selectionStart);
    const at = Math.max(before.lastIndexOf('@'), before.lastIndexOf('＠'));
    const typed = at >= 0 ? before.slice(at + 1) : '';
    if (at < 0 || /\n/.test(typed) || typed.length > 32 || (at > 0 && /[\p{L}\p{N}]/u.test(before[at - 1])
        && !/[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]/u.test(before[at - 1]))) {
      close();
      return;
    }
    const want = fold(typed);
    start = at;
    options = known().filter((name) => fold(name).startsWith(want)).slice(0, MAX);
    active = 0;
    show();
  }

  function pick(i) {
    const name = options[i];
    if (name === undefined) return;
    const end = text.selectionStart;
    const inserted = `@${name} `;
    text.setRangeText(inserted, start, end, 'end');
    text.dispatchEvent(new Event('input', { bubbles: true }));  // the counter, the draft
    close();
    text.focus();
  }

  text.addEventListener('compositionstart', () => { composing = true; });
  text.addEventListener('compositionend', () => { composing = false; update(); });
  text.addEventListener('input', (e) => { if (!e.isComposing) update(); });
  text.addEventListener('blur', () => setTimeout(close, 100));
  // Capture: before the form's own Enter (send) sees the key.
  text.addEventListener('keydown', (e) => {
    if (list.hidden || e.isComposing || e.keyCode === 229) return;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      active = (active + (e.key === 'ArrowDown' ? 1 : options.length - 1)) % options.length;
      show();
    } else if (e.key === 'Enter' || e.key === 'Tab') {
      pick(active);
    } else if (e.key === 'Escape') {
      close();
    } else {
      return;
    }
    e.preventDefault();
    e.stopImmediatePropagation();
  }, true);
}
