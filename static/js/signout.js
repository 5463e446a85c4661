// SignOutGuard: "Sign out" asks first while posts or changes of this person still wait to be sent
// (pending.js, unsaved.js): signing out forgets them (session.js), and a post promised as "will
// retry" was thrown away without a word. "Sign out anyway" signs out as before; "Cancel" keeps
// them. The plain form signs out at once without JavaScript (nothing waits there). Counted: what
// waits on this page, the posts and changes this tab keeps for other rooms' pages, and what the
// other open tabs of this browser have for the same person (each tab keeps its own, in its
// sessionStorage: a sign-out in one tab signs every tab out and throws theirs away too).
import { t, tn } from './i18n.js';
import { newKey } from './ids.js';
import { changeKey, STORED as CHANGES, storageKey } from './unsaved.js';

// What still waits: shown and not refused (a hidden one already came back on the stream).
const WAITING = '[data-pending] li:not([hidden]):not([data-state=refused]), '
  + '[data-pending-change]:not([hidden]):not([data-state=refused])';

// Posts and changes kept in this tab for another room's page (pending.js keeps posts per form,
// unsaved.js changes per room page, and each sends them when that page is open again): signing
// out here throws them away too.
const STORED = 'ripple-pending:';

// The tabs ask each other over this channel. Each tab says hello when it loads (and answers
// another's hello) and bye when it goes, so a tab knows which others are open: at sign-out it
// asks them and waits until every one answered (a busy background tab answers late, and a fixed
// 300 ms left its posts out and threw them away), or ASK_MS passed (a tab frozen in the
// background, or closed without a bye, is not counted). With no other tab it does not wait.
const CHANNEL = 'ripple-waiting';
const ASK_MS = 1500;
const tab = newKey();

// Who is signed in, as the page says it (undefined: the page does not say; everything counts).
const signedIn = () => document.querySelector('[data-me]')?.dataset.me
  ?? document.querySelector('[data-whoami]')?.textContent;

/**
 * What waits in this tab for ``writer``: one key per post (its idempotency key) or change
 * (unsaved.js changeKey), the same in every tab, so a duplicated tab's copies count once.
 */
function waitingInTab(writer) {
  const keys = new Set();
  const me = signedIn();
  if (writer === undefined || me === writer) {
    for (const el of document.querySelectorAll(WAITING)) {
      keys.add(el.dataset.changeKey ? 'change ' + el.dataset.changeKey : 'post ' + el.dataset.key);
    }
  }
  const here = new Set([...document.querySelectorAll('form[data-form]')]
    .map((f) => STORED + new URL(f.action, location.href).pathname));
  const room = document.querySelector('main.room[data-history-url]');
  if (room) here.add(storageKey(room));
  try {
    for (let i = 0; i < sessionStorage.length; i += 1) {
      const key = sessionStorage.key(i);
      if (!(key?.startsWith(STORED) || key?.startsWith(CHANGES)) || here.has(key)) continue;
      try {
        const kept = JSON.parse(sessionStorage.getItem(key));
        // Another writer's (signed out without JavaScript) are dropped, never sent: not counted.
        if (writer !== undefined && kept?.writer !== writer) continue;
        for (const post of kept?.posts || []) keys.add('post ' + post.key);
        for (const change of kept?.changes || []) keys.add('change ' + changeKey(change.id, change));
      } catch { /* not one of ours */ }
    }
  } catch { /* storage off: nothing kept */ }
  return keys;
}

// Every tab of this origin that loaded this module answers another's question with its keys.
let channel = null;
const others = new Set();  // the other tabs open now (their ids)
const asks = new Map();    // this tab's question (its id) -> its answers' handler
function knownTabsChanged() {
  // How many other tabs this tab knows of, on the page (the tests wait for it).
  document.documentElement.dataset.otherTabs = String(others.size);
}
function answerOtherTabs() {
  if (channel || !window.BroadcastChannel) return;
  channel = new BroadcastChannel(CHANNEL);
  channel.onmessage = (e) => {
    const { type, from } = e.data || {};
    if (!from || from === tab) return;
    if (type === 'bye') others.delete(from);
    else others.add(from);
    knownTabsChanged();
    if (type === 'hello') channel.postMessage({ type: 'here', from: tab, to: from });
    else if (type === 'ask') {
      channel.postMessage({ type: 'answer', id: e.data.id, from: tab, keys: [...waitingInTab(e.data.writer)] });
    }
    for (const onAnswer of asks.values()) onAnswer(e.data);  // an answer, or a bye of one asked
  };
  channel.postMessage({ type: 'hello', from: tab });
  knownTabsChanged();
  addEventListener('pagehide', () => channel.postMessage({ type: 'bye', from: tab }));
  // Back from the back/forward cache: open again, and the tabs open now answer the hello.
  addEventListener('pageshow', (e) => {
    if (!e.persisted) return;
    others.clear();
    knownTabsChanged();
    channel.postMessage({ type: 'hello', from: tab });
  });
}

