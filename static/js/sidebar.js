// Sidebar: the person's rooms with unread counts and a mention marker, the most recently active
// first, kept live by the stream: event: unread (counts from the server: at connect, and when
// the person reads on another device), event: activity (a new message in another room: counted
// here when it is after the position), event: read (the position moved elsewhere), event: deleted
// (a message of another room was deleted: an unread one stops counting, asked of the server).
// The server renders the same list (templates/_sidebar.html); without JavaScript it is that.
import { t } from './i18n.js';
import { compareIds } from './ids.js';
import { sameName } from './messages.js';

const PHONE = '(max-width: 48rem)';
const STRINGS = {
  hide: (room) => t('Hide #{room} from this list', { room }),
  hideShort: (room) => t('Hide #{room}', { room }),
  unsent: (n) => t('{n} unsent', { n: String(n) }),
  unsentTitle: (room) => t('Not sent yet: open #{room} to send.', { room }),
};

// Posts and changes this tab keeps for a room's page (pending.js per composer, unsaved.js per
// log: both under the room's /rooms/<room>/messages) are sent only when that page is open
// again, as a waiting line there; elsewhere the room's entry says so, as Slack marks a channel
// with a message that failed to send.
const KEPT = /^ripple-(?:pending|changes):\/rooms\/([^/]+)\/messages$/;

/** Room -> how many posts and changes this tab keeps for ``writer`` ({} with storage off). */
export function keptPerRoom(writer) {
  const counts = new Map();
  try {
    for (let i = 0; i < sessionStorage.length; i += 1) {
      const match = KEPT.exec(sessionStorage.key(i) || '');
      if (!match) continue;
      try {
        const kept = JSON.parse(sessionStorage.getItem(match[0]));
        if (!writer || kept?.writer !== writer) continue;  // another writer's are dropped, never sent
        const n = (kept.posts || []).length + (kept.changes || []).length;
        const room = decodeURIComponent(match[1]);
        if (n) counts.set(room, (counts.get(room) || 0) + n);
      } catch { /* not one of ours */ }
    }
  } catch { /* storage off: nothing kept */ }
  return counts;
}

// A deletion's recount waits 0.5–2.5 s: a burst is asked for once, and a big room's pages spread.
const REFRESH_MIN_MS = 500;
const REFRESH_SPREAD_MS = 2000;

export const badge = (n) => (n > 99 ? '99+' : n ? String(n) : '');

/**
 * Mount the sidebar on its <details data-sidebar>; ``root`` is where the stream's chat:* events
 * bubble; ``current`` the room this page shows ('' in the lobby).
 */
