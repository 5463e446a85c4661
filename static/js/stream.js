// ChatStream: the room's live events, shared by every tab of this browser that shows the room.
//
// Browsers allow six HTTP/1.1 connections per host: one EventSource per tab would leave none
// for posting after a few tabs. So the tabs of a room elect one leader with the Web Locks API
// (the lock is released when its tab closes or crashes, and the next tab waiting takes it);
// the leader holds the only stream (a RoomSource) and passes every event on over a
// BroadcastChannel. Each tab keeps the cursor of the last event it saw, so a new leader resumes
// exactly there; messages.js drops anything seen twice. Without Web Locks (an insecure origin)
// or BroadcastChannel, each tab simply holds its own stream.
//
// Peer messages (all carry the sender's tab and state, and ``lead`` when the leader sent them):
//   event {name, data, id}   leader -> all: one stream event (pings too: the stream is alive)
//   state                    leader -> all: the stream's state changed
//   leader                   new leader -> all: send me your cursor
//   hello {cursor}           follower -> leader: I joined, at this cursor; catch me up
//   catch-up {to, events}    leader -> one follower: what it missed before joining
//   check {why?}             follower -> leader: don't trust the stream, check it now (and
//                            answer: a leader that never does loses the lock to a visible tab)
import { laterCursor, newKey, roomPart } from './ids.js';
import { Recent } from './recent.js';
import { limitedConnections, takeSlot } from './slots.js';
import { deadAfterMs, RoomSource } from './source.js';

// Room events that change a message already shown (app/rooms/conversation.py).
const CHANGES = ['edit', 'delete', 'reaction'];

