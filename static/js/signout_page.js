// The account and admin pages: nothing live on them, but their "Sign out" asks first too while
// this tab (or another of this browser) keeps posts or changes waiting for a room's page
// (signout.js). Without JavaScript the plain form signs out at once, as before.
import { LeaveGuard } from './leaving.js';
import { SignOutGuard } from './signout.js';

SignOutGuard(document.querySelector('form.whoami'));
LeaveGuard();  // closing the tab would lose what it keeps for rooms' pages
