// People: the online list, kept current by presence events. Signed in, each other name links to
// a conversation with that person (a plain link: the same with JavaScript off); one's own is
// marked, not linked. Guests (no account, no sign-in from another service) carry a "guest" tag.
import { t } from './i18n.js';

export function People(el, root) {
  const list = el.querySelector('[data-online]');
  const count = el.querySelector('[data-online-count]');
  const STRINGS = {
    title: (name) => t('Send {name} a direct message', { name }),
    you: t('(you)'),
    guest: t('guest'),
    guestTitle: t('A guest: this name has no account'),
  };

  function render(names, guests) {
    const me = root.dataset.me;  // '' once signed out: no direct messages then
    const guest = new Set(guests || []);
    list.replaceChildren(...names.map((name) => {
      const li = document.createElement('li');
      li.dir = 'auto';
      li.dataset.name = name;
      if (me && name === me) {
        li.className = 'me';
        li.dataset.you = STRINGS.you;  // shown after the name (style.css)
        li.textContent = name;
      } else if (me) {
        const link = document.createElement('a');
        link.href = root.dataset.conversationUrl + encodeURIComponent(name);
        link.title = STRINGS.title(name);
        link.textContent = name;
        li.append(link);
      } else {
        li.textContent = name;
      }
      if (guest.has(name)) {
        li.dataset.kind = 'guest';
        const tag = document.createElement('span');
        tag.className = 'guest';
        tag.title = STRINGS.guestTitle;
        tag.dataset.label = STRINGS.guest;  // drawn by CSS: the item's text stays the name alone
        li.append(tag);
      }
      return li;
    }));
    count.textContent = names.length;
  }

  // What the page (or the last render) shows: the names, and which of them are guests.
  const shown = () => [Array.from(list.children, (li) => li.dataset.name),
    Array.from(list.querySelectorAll('li[data-kind="guest"]'), (li) => li.dataset.name)];

  root.addEventListener('chat:presence', (e) => render(e.detail.online, e.detail.guests));
  root.addEventListener('chat:signed-out', () => render(...shown()));
  render(...shown());
}
