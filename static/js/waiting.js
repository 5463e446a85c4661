// What this tab still has waiting to be sent for the person signed in: the posts and changes its
// page shows (pending.js, unsaved.js) and those it keeps in its sessionStorage for other rooms'
// pages (each sent when that page is open again). Sign out asks about these, in every tab
// (signout.js); closing the tab would lose them (leaving.js).
import { changeKey, STORED as CHANGES, storageKey } from './unsaved.js';

// What still waits: shown and not refused (a hidden one already came back on the stream).
const WAITING = '[data-pending] li:not([hidden]):not([data-state=refused]), '
  + '[data-pending-change]:not([hidden]):not([data-state=refused])';

// Posts kept in this tab for a composer (pending.js keeps them per form action).
const POSTS = 'ripple-pending:';

/** Who is signed in, as the page says it (undefined: the page does not say; everything counts). */
export const signedIn = () => document.querySelector('[data-me]')?.dataset.me
  ?? document.querySelector('[data-whoami]')?.textContent;

// Where a kept post or change waits, from its storage key's path (/rooms/<room>/messages, a
// direct conversation's /users/<name>/messages): '#room' or '@name', '' when unknown.
function placeOfPath(path) {
  const found = /\/(rooms|users)\/([^/]+)\/messages$/.exec(path);
  if (!found) return '';
  try {
    return (found[1] === 'rooms' ? '#' : '@') + decodeURIComponent(found[2]);
  } catch { return ''; }
}

// Where one shown on this page waits: the page's conversation, or its room.
function placeOf(el) {
  const conversation = el.closest('[data-conversation]');
  if (conversation) return '@' + conversation.dataset.with;
  const room = document.querySelector('main.room')?.dataset.room;
  return room ? '#' + room : '';
}

/**
 * What waits in this tab for ``writer``: a Map of one key per post (its idempotency key) or
 * change (unsaved.js changeKey), the same in every tab, so a duplicated tab's copies count once,
 * to where it waits ('#room', '@name' for a direct conversation, '' unknown). ``withdrawing``
 * false leaves out those being withdrawn (retries.withdraw): signing out is safe for them (an
 * attempt still on its way then finds no session), and they are not "not sent yet".
 */
export function waitingInTab(writer, { withdrawing = true } = {}) {
  const found = new Map();
  const me = signedIn();
  if (writer === undefined || me === writer) {
    for (const el of document.querySelectorAll(WAITING)) {
      if (!withdrawing && 'withdrawing' in el.dataset) continue;
      found.set(el.dataset.changeKey ? 'change ' + el.dataset.changeKey : 'post ' + el.dataset.key, placeOf(el));
    }
  }
  // This page's own are counted above, as shown (a dropped one is still in storage a moment).
  const here = new Set([...document.querySelectorAll('form[data-form]')]
    .map((f) => POSTS + new URL(f.action, location.href).pathname));
  const room = document.querySelector('main.room[data-history-url]');
  if (room) here.add(storageKey(room));
  try {
    for (let i = 0; i < sessionStorage.length; i += 1) {
      const key = sessionStorage.key(i);
      if (!(key?.startsWith(POSTS) || key?.startsWith(CHANGES)) || here.has(key)) continue;
      try {
        const kept = JSON.parse(sessionStorage.getItem(key));
        // Another writer's (signed out without JavaScript) are dropped, never sent: not counted.
        if (writer !== undefined && kept?.writer !== writer) continue;
        const place = placeOfPath(key.slice(key.indexOf(':') + 1));
        for (const post of kept?.posts || []) if (withdrawing || !post.withdrawing) found.set('post ' + post.key, place);
        for (const change of kept?.changes || []) {
          if (withdrawing || !change.withdrawing) found.set('change ' + changeKey(change.id, change), place);
        }
      } catch { /* not one of ours */ }
    }
  } catch { /* storage off: nothing kept */ }
  return found;
}