/**
 * What the other tabs have waiting for ``writer`` (a Set of keys), once every tab known to be
 * open answered (or went), or ASK_MS passed.
 */
function askOtherTabs(writer) {
  if (!channel || !others.size) return Promise.resolve(new Set());
  return new Promise((resolve) => {
    const id = newKey();
    const keys = new Set();
    const waiting = new Set(others);
    const finish = () => { clearTimeout(timer); asks.delete(id); resolve(keys); };
    const timer = setTimeout(finish, ASK_MS);
    asks.set(id, (message) => {
      if (message.type === 'answer' && message.id === id) {
        for (const key of message.keys) keys.add(key);
        waiting.delete(message.from);
      } else if (message.type === 'bye') waiting.delete(message.from);
      if (!waiting.size) finish();
    });
    channel.postMessage({ type: 'ask', id, writer, from: tab });
  });
}

// The page's edits, deletions and reactions still waiting that the tab could not keep (storage
// off or full: unsaved.js marks them data-unkept); the rest, as posts, survive a reload.
const CHANGES_WAITING = '[data-pending-change][data-unkept]:not([hidden]):not([data-state=refused])';
let leaving = false;  // "Sign out anyway" was pressed: asked once is enough

/** A reload or leaving the page would forget the changes still waiting: the browser asks first. */
export function LeaveGuard() {
  addEventListener('beforeunload', (e) => {
    if (leaving || !document.querySelector(CHANGES_WAITING)) return;
    e.preventDefault();
    e.returnValue = '';  // older browsers ask only when this is set
  });
}

export function SignOutGuard(form) {
  answerOtherTabs();
  if (!form) return;
  let box = null;
  let asking = false;
  form.addEventListener('submit', async (e) => {
    if (leaving) return;
    const writer = signedIn();
    const here = waitingInTab(writer);
    if (!asking && !here.size && !others.size) return;  // nothing waits, no other tab to ask: signed out at once
    e.preventDefault();  // the other tabs answer first
    if (asking) return;
    asking = true;
    const there = await askOtherTabs(writer);  // a duplicated tab's copies count once
    asking = false;
    const elsewhere = [...there].filter((key) => !here.has(key)).length;
    const n = here.size + elsewhere;
    if (!n) { form.submit(); return; }
    box?.remove();
    box = document.createElement('p');
    box.className = 'notice signout-warning';
    box.setAttribute('role', 'alert');
    box.dataset.signoutWarning = '';
    const anyway = document.createElement('button');
    anyway.type = 'button';
    anyway.className = 'danger';
    anyway.textContent = t('Sign out anyway');
    anyway.addEventListener('click', () => { leaving = true; form.submit(); });  // no second question
    const cancel = document.createElement('button');
    cancel.type = 'button';
    cancel.textContent = t('Cancel');
    cancel.addEventListener('click', () => { box.remove(); box = null; form.querySelector('button[type=submit]')?.focus(); });
    box.append(tn(
      '{n} message or change of yours is not sent yet. Signing out stops sending it (if already on its way, it may still arrive).',
      '{n} messages or changes of yours are not sent yet. Signing out stops sending them (any already on their way may still arrive).', n), ' ');
    if (elsewhere) {
      box.append(tn('{n} of them is in another tab of this browser.',
        '{n} of them are in other tabs of this browser.', elsewhere), ' ');
    }
    box.append(anyway, ' ', cancel);
    form.after(box);
    cancel.focus();  // the safe choice, as "Delete message" asks
  });
}
