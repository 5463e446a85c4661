// Inbox: the "Direct messages" list beside the room. A direct message moves its person to the
// top with the latest text; one that arrives live from someone else, for a conversation that is
// not open, is marked new.
import { otherParty, sameName } from './messages.js';
import { compareIds } from './ids.js';
import { t } from './i18n.js';

const STRINGS = { fresh: t('new') };
const SNIPPET_CHARS = 60;

export function Inbox(el, root, open) {
  if (!el) return;  // signed out: no direct messages
  const empty = el.parentElement.querySelector('[data-inbox-empty]');
  const me = root.dataset.me;

  function entry(name) {
    const found = Array.from(el.children).find((li) => sameName(li.dataset.name, name));
    if (found) return found;
    const li = document.createElement('li');
    li.dataset.name = name;
    li.dataset.lastId = '0-0';
    const link = document.createElement('a');
    link.href = root.dataset.conversationUrl + encodeURIComponent(name);
    link.dir = 'auto';
    link.textContent = name;
    const snippet = document.createElement('span');
    snippet.className = 'snippet';
    snippet.dir = 'auto';
    li.append(link, ' ', snippet);
    return li;
  }

  root.addEventListener('chat:direct', (e) => {
    const message = e.detail.message;
    const name = otherParty(message, me);
    const li = entry(name);
    if (compareIds(message.id, li.dataset.lastId) <= 0) return;  // already shown on the page
    li.dataset.lastId = message.id;
    const text = message.text.length > SNIPPET_CHARS ? `${message.text.slice(0, SNIPPET_CHARS)}…` : message.text;
    li.querySelector('.snippet').textContent = text;
    if (!sameName(message.from, me) && !(open && sameName(open, name))) {
      li.classList.add('unread');
      let badge = li.querySelector('.badge');
      if (!badge) {
        badge = document.createElement('span');
        badge.className = 'badge';
        badge.textContent = STRINGS.fresh;
        li.querySelector('a').after(' ', badge);
      }
    }
    el.prepend(li);
    if (empty) empty.hidden = true;
  });
}
