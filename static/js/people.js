// People: the online list, kept current by presence events. Signed in, each other name links to
// a conversation with that person (a plain link: the same with JavaScript off); one's own is
// marked, not linked. Guests (no account, no sign-in from another service) carry a "guest" tag.
// A big room shows at most data-online-max names (one's own among them) and "and N more"; its
// presence events are changes to apply (online.js).
import { t, tn } from './i18n.js';
import { nextOnline } from './online.js';

export function People(el, root) {
  const list = el.querySelector('[data-online]');
  const count = el.querySelector('[data-online-count]');
  const STRINGS = {
    title: (name) => t('Send {name} a direct message', { name }),
    you: t('(you)'),
    guest: t('guest'),
    guestTitle: t('A guest: this name has no account'),
    more: (n) => tn('and {n} more', 'and {n} more', n),
  };
  const max = Number(list.dataset.onlineMax) || 200;
  let known = null;  // {online, guests, count}: what the page and the stream said

  function render(state) {
    known = state;
    const me = root.dataset.me;  // '' once signed out: no direct messages then
    const guest = new Set(state.guests || []);
    let names = state.online;
    if (names.length > max) {  // the first ones, and one's own name
      names = names.slice(0, max);
      if (me && state.online.includes(me) && !names.includes(me)) names = [...names.slice(0, -1), me].sort();
    }
    const items = names.map((name) => {
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
    });
    const total = Math.max(state.count ?? names.length, names.length);
    if (total > names.length) {
      const more = document.createElement('li');
      more.className = 'more';
      more.dataset.more = '';
      more.textContent = STRINGS.more(total - names.length);
      items.push(more);
    }
    list.replaceChildren(...items);
    count.textContent = total;
  }

  // What the page shows: the names, which of them are guests, and how many are online in all.
  const shown = () => ({
    online: Array.from(list.querySelectorAll('li[data-name]'), (li) => li.dataset.name),
    guests: Array.from(list.querySelectorAll('li[data-name][data-kind="guest"]'), (li) => li.dataset.name),
    count: Number(count.textContent) || 0,
  });

  root.addEventListener('chat:presence', (e) => render(nextOnline(known, e.detail)));
  root.addEventListener('chat:signed-out', () => {  // names as links no more; none at all in a private room
    if ('private' in root.dataset) known = { online: [], guests: [], count: 0 };
    render(known);
  });
  render(shown());
}
