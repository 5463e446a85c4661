// Who is signed in, kept true across the tabs of this browser (they share one session cookie).
//
// Every page tells the other tabs who it was rendered for, as it loads; a room page showing a
// name hears that "nobody" is signed in now (the lobby after "Leave" in another tab), checks
// with the server, and turns into the signed-out page without a reload (or reloads, when
// another name is signed in now: its posts would go out under that name). A stream's own
// 'signed-out' event (the server ends a signed-out session's streams) does the same.
const CHANNEL = 'ripple-session';
const SIGNED_OUT = 'You signed out in another tab or window. Sign in again to post.';

/** Tell the other tabs who this page was rendered for ('' for nobody). */
export function announceSession(me) {
  if (!window.BroadcastChannel) return;
  const channel = new BroadcastChannel(CHANNEL);
  channel.postMessage({ type: 'who', me });
  channel.close();
}

// The session's state now: {name} when signed in, else {csrf_token} for signing in again.
async function whoAmI(url) {
  const response = await fetch(url, { headers: { Accept: 'application/json' } });
  const body = await response.json();
  return response.status === 401 ? { name: '', csrfToken: body.csrf_token } : { name: body.name };
}

/**
 * Watch for this session ending elsewhere: a peer tab's announcement (checked with the server)
 * or chat:session-ended (a stream's 'signed-out' event); then dispatch chat:signed-out once,
 * with a fresh CSRF token for signing in again when the server gave one.
 */
export function SessionWatch(root) {
  const url = root.dataset.sessionUrl;
  async function signedOut(known) {
    let now = { name: '', csrfToken: null };
    try { now = await whoAmI(url); } catch (err) { /* the server is unreachable: say what we know */ }
    if (now.name === root.dataset.me && !known) return;  // still signed in: a stale announcement
    if (now.name && !known) { location.reload(); return; }  // someone else now: show their page
    if (!root.dataset.me) return;  // already shown
    root.dispatchEvent(new CustomEvent('chat:signed-out', { detail: { csrfToken: now.csrfToken }, bubbles: true }));
  }
  if (window.BroadcastChannel) {
    const channel = new BroadcastChannel(CHANNEL);
    channel.onmessage = (e) => {
      if (e.data.type === 'who' && root.dataset.me && e.data.me !== root.dataset.me) signedOut(false);
    };
  }
  root.addEventListener('chat:session-ended', () => signedOut(true));
}

/**
 * Show the signed-out page: no name in the header, and the sign-in form (from the page's
 * <template data-signin>) where the composer was (a room) or at the top (the lobby).
 */
export function SignedOutView(root) {
  root.addEventListener('chat:signed-out', (e) => {
    if (!root.dataset.me) return;
    root.dataset.me = '';
    document.querySelector('form.whoami')?.remove();
    const template = root.querySelector('template[data-signin]');
    if (!template) return;
    const box = document.createElement('div');
    const note = document.createElement('p');
    note.className = 'notice';
    note.setAttribute('role', 'status');
    note.textContent = SIGNED_OUT;
    box.append(note, template.content.cloneNode(true));
    const token = box.querySelector('input[name=csrf_token]');
    if (token && e.detail.csrfToken) token.value = e.detail.csrfToken;  // the old one died with the session
    const form = root.querySelector('[data-form]');
    if (form) {
      box.className = 'composer';
      form.replaceWith(box);
    } else {
      template.replaceWith(box);
    }
  });
}
