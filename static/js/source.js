// RoomSource: one EventSource on a room that notices a dead connection by itself.
//
// A path can die without a reset (a lost NAT mapping, a weak signal): the browser then keeps
// the stream "open" for minutes and hears nothing. The server writes at least once a heartbeat
// (an unnumbered "ping" when it has nothing else to say), so hearing nothing for 2.5 heartbeats
// means the connection is dead: close it and open a new one from the cursor. A new EventSource
// cannot set Last-Event-ID itself, so the cursor goes in ?last_event_id= (the stream takes both).

// Every event the stream sends a page; "ping" (no id, no data) only proves it is alive.
const EVENTS = ['message', 'direct', 'presence', 'dropped', 'ready', 'unavailable', 'signed-out',
  'busy', 'replaced', 'typing', 'ping', 'edit', 'delete', 'reaction', 'removed', 'room-deleted',
  'unread', 'read', 'activity', 'mentions', 'deleted'];

// Silent this long, a connection is dead: 2.5 heartbeats, never under 3 s (the timers of a
// busy or background page run late: below that, "silent" would be noise).
export const deadAfterMs = (heartbeatMs) => Math.max(3000, 2.5 * heartbeatMs);
const JUST_HEARD_MS = 1000;  // a send failure right after this proves nothing against the stream

/**
 * Open a watched stream; returns { check(why), offline(), close() }.
 * url: the stream URL; heartbeatMs: the server's heartbeat; cursor(): where to resume ('' for
 * none, then ?backlog=backlog); onEvent(name, data, id): every event, pings included;
 * onState(state): 'connecting' | 'connected' | 'checking' | 'reconnecting' | 'offline' | 'replaced'.
 */