export function ChatStream(el) {
  const heartbeatMs = Number(el.dataset.heartbeatMs) || 15000;
  const deadMs = deadAfterMs(heartbeatMs);
  const tab = newKey();
  let cursor = el.dataset.cursor || '';
  const recent = Recent(roomPart(cursor));  // what a tab that joins late may lack
  let state = '';
  let leading = false;  // this tab won the room's election
  let source = null;   // while leading and streaming
  let release = null;  // ends the election lock's hold
  let freeSlot = null;  // ends the connection slot's hold (HTTP/1.1)
  let slotAbort = null;  // gives up waiting for a slot
  let channel = null;
  let lockName = '';
  let lockAbort = null;
  let heardLeader = Date.now();
  let checkedAt = 0;  // when a follower asked a silent leader to check; 0: not asked
  let stopped = false;

  const emit = (name, detail) => el.dispatchEvent(new CustomEvent(name, { detail, bubbles: true }));
  const post = (message) => {
    if (channel) channel.postMessage({ ...message, from: tab, state, lead: leading });
  };

  function setState(next) {
    if (next === state) return;
    state = next;
    emit('chat:state', { state });
  }

  // One stream event, from our own stream or the leader's; ``live`` is false for a catch-up.
  function deliver(name, data, id, live) {
    if (name === 'message' || name === 'direct') {
      recent.add(name, data, id);
      emit('chat:' + name, { message: JSON.parse(data), live });
    } else if (CHANGES.includes(name)) {  // a message's edit, deletion or reaction: numbered too
      recent.add(name, data, id);
      emit('chat:' + name, { ...JSON.parse(data), live });
    } else if (name === 'presence') {
      const detail = JSON.parse(data);
      recent.presence(detail);
      emit('chat:presence', detail);
    } else if (name === 'typing') {
      emit('chat:typing', JSON.parse(data));
    } else if (name === 'unread' || name === 'read' || name === 'activity' || name === 'mentions'
        || name === 'deleted') {  // reading.js, sidebar.js
      emit('chat:' + name, { ...JSON.parse(data), live });
    } else if (name === 'dropped') {
      emit('chat:dropped', JSON.parse(data));
    } else if (name === 'replaced') {
      emit('chat:replaced', JSON.parse(data));
    } else if (name === 'removed' || name === 'room-deleted') {
      stop('removed');  // the room shut this person out (or is gone): coming back is refused
      emit('chat:removed', { ...JSON.parse(data), event: name });
      return;
    } else if (name === 'signed-out') {
      stop('signed-out');  // the server ends the stream: don't reconnect as nobody
      emit('chat:session-ended', {});
      return;
    }
    if (id && (name === 'message' || name === 'direct' || name === 'ready' || CHANGES.includes(name))) {
      cursor = laterCursor(cursor, id);
    }
  }

  // Won the election: hold the room's stream (once a slot is free, over HTTP/1.1).
  function lead() {
    leading = true;
    if (!(navigator.locks && limitedConnections())) { stream(); return; }
    // Usually a slot is free at once: say "paused" only when it really waits.
    const queued = setTimeout(() => { setState('queued'); post({ type: 'state' }); }, 300);
    slotAbort = takeSlot((releaseSlot) => {
      clearTimeout(queued);
      if (stopped) { releaseSlot(); return; }
      freeSlot = releaseSlot;
      stream();
    });
  }

  function stream() {
    source = RoomSource({
      url: el.dataset.streamUrl, heartbeatMs, backlog: el.dataset.backlog,
      cursor: () => cursor,
      onEvent: (name, data, id) => {
        post({ type: 'event', name, data, id });  // first: a 'signed-out' ends our channel
        deliver(name, data, id, true);
      },
      onState: (next) => { setState(next); post({ type: 'state' }); },
    });
    post({ type: 'leader' });
  }

  function follow(message) {
    if (!message.lead) return;  // another follower's hello or check
    heardLeader = Date.now();
    checkedAt = 0;
    if (message.state) setState(message.state);
    if (message.type === 'event') deliver(message.name, message.data, message.id, true);
    else if (message.type === 'leader') post({ type: 'hello', cursor });
    else if (message.type === 'catch-up' && message.to === tab) {
      for (const e of message.events) deliver(e.name, e.data, e.id, false);
    }
  }

  function serve(message) {
    if (message.type === 'check') {
      post({ type: 'state' });  // alive: a follower that hears nothing would take the lead
      if (source) source.check(message.why === 'send' ? 'send' : 'peer');  // a follower's post failed
    }
    if (message.type !== 'hello') return;
    // What it lacks of what we keep; if it started before that, our stream rewinds to its
    // cursor: every tab gets the replay, and each drops what it already shows.
    post({ type: 'catch-up', to: message.from, events: recent.after(message.cursor) });
    const theirs = roomPart(message.cursor);
    if (recent.rewinds(theirs)) {
      const from = cursor.replace(roomPart(cursor), theirs);
      if (source) source.rewind(from);
      else cursor = from;  // not streaming yet: start there
    }
  }

  function join() {
    if (!(navigator.locks && window.BroadcastChannel)) { lead(); return; }
    lockName = `ripple-stream:${el.dataset.room}:${el.dataset.me || ''}`;
    channel = new BroadcastChannel(lockName);
    channel.onmessage = (e) => (leading ? serve(e.data) : follow(e.data));
    requestLock(false);
    post({ type: 'hello', cursor });  // a leader, if there is one, answers with a catch-up
  }

  // Wait for the room's lock (or take it from a leader that stopped answering: a frozen or
  // hung tab keeps its lock). Losing it that way, this tab goes back to following.
  function requestLock(steal) {
    if (lockAbort) lockAbort.abort();
    lockAbort = new AbortController();
    const options = steal ? { steal: true } : { signal: lockAbort.signal };
    navigator.locks.request(lockName, options, () => new Promise((resolve) => {
      release = resolve;
      if (!stopped) lead();
    })).catch(() => {  // aborted while waiting, or stolen while leading
      if (!leading || stopped) return;
      abdicate();
      requestLock(false);
      post({ type: 'hello', cursor });
    });
  }

  function abdicate() {
    leading = false;
    if (source) { source.close(); source = null; }
    if (slotAbort) slotAbort.abort();
    if (freeSlot) { freeSlot(); freeSlot = null; }
    heardLeader = Date.now();
  }

  // A follower that hears nothing from its leader for the dead time asks it to check (a live
  // leader answers at once, even while its own stream is reconnecting); a visible follower
  // whose check goes unanswered for as long takes the lead.
  const watch = setInterval(() => {
    if (leading || stopped || !channel || state === 'replaced' || state === 'queued') return;
    const now = Date.now();
    if (now - heardLeader < deadMs) return;
    if (!checkedAt) {
      checkedAt = now;
      setState(navigator.onLine ? 'reconnecting' : 'offline');
      post({ type: 'check' });
    } else if (now - checkedAt >= deadMs && !document.hidden) {
      checkedAt = 0;
      heardLeader = now;
      requestLock(true);
    }
  }, 1000);

  function check(why) {
    if (source) source.check(why);
    else if (!leading) post({ type: 'check', why });
  }

  function stop(final) {
    if (stopped) return;
    stopped = true;
    clearInterval(watch);
    if (source) { source.close(); source = null; }
    if (slotAbort) slotAbort.abort();
    if (freeSlot) freeSlot();
    if (release) release();
    if (lockAbort) lockAbort.abort();
    if (channel) channel.close();
    channel = null;
    setState(final);
  }

  addEventListener('online', () => check('online'));
  addEventListener('offline', () => { if (source) source.offline(); });
  document.addEventListener('visibilitychange', () => { if (!document.hidden) check('visible'); });
  el.addEventListener('chat:check', (e) => check(e.detail?.why === 'slow' ? 'slow' : 'send'));
  el.addEventListener('chat:signed-out', () => stop('signed-out'));
  setState('connecting');
  join();
}
