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
// unseen. The same goes for going to another of Ripple's pages by a link: it keeps them, but a
// page without a script (a room's settings) would not ask when closed, so it asks.
//
// It does not ask when nothing waits, after "Sign out anyway" (signing out asked already, and
// forgets them on purpose), nor when the page reloads itself (session.js, notices.js,
// mentions.js: the tab keeps them, and the reloaded page asks again). Without JavaScript nothing waits in the tab.
import { signedIn, waitingInTab } from './waiting.js';

let quietly = false;

/** The page leaves on purpose (signed out after asking, or reloading itself): no question. */
export function leaveQuietly() {
  quietly = true;
}

/** Ask before the tab is closed or leaves while something of this person waits to be sent. */
export function LeaveGuard() {
  addEventListener('beforeunload', (e) => {
    if (quietly || !waitingInTab(signedIn()).size) return;
    e.preventDefault();
    e.returnValue = '';  // older browsers ask only when this is set
  });
  // Back from the back/forward cache: the page is open again, and leaving it asks again.
  addEventListener('pageshow', (e) => { if (e.persisted) quietly = false; });
}
