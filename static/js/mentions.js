// The Mentions page: times in the reader's own time zone.
import { LeaveGuard, leaveQuietly } from './leaving.js';
import { SignOutGuard } from './signout.js';
import { LocalTimes } from './times.js';

LocalTimes(document);
SignOutGuard(document.querySelector('form.whoami'));  // posts kept for rooms' pages
LeaveGuard();  // closing the tab would lose them

// Back or Forward may show this page from the browser's memory as it was: it lists one
// person's mentions (private rooms' excerpts too), so it is asked for again, for whoever is
// signed in now (signed out: the lobby).
window.addEventListener('pageshow', (e) => { if (e.persisted) { leaveQuietly(); location.reload(); } });