export function RoomSource({ url, heartbeatMs, cursor, backlog, onEvent, onState }) {
  const deadMs = deadAfterMs(heartbeatMs);
  let source = null;
  let heardAt = 0;      // when the current connection last delivered anything
  let deadline = 0;     // silent past this: the connection is dead
  let live = false;     // from a 'ready' until something goes wrong
  let verifying = false;  // told to check: 'connected' again only after hearing something
  let failures = 0;     // refused or failed attempts in a row, for the back-off
  let retryTimer = null;
  let from = null;      // a one-off cursor for the next open (a catch-up for another tab)
  let pausedUntil = 0;  // the server asked us to stay away until then (busy, replaced)
  let closed = false;

  const down = () => onState(navigator.onLine ? 'reconnecting' : 'offline');

  function heard() {
    heardAt = Date.now();
    deadline = heardAt + deadMs;
    if (verifying && live) { verifying = false; onState('connected'); }
  }

  function open() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (closed) return;
    const target = new URL(url, location.href);
    const at = from ?? cursor();
    from = null;
    if (at) target.searchParams.set('last_event_id', at);
    else if (backlog) target.searchParams.set('backlog', backlog);
    const es = source = new EventSource(target);
    heard();  // the connect itself must finish before the deadline
    es.onopen = heard;
    for (const name of EVENTS) {
      es.addEventListener(name, (e) => {
        heard();
        if (name === 'ready') { live = true; verifying = false; failures = 0; onState('connected'); }
        if (name === 'unavailable') { live = false; onState('reconnecting'); }
        onEvent(name, e.data, e.lastEventId);
        // Refused (too many streams): come back when the server said, not sooner (the watchdog
        // would otherwise take the ended stream's silence for a dead connection).
        if (name === 'busy') pause(Number(JSON.parse(e.data).retry_after || 5) * 1000);
        // A newer stream of this session took this one's place: coming back would only
        // replace another of them. The page says so and stays quiet until reloaded.
        if (name === 'replaced') { pause(Infinity); onState('replaced'); }
        // Removed or banned from the room, or the room is gone: its reconnect would be refused.
        if (name === 'removed' || name === 'room-deleted') { pause(Infinity); onState('removed'); }
      });
    }
    es.onerror = () => {
      live = false;
      if (es.readyState === EventSource.CLOSED) refused(target);  // refused (e.g. 503): we retry
      else down();  // the browser reconnects by itself, with Last-Event-ID
    };
  }

  // An EventSource cannot see why it was refused. A HEAD answers as the stream would: 403 (a
  // ban), 404 (a private room this person left) or 410 (the room was deleted while this page
  // was away: its reconnect resumes the deleted history) will not change by retrying, so stop
  // there, as the 'removed' or 'room-deleted' event would have (this page never heard it).
  async function refused(target) {
    if (source) { source.close(); source = null; }
    try {
      const answer = await fetch(target, { method: 'HEAD', credentials: 'same-origin' });
      if (!closed && [403, 404, 410].includes(answer.status)) {
        const room = decodeURIComponent(new URL(target).pathname.split('/')[2] || '');
        const reason = answer.status === 403 ? 'banned' : answer.status === 410 ? 'deleted' : 'removed';
        pause(Infinity);
        onState('removed');
        onEvent(reason === 'deleted' ? 'room-deleted' : 'removed', JSON.stringify({ room, reason }), '');
        return;
      }
    } catch (err) { /* offline: retry as for any refusal */ }
    drop(false);
  }

  // End the current connection and schedule the next: at once after a silent drop (the wait
  // for the deadline already spaced the attempts), with a growing back-off after refusals.
  function drop(silent) {
    if (source) { source.close(); source = null; }
    live = false;
    verifying = false;
    down();
    failures += 1;
    const wait = silent ? Math.random() * 500 : Math.min(30000, 3000 * 2 ** (failures - 1)) * (0.75 + Math.random() / 2);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(open, wait);
  }

  function pause(ms) {
    const wait = ms * (1 + Math.random() / 2);  // a refused crowd does not return at one instant
    if (source) { source.close(); source = null; }
    live = false;
    down();
    pausedUntil = Date.now() + wait;
    clearTimeout(retryTimer);
    if (wait !== Infinity) retryTimer = setTimeout(open, wait);
  }

  const watchdog = setInterval(() => {
    if (source && Date.now() > deadline) drop(true);
  }, Math.min(1000, heartbeatMs / 2));

  open();
  return {
    // The network came back, the page became visible, a send failed: don't trust the stream.
    // Silent for more than a heartbeat: reconnect now; else it must speak within ~a heartbeat.
    check(why) {
      if (closed) return;
      if (!source) {  // between attempts: only a network that came back skips the back-off
        if (why === 'online' && Date.now() >= pausedUntil) { failures = 0; open(); }
        return;
      }
      const now = Date.now();
      // A post (an edit...) just failed for want of the network (retries.js): the stream on the
      // same path may be as dead, and waiting for its silence took up to 2.5 heartbeats, the
      // status saying "connected" meanwhile next to "Not sent yet". It proves itself at once
      // instead, on a new connection (its 'ready' comes within a round trip when the path works),
      // "reconnecting…" until then. Heard from just now: it is alive.
      if (why === 'send') {
        if (now - heardAt > JUST_HEARD_MS) { failures = 0; drop(true); }
        return;
      }
      // One has had no answer for a second: a stalled path, or only a slow server (a reload, a
      // busy Redis). Not enough to drop a working stream (every posting tab of a slow server
      // would reconnect, again and again, adding to what makes it slow): the status says
      // "checking connection…", not "connected" and not "reconnecting…" (nothing reconnects),
      // until the stream speaks (the post itself comes back on it), and a silent one must
      // speak within a heartbeat and a half.
      if (why === 'slow') {
        if (now - heardAt > JUST_HEARD_MS) {
          verifying = true;
          onState(navigator.onLine ? 'checking' : 'offline');
          deadline = Math.min(deadline, now + 1.5 * heartbeatMs);
        }
        return;
      }
      if (now - heardAt > 1.5 * heartbeatMs) { failures = 0; drop(true); return; }
      deadline = Math.min(deadline, now + 1.5 * heartbeatMs);
      if (why === 'online') { verifying = true; down(); }
    },
    offline() { if (!closed) onState('offline'); },
    // Reopen from an older cursor (another tab needs what came before this stream's start).
    rewind(at) { if (closed) return; from = at; if (source) { source.close(); source = null; } open(); },
    close() {
      closed = true;
      clearInterval(watchdog);
      clearTimeout(retryTimer);
      if (source) source.close();
      source = null;
    },
  };
}
