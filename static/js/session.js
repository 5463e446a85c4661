// Who is signed in, kept true across the tabs of this browser (they share one session cookie).
//
// Every page tells the other tabs who it was rendered for, as it loads; a page showing a name
// that hears "nobody" is signed in now (the lobby after "Sign out" in another tab) checks with the
// server and turns into the signed-out page without a reload; a page that hears of another
// name (signed in in another tab) checks and reloads as that name. A stream's own
// 'signed-out' event (the server ends a signed-out session's streams) does the same.
import { t } from './i18n.js';
import { leaveQuietly } from './leaving.js';

const CHANNEL = 'ripple-session';
const SIGNED_OUT = t('You signed out in another tab or window. Sign in again to post.');

/**
 * Tell the other tabs who this page was rendered for ('' for nobody). A page for nobody (the
 * lobby after "Sign out" in this tab) also forgets what the tab kept for its writer.
 */
export function announceSession(me) {
  if (!me) forgetWriter();
  if (!window.BroadcastChannel) return;
  const channel = new BroadcastChannel(CHANNEL);
  channel.postMessage({ type: 'who', me });
  channel.close();
}

/** Give every form of the page the session's CSRF token ``token`` (from GET /session). */
export function useToken(token) {
  for (const field of document.querySelectorAll('input[name=csrf_token]')) field.value = token;
}

/** A page that was out of date (signed in or out in another tab): take a fresh CSRF token from
 * the session's address `url`. Resolves to whether there was one. */
export async function refreshToken(url) {
  const response = await fetch(url, { headers: { Accept: 'application/json' } });
  const body = await response.json();
  if (!body.csrf_token) return false;
  useToken(body.csrf_token);
  return true;
}

// The session's state now: {name, csrfToken} (name '' when nobody is signed in).
async function whoAmI(url) {
  const response = await fetch(url, { headers: { Accept: 'application/json' } });
  // Only a 401 means nobody is signed in; an outage (503) or a proxy's error page says nothing.
  if (response.status !== 401 && !response.ok) throw new Error(`session check: ${response.status}`);
  const body = await response.json();
  return { name: response.status === 401 ? '' : body.name, csrfToken: body.csrf_token };
}

/**
 * Watch for this session ending elsewhere: a peer tab's announcement or chat:session-ended (a
 * stream's 'signed-out' event); ask the server who is signed in now, then dispatch
 * chat:signed-out (nobody) or reload (someone else, or a new session: this page's name and
 * form token are stale; its posts would go out under that session).
 */
export function SessionWatch(root) {
  const url = root.dataset.sessionUrl;
  // told: who the news says is signed in now ('' when a stream said this session ended).
  async function recheck(ended, told) {
    const me = root.dataset.me;
    let now = { name: told };
    try { now = await whoAmI(url); } catch (err) { /* unreachable: go by what we were told */ }
    if (me !== root.dataset.me) return;  // shown meanwhile
    if (!now.name) {
      if (me) root.dispatchEvent(new CustomEvent('chat:signed-out', { detail: {}, bubbles: true }));
    } else if (now.name !== me || ended) {
      // Signed in again under the same name: the draft comes back after the reload; someone
      // else: what the tab kept for this writer goes (it was never theirs to find).
      if (now.name === me) keepDraft(root, root.querySelector('[data-form] textarea[name=text]')?.value, me);
      else forgetWriter();
      leaveQuietly();  // the tab keeps what waits (or forgot it, not theirs): nothing to ask
      location.reload();  // signed in (again, or as someone else) in another tab: show that
    } else if (now.csrfToken) {
      // The same name, perhaps a new session of it (a page kept by Back/Forward across a sign-in
      // again): its forms take the session's token now, or a reaction or an edit would be refused.
      useToken(now.csrfToken);
    }
  }
  if (window.BroadcastChannel) {
    const channel = new BroadcastChannel(CHANNEL);
    channel.onmessage = (e) => {
      if (e.data.type === 'who' && e.data.me !== root.dataset.me) recheck(false, e.data.me);
    };
  }
  root.addEventListener('chat:session-ended', () => recheck(true, ''));
  // Back or Forward may show this page from the browser's memory as it was (Safari, Firefox):
  // signed out meanwhile, it must not show the person's name, messages or a private room.
  window.addEventListener('pageshow', (e) => {
    if (e.persisted && root.dataset.me) recheck(false, root.dataset.me);
  });
}

/**
 * Show the signed-out page: no name in the header, and the sign-in form (from the page's
 * <template data-signin>) where the composer was (a room) or at the top (the lobby).
 */
