// Reading: tell the server the newest message visible while this page has the focus (its read
// position, synced to the person's other devices), and alert on mentions of the person.
import { compareIds } from './ids.js';
import { sameName } from './messages.js';

const SEND_DELAY_MS = 400;  // a scroll through many messages reports once, where it stops
const EXCERPT = 140;

/**
 * Report the newest message of ``log`` that is on screen while the page is visible and focused:
 * PUT root.dataset.readUrl {"id"} (forward only: the server ignores an older one).
 */
export function ReadTracker(log, root) {
  const url = root.dataset.readUrl;
  if (!log || !url) return;
  const list = log.querySelector('[data-messages]');
  let reported = root.dataset.readId || '';
  let timer = null;
  const visible = new Set();

  const seen = (entry) => entry.isIntersecting && (entry.intersectionRatio >= 0.5
    || entry.intersectionRect.height >= (entry.rootBounds ? entry.rootBounds.height / 2 : 0));
  const watcher = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (seen(entry)) visible.add(entry.target); else visible.delete(entry.target);
    }
    consider();
  }, { root: log, threshold: [0, 0.5, 1] });
  const watch = (li) => { if (li.matches && li.matches('li.msg')) watcher.observe(li); };
  list.querySelectorAll('li.msg').forEach(watch);
  new MutationObserver((changes) => {
    for (const change of changes) {
      change.addedNodes.forEach(watch);
      change.removedNodes.forEach((li) => { visible.delete(li); });
    }
  }).observe(list, { childList: true });

  function newest() {
    let best = '';
    for (const li of visible) {
      if (li.isConnected && li.dataset.id && (!best || compareIds(li.dataset.id, best) > 0)) best = li.dataset.id;
    }
    return best;
  }

  function consider() {
    if (document.hidden || !document.hasFocus()) return;
    const id = newest();
    if (!id || (reported && compareIds(id, reported) <= 0)) return;
    clearTimeout(timer);
    timer = setTimeout(send, SEND_DELAY_MS);
  }

  async function send() {
    const id = newest();
    if (!id || (reported && compareIds(id, reported) <= 0) || document.hidden) return;
    const token = document.querySelector('input[name=csrf_token]');
    try {
      const response = await fetch(url, {
        method: 'PUT', body: JSON.stringify({ id }),
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': token ? token.value : '' },
      });
      if (response.ok && (!reported || compareIds(id, reported) > 0)) reported = id;
    } catch {
      // offline: the next change on screen tries again
    }
  }

  window.addEventListener('focus', consider);
  document.addEventListener('visibilitychange', consider);
  root.addEventListener('chat:read', (e) => {  // read on another device
    if (e.detail.room === root.dataset.room && (!reported || compareIds(e.detail.read_id, reported) > 0)) {
      reported = e.detail.read_id;
    }
  });
}

/**
 * A mention of the person while this tab is hidden: a system notification (room, author, an
 * excerpt), if they allowed notifications (asked only on a click: sidebar.js).
 */
export function MentionAlerts(root) {
  const me = () => root.dataset.me || '';
  const mine = (names) => (names || []).some((name) => sameName(name, me()));
  function notify(room, user, text, id) {
    if (!document.hidden || !('Notification' in window) || Notification.permission !== 'granted') return;
    const note = new Notification(`#${room} · ${user}`, { body: (text || '').slice(0, EXCERPT), tag: `${room}/${id}` });
    note.onclick = () => { window.focus(); if (room !== root.dataset.room) location.href = `/rooms/${encodeURIComponent(room)}`; };
  }
  root.addEventListener('chat:message', (e) => {
    const { message, live } = e.detail;
    if (live && mine(message.mentions) && !sameName(message.user, me())) {
      notify(message.room, message.user, message.text, message.id);
    }
  });
  root.addEventListener('chat:activity', (e) => {
    const { room, user, mentions, text, id } = e.detail;
    if (mine(mentions)) notify(room, user, text, id);
  });
  root.addEventListener('chat:mentions', (e) => {  // an edit in another room that now does
    const { room, user, added, text, id, live } = e.detail;
    if (live && mine(added) && !sameName(user, me())) notify(room, user, text, id);
  });
  root.addEventListener('chat:edit-mentions-me', (e) => {  // an edit that now mentions the person
    const { room, user, text, id } = e.detail;
    notify(room, user, text, id);
  });
}
