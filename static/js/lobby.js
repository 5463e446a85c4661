// The lobby: local times, and who is signed in kept true across this browser's tabs.
import { LeaveGuard } from './leaving.js';
import { announceSession, SessionWatch, SignedOutView } from './session.js';
import { Sidebar } from './sidebar.js';
import { SignOutGuard } from './signout.js';
import { LocalTimes } from './times.js';

const root = document.querySelector('main.lobby');
LocalTimes(document);
Sidebar(document.querySelector('[data-sidebar]'), root);
SessionWatch(root);
SignedOutView(root);
SignOutGuard(document.querySelector('form.whoami'));  // posts kept for rooms' pages
LeaveGuard();  // closing the tab would lose them
announceSession(root.dataset.me || '');  // after "Sign out" in another tab: nobody