export function SignedOutView(root) {
  root.addEventListener('chat:signed-out', () => {
    const me = root.dataset.me;
    if (!me) return;
    root.dataset.me = '';
    // Nothing of the person stays on a shared screen: name, direct messages, their list, their
    // rooms, the message menus (a half-written edit in one), "(you)" among the people online;
    // in the lobby, its private rooms, unread counts and the form to create a room.
    for (const mine of document.querySelectorAll(
      'form.whoami, li.msg.direct, [data-inbox], #inbox-heading, [data-inbox-empty], [data-sidebar], ' +
      '[data-actions], li[data-private], [data-mine], [data-create]')) mine.remove();
    for (const li of document.querySelectorAll('[data-online] li.me')) {
      li.classList.remove('me');
      delete li.dataset.you;
    }
    document.querySelector('a.manage')?.remove();
    if ('private' in root.dataset) hidePrivateRoom(root);
    const template = root.querySelector('template[data-signin]');
    if (!template) return;
    const box = document.createElement('div');
    const note = document.createElement('p');
    note.className = 'notice';
    note.setAttribute('role', 'status');
    note.textContent = SIGNED_OUT;
    box.append(note, template.content.cloneNode(true));
    freshToken(box.querySelector('form'), root.dataset.sessionUrl);
    const form = root.querySelector('[data-form]');
    forgetWriter();  // signed out: their draft, pending posts and changes go from this tab too
    if (form) {
      box.className = 'composer';
      form.replaceWith(box);
    } else {
      template.replaceWith(box);
    }
  });
}

// A members-only room's page keeps nothing of it once nobody is signed in: its messages,
// topic and (people.js) who is online go, and a sentence says why (a reload answers 404 the same).
function hidePrivateRoom(root) {
  for (const gone of document.querySelectorAll(
    '[data-messages] > li, [data-topic], [data-typing], .older-bar, [data-unread-bar], [data-jump], ' +
    '[data-empty-log]')) gone.remove();  // who is online: people.js empties its own list
  const note = document.createElement('p');
  note.className = 'notice';
  note.dataset.privateHidden = '';
  note.textContent = t('#{room} is private: sign in again to read it.', { room: root.dataset.room });
  root.querySelector('[data-messages]')?.before(note);
}

// The form's CSRF token died with the old session, and the tabs' requests around a sign-out
// may replace the session cookie more than once: take a token for the cookie as it is when
// the person presses the button.
function freshToken(form, url) {
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const now = await whoAmI(url);
      if (now.name) { leaveQuietly(); location.reload(); return; }  // signed in meanwhile, in another tab
      form.querySelector('input[name=csrf_token]').value = now.csrfToken;
    } catch (err) { /* send it as it is: the server answers with a sentence */ }
    form.submit();  // the plain form from here: 303 back to this page, signed in
  });
}

// The composer's draft waits in this tab (a reload, the language switch) for its writer only,
// and goes when they sign out: on a shared computer the next person must not find it, in the
// page or in the tab's storage.
const draftKey = (root) => `ripple-draft:${root.dataset.room}`;

/**
 * Forget what this tab keeps for the person signed in: drafts, pending posts (pending.js) and
 * waiting edits, deletions and reactions (unsaved.js).
 */
export function forgetWriter() {
  try {
    for (const key of Object.keys(sessionStorage)) {
      if (/^ripple-(draft|pending|changes):/.test(key)) sessionStorage.removeItem(key);
    }
  } catch (err) { /* storage off: nothing kept */ }
}

function keepDraft(root, text, writer) {
  try {
    if (text && text.trim()) sessionStorage.setItem(draftKey(root), JSON.stringify({ writer, text }));
  } catch (err) { /* storage off */ }
}

/**
 * Put a draft kept in this tab back into the composer if its writer is signed in again, and keep
 * what is typed there as it is typed: a reload, the language switch (a form post) and a phone
 * discarding a background tab all lost it. Sent (the composer emptied), it is dropped.
 */
export function restoreDraft(root, form) {
  const box = form.querySelector('textarea[name=text]');
  try {
    const kept = JSON.parse(sessionStorage.getItem(draftKey(root)) || 'null');
    sessionStorage.removeItem(draftKey(root));
    if (kept && kept.writer && kept.writer === root.dataset.me && box && !box.value) box.value = kept.text;
  } catch (err) { /* storage off, or an older page's plain-text draft: dropped */ }
  if (!box) return;
  const save = () => {
    const me = root.dataset.me;
    if (!me) return;  // signed out: nothing is kept for nobody
    try {
      if (box.value.trim()) keepDraft(root, box.value, me);
      else sessionStorage.removeItem(draftKey(root));
    } catch (err) { /* storage off */ }
  };
  box.addEventListener('input', save);
  form.addEventListener('chat:sent', save);  // sent, or waiting in the log (pending.js): what is left
  root.addEventListener('chat:removed', (e) => {
    // The room is gone: one made later under its name is another room (posting makes a public
    // one), and a draft written for this one must not wait there, one Enter away.
    if (e.detail.event !== 'room-deleted') return;
    box.value = '';  // hidden, but a later sign-out (SignedOutView) would keep it again
    try { sessionStorage.removeItem(draftKey(root)); } catch (err) { /* storage off */ }
  });
  save();
}
