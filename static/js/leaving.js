// LeaveGuard: closing a tab (or leaving it for another site) while it still has posts or changes
// of this person waiting (waiting.js) asks first, with the browser's own question: the tab keeps
// them in its sessionStorage, which survives a reload but goes with the tab, and they were lost
// without a word. The one beforeunload handler of every page with a script (room, lobby,
// mentions, account, admin): it also covers the changes a tab could not keep (storage off or
// full, unsaved.js data-unkept), which are among those its page shows.
//
// A reload asks too. It would not need to (storage keeps them, and the reloaded page sends them),
// but beforeunload cannot tell a reload from a close: the event carries no reason, and the
// Navigation API says nothing of the browser's own Reload button or of closing. Asking on a
// reload costs one click, and only while something waits; not asking on a close loses posts
// unseen. Going to another of Ripple's pages by one of its links or forms, in this tab, does not
// ask: the tab's storage goes along and keeps them (the sidebar marks the room "1 unsent", and
// its page sends them), and a question that reads like a loss on every move between rooms of a
// flaky network would teach people to click it away. It still asks when the page holds a change
// it could not keep (storage off or full), which such a move would lose.
//
// It does not ask when nothing waits, after "Sign out anyway" (signing out asked already, and
// forgets them on purpose), nor when the page reloads itself (session.js, notices.js,
// mentions.js: the tab keeps them, and the reloaded page asks again). Without JavaScript nothing waits in the tab.
import { signedIn, waitingInTab } from './waiting.js';

let quietly = false;
let inApp = false;  // a link or form of this site was just followed in this tab

// The page's own links and forms that leave for another of Ripple's pages in this very tab.
function sameSite(url, target) {
  return (!target || target === '_self') && new URL(url, location.href).origin === location.origin;
}

function followedInApp() {
  inApp = true;
  setTimeout(() => { inApp = false; }, 1000);  // a navigation cancelled or not started: ask again
}

// Kept in this tab's storage, all of it: no change it could not keep, and storage that works.
function allKept() {
  if (document.querySelector('[data-unkept]')) return false;
  try {
    sessionStorage.setItem('ripple-probe', '1');
    sessionStorage.removeItem('ripple-probe');
    return true;
  } catch { return false; }
}

/** The page leaves on purpose (signed out after asking, or reloading itself): no question. */
export function leaveQuietly() {
  quietly = true;
}

/** Ask before the tab is closed or leaves while something of this person waits to be sent. */
export function LeaveGuard() {
  // Bubbling listeners, after the page's own: a click or submit a script took over is not one.
  addEventListener('click', (e) => {
    const link = e.target.closest?.('a[href]');
    if (link && !e.defaultPrevented && e.button === 0 && !(e.metaKey || e.ctrlKey || e.shiftKey || e.altKey)
        && !link.hasAttribute('download') && sameSite(link.href, link.target)) followedInApp();
  });
  addEventListener('submit', (e) => {
    const form = e.target;  // its attributes: a field named "action" or "target" hides the properties
    const url = e.submitter?.getAttribute('formaction') ?? form.getAttribute('action') ?? '';
    const target = e.submitter?.getAttribute('formtarget') ?? form.getAttribute('target');
    if (!e.defaultPrevented && sameSite(url, target)) followedInApp();
  });
  addEventListener('beforeunload', (e) => {
    if (quietly || !waitingInTab(signedIn()).size || (inApp && allKept())) return;
    e.preventDefault();
    e.returnValue = '';  // older browsers ask only when this is set
  });
  // Back from the back/forward cache: the page is open again, and leaving it asks again.
  addEventListener('pageshow', (e) => { if (e.persisted) quietly = false; });
}
