// SignOutGuard: "Sign out" asks first while posts or changes of this person still wait to be sent
// (pending.js, unsaved.js): signing out forgets them (session.js), and a post promised as "will
// retry" was thrown away without a word. "Sign out anyway" signs out as before; "Cancel" keeps
// them. The plain form signs out at once without JavaScript (nothing waits there). Counted: what
// waits on this page, and the posts and changes this tab keeps for other rooms' pages.
import { t, tn } from './i18n.js';
import { STORED as CHANGES, storageKey } from './unsaved.js';

// What still waits: shown and not refused (a hidden one already came back on the stream).
const WAITING = '[data-pending] li:not([hidden]):not([data-state=refused]), '
  + '[data-pending-change]:not([hidden]):not([data-state=refused])';

// Posts and changes kept in this tab for another room's page (pending.js keeps posts per form,
// unsaved.js changes per room page, and each sends them when that page is open again): signing
// out here throws them away too.
const STORED = 'ripple-pending:';

function storedElsewhere() {
  const me = document.querySelector('[data-me]')?.dataset.me;
  const here = new Set([...document.querySelectorAll('form[data-form]')]
    .map((f) => STORED + new URL(f.action, location.href).pathname));
  const room = document.querySelector('main.room[data-history-url]');
  if (room) here.add(storageKey(room));
  let n = 0;
  for (let i = 0; i < sessionStorage.length; i += 1) {
    const key = sessionStorage.key(i);
    if (!(key?.startsWith(STORED) || key?.startsWith(CHANGES)) || here.has(key)) continue;
    try {
      const kept = JSON.parse(sessionStorage.getItem(key));
      // Another writer's (signed out without JavaScript) are dropped, never sent: not counted.
      if (me !== undefined && kept?.writer !== me) continue;
      n += (kept?.posts || kept?.changes || []).length;
    } catch { /* not one of ours */ }
  }
  return n;
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
  if (!form) return;
  let box = null;
  form.addEventListener('submit', (e) => {
    const n = document.querySelectorAll(WAITING).length + storedElsewhere();
    if (!n) return;
    e.preventDefault();
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
    box.append(tn('{n} message or change of yours is not sent yet. Signing out throws it away.',
      '{n} messages or changes of yours are not sent yet. Signing out throws them away.', n), ' ', anyway, ' ', cancel);
    form.after(box);
    cancel.focus();  // the safe choice, as "Delete message" asks
  });
}