export function Sidebar(el, root, current = '') {
  if (!el) return;
  const list = el.querySelector('[data-sidebar-rooms]');
  const total = el.querySelector('[data-total]');
  const empty = el.querySelector('[data-sidebar-empty]');
  const me = () => root.dataset.me || '';
  if (window.matchMedia(PHONE).matches) el.open = false;  // folded on a phone: the log first

  const rooms = new Map();  // room -> { li, unread, mentions, lastId, readId, lastActivity }
  for (const li of list.querySelectorAll('li[data-room]')) {
    rooms.set(li.dataset.room, {
      li, unread: Number(li.dataset.unread), mentions: Number(li.dataset.mentions),
      lastId: li.dataset.lastId, readId: li.dataset.readId, lastActivity: Number(li.dataset.lastActivity),
    });
  }

  // Kept in this tab for other rooms' pages: read once (this page neither sends nor adds them).
  const kept = keptPerRoom(me());
  kept.delete(current);  // this page's own show in its log

  // Folded (a phone's first view) the summary says what the rooms' own marks say: a mention
  // waits, and how many posts this tab keeps unsent.
  const foldedMention = Object.assign(document.createElement('span'), { className: 'mention', textContent: '@' });
  foldedMention.dataset.totalMention = '';
  const foldedUnsent = Object.assign(document.createElement('span'), { className: 'unsent' });
  foldedUnsent.dataset.totalUnsent = '';
  const keptInAll = [...kept.values()].reduce((sum, n) => sum + n, 0);
  foldedUnsent.textContent = STRINGS.unsent(keptInAll);
  foldedUnsent.hidden = !keptInAll;
  total.after(' ', foldedMention, ' ', foldedUnsent);

  function markKept(room, li) {
    const n = kept.get(room);
    if (!n || li.querySelector('[data-unsent]')) return;
    const mark = document.createElement('span');
    mark.className = 'unsent';
    mark.dataset.unsent = '';
    mark.textContent = STRINGS.unsent(n);
    mark.title = STRINGS.unsentTitle(room);
    li.querySelector('a')?.after(' ', mark);
  }

  function render(room) {
    const entry = rooms.get(room);
    markKept(room, entry.li);
    const shown = room === current ? { unread: 0, mentions: 0 } : entry;  // being read here
    entry.li.dataset.unread = shown.unread;
    entry.li.dataset.mentions = shown.mentions;
    entry.li.classList.toggle('unread', shown.unread > 0);
    const count = entry.li.querySelector('[data-badge]');
    count.textContent = badge(shown.unread);
    count.hidden = !shown.unread;
    entry.li.querySelector('[data-mention]').hidden = !shown.mentions;
  }

  function order() {
    const sorted = Array.from(rooms.entries()).sort(([a, x], [b, y]) => y.lastActivity - x.lastActivity || (a < b ? -1 : 1));
    sorted.forEach(([, entry], i) => {
      if (list.children[i] !== entry.li) list.insertBefore(entry.li, list.children[i] || null);
    });
    let sum = 0;
    let mentions = 0;
    for (const [room, entry] of rooms) {
      if (room !== current) {
        sum += entry.unread;
        mentions += entry.mentions;
      }
    }
    total.textContent = badge(sum);
    total.hidden = !sum;
    foldedMention.hidden = !mentions;
    empty.hidden = rooms.size > 0;
  }

  // A room that joined the sidebar (on any device): a new item like the server's.
  function create(room) {
    const li = document.createElement('li');
    li.dataset.room = room;
    const link = document.createElement('a');
    link.href = `/rooms/${encodeURIComponent(room)}`;
    link.dir = 'auto';
    link.textContent = `#${room}`;
    const mention = document.createElement('span');
    mention.className = 'mention';
    mention.dataset.mention = '';
    mention.textContent = '@';
    const count = document.createElement('span');
    count.className = 'badge';
    count.dataset.badge = '';
    li.append(link, ' ', mention, ' ', count);
    const token = document.querySelector('input[name=csrf_token]');
    if (token) {  // the same plain form as the server's
      const form = document.createElement('form');
      form.method = 'post';
      form.className = 'hide-room';
      form.action = list.dataset.formUrl.replace('ROOM', encodeURIComponent(room));
      for (const [name, value] of [['csrf_token', token.value], ['action', 'hide'], ['next', location.pathname]]) {
        const input = document.createElement('input');
        input.type = 'hidden';
        input.name = name;
        input.value = value;
        form.append(input);
      }
      const button = document.createElement('button');
      button.type = 'submit';
      button.className = 'link';
      button.textContent = '×';
      button.title = STRINGS.hide(room);
      button.setAttribute('aria-label', STRINGS.hideShort(room));
      form.append(button);
      li.append(form);
    }
    if (room === current) { li.classList.add('current'); link.setAttribute('aria-current', 'page'); }
    list.append(li);
    return li;
  }

  root.addEventListener('chat:unread', (e) => {
    const { rooms: entries = [], hidden = [], complete = false } = e.detail;
    if (complete) {  // every room: forget those gone from the sidebar meanwhile
      const keep = new Set(entries.map((x) => x.room));
      for (const [room, entry] of rooms) if (!keep.has(room)) { entry.li.remove(); rooms.delete(room); }
    }
    for (const room of hidden) {
      const entry = rooms.get(room);
      if (entry) { entry.li.remove(); rooms.delete(room); }
    }
    for (const x of entries) {
      const entry = rooms.get(x.room) || { li: create(x.room) };
      // Activity newer than this count (it raced the server's answer) stays counted.
      if (entry.lastId && x.last_id && compareIds(entry.lastId, x.last_id) > 0 && x.read_id === entry.readId) continue;
      Object.assign(entry, { unread: x.unread, mentions: x.mentions, lastId: x.last_id || '',
        readId: x.read_id || '', lastActivity: x.last_activity });
      rooms.set(x.room, entry);
      render(x.room);
    }
    order();
  });

  root.addEventListener('chat:read', (e) => {
    const entry = rooms.get(e.detail.room);
    if (entry && (!entry.readId || compareIds(e.detail.read_id, entry.readId) > 0)) entry.readId = e.detail.read_id;
  });

  root.addEventListener('chat:activity', (e) => {
    const { room, id, mentions = [] } = e.detail;
    const entry = rooms.get(room);
    if (!entry || (entry.lastId && compareIds(id, entry.lastId) <= 0)) return;  // seen, or not ours
    entry.lastId = id;
    entry.lastActivity = Number(id.split('-')[0]);
    if (!entry.readId || compareIds(id, entry.readId) > 0) {
      entry.unread += 1;
      if (mentions.some((name) => sameName(name, me()))) entry.mentions += 1;
    }
    render(room);
    order();
  });

  // A deleted message stops counting as unread. Which ones this page counted is not known here
  // (a deletion just before the stream's first counts is in them already), so the counts are
  // asked again: once for a burst (a moderator clearing spam), after a random wait so that not
  // every page of a big room asks at the same instant.
  let refresh = null;
  function refreshCounts() {
    const url = root.dataset.roomsUrl;
    if (refresh || !url) return;
    refresh = setTimeout(async () => {
      try {
        const response = await fetch(url, { headers: { Accept: 'application/json' } });
        if (response.ok) {
          root.dispatchEvent(new CustomEvent('chat:unread', { detail: { rooms: await response.json() } }));
        }
      } catch (_) {
        // offline: the stream's next connect brings the counts
      } finally {
        refresh = null;
      }
    }, REFRESH_MIN_MS + Math.random() * REFRESH_SPREAD_MS);
  }

  // The entry of another room of the sidebar in which message ``id`` counts as unread, or null.
  function unreadIn(room, id) {
    const entry = rooms.get(room);
    if (!entry || room === current || (entry.readId && compareIds(id, entry.readId) <= 0)) return null;
    return entry;
  }

  // An edit or a deletion changed whom a message of another room mentions: an unread one's
  // mention counts for the person or stops counting.
  root.addEventListener('chat:mentions', (e) => {
    const { room, id, added = [], removed = [] } = e.detail;
    const entry = unreadIn(room, id);
    if (!entry) return;
    if (added.some((name) => sameName(name, me()))) entry.mentions += 1;
    else if (removed.some((name) => sameName(name, me()))) entry.mentions = Math.max(0, entry.mentions - 1);
    else return;
    render(room);
    refreshCounts();  // at once above; then the server's count (the change may be in the first counts already)
  });

  // This room was deleted (the stream's room-deleted, or its refused reconnect): it has left
  // the sidebar on the server (reading.py forget_room), and leaves this list as a hidden one does.
  root.addEventListener('chat:removed', (e) => {
    if (e.detail.reason === 'deleted') {
      root.dispatchEvent(new CustomEvent('chat:unread', { detail: { rooms: [], hidden: [e.detail.room] } }));
    }
  });

  root.addEventListener('chat:deleted', (e) => {
    if (unreadIn(e.detail.room, e.detail.id)) refreshCounts();
  });

  // The current room's own messages move its activity too (its stream carries them whole).
  root.addEventListener('chat:message', (e) => {
    const entry = rooms.get(current);
    const { id } = e.detail.message;
    if (!entry || (entry.lastId && compareIds(id, entry.lastId) <= 0)) return;
    entry.lastId = id;
    entry.lastActivity = Number(id.split('-')[0]);
    order();
  });

  NotifyButton(el.querySelector('[data-notify]'));
  for (const [room, entry] of rooms) markKept(room, entry.li);
  order();
}

// "Notify me of mentions": the browser asks for the permission only after this click.
function NotifyButton(button) {
  if (!button || !('Notification' in window) || Notification.permission !== 'default') return;
  button.hidden = false;
  button.addEventListener('click', async () => {
    await Notification.requestPermission();
    button.hidden = true;
  });
}
