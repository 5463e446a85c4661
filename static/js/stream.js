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
//   check                    follower -> leader: don't trust the stream, check it now
import { compareIds, laterCursor, newKey, roomPart } from './ids.js';
import { limitedConnections, takeSlot } from './slots.js';
import { deadAfterMs, RoomSource } from './source.js';

const KEPT_MESSAGES = 500;  // a leader remembers this many to catch up a tab that joins late
const KEPT_DIRECTS = 50;

export function ChatStream(el) {
  const heartbeatMs = Number(el.dataset.heartbeatMs) || 15000;
  const deadMs = deadAfterMs(heartbeatMs);
  const tab = newKey();
  let cursor = el.dataset.cursor || '';
  let covered = roomPart(cursor);  // every room message after this is in ``kept`` (or the page)
  const kept = { message: [], direct: [] };  // recent events, as {name, data, id}
  let online = null;  // the last presence list, for a tab that joins late
  let state = '';
  let leading = false;  // this tab won the room's election
  let source = null;   // while leading and streaming
  let release = null;  // ends the election lock's hold
  let freeSlot = null;  // ends the connection slot's hold (HTTP/1.1)
  let slotAbort = null;  // gives up waiting for a slot
  let channel = null;
  let lockAbort = null;
  let heardLeader = Date.now();
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

  function remember(name, data, id) {
    const list = kept[name];
    list.push({ name, data, id });
    if (list.length > (name === 'direct' ? KEPT_DIRECTS : KEPT_MESSAGES)) {
      const gone = list.shift();
      if (name === 'message') covered = laterCursor(covered, roomPart(gone.id));
    }
  }

  // One stream event, from our own stream or the leader's; ``live`` is false for a catch-up.
  function deliver(name, data, id, live) {
    if (name === 'message' || name === 'direct') {
      remember(name, data, id);
      emit('chat:' + name, { message: JSON.parse(data), live });
    } else if (name === 'presence') {
      const detail = JSON.parse(data);
      online = { room: detail.room, action: 'here', online: detail.online };
      emit('chat:presence', detail);
    } else if (name === 'dropped') {
      emit('chat:dropped', JSON.parse(data));
    } else if (name === 'replaced') {
      emit('chat:replaced', JSON.parse(data));
    } else if (name === 'signed-out') {
      stop('signed-out');  // the server ends the stream: don't reconnect as nobody
      emit('chat:session-ended', {});
      return;
    }
    if (id && (name === 'message' || name === 'direct' || name === 'ready')) cursor = laterCursor(cursor, id);
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
    if (message.state) setState(message.state);
    if (message.type === 'event') deliver(message.name, message.data, message.id, true);
    else if (message.type === 'leader') post({ type: 'hello', cursor });
    else if (message.type === 'catch-up' && message.to === tab) {
      for (const e of message.events) deliver(e.name, e.data, e.id, false);
    }
  }

  function serve(message) {
    if (message.type === 'check' && source) source.check('peer');
    if (message.type !== 'hello') return;
    // What it lacks of what we keep (a tab that just joined: everything after its page), and
    // the online list. If it started before what we keep, our stream rewinds to its cursor:
    // every tab gets the replay, and each drops what it already shows.
    const [theirRoom, theirDirect] = (message.cursor || '').split('.');
    const after = (id, mine) => !mine || compareIds(id, mine) > 0;
    const events = [
      ...kept.direct.filter((e) => after(e.id.split('.')[1] || '0-0', theirDirect)),
      ...kept.message.filter((e) => after(roomPart(e.id), theirRoom)),
    ];
    if (online) events.push({ name: 'presence', data: JSON.stringify(online), id: '' });
    post({ type: 'catch-up', to: message.from, events });
    if (theirRoom && (!covered || compareIds(theirRoom, covered) < 0)) {
      covered = theirRoom;
      if (source) source.rewind(cursor.replace(roomPart(cursor), theirRoom));
      else cursor = cursor.replace(roomPart(cursor), theirRoom);  // not streaming yet: start there
    }
  }

  function join() {
    if (!(navigator.locks && window.BroadcastChannel)) { lead(); return; }
    const name = `ripple-stream:${el.dataset.room}:${el.dataset.me || ''}`;
    channel = new BroadcastChannel(name);
    channel.onmessage = (e) => (leading ? serve(e.data) : follow(e.data));
    lockAbort = new AbortController();
    navigator.locks.request(name, { signal: lockAbort.signal }, () => new Promise((resolve) => {
      release = resolve;
      if (!stopped) lead();
    })).catch(() => {});  // aborted while waiting: the page stopped streaming
    post({ type: 'hello', cursor });  // a leader, if there is one, answers with a catch-up
  }

  // A follower that hears nothing from its leader for the dead time asks it to check.
  const watch = setInterval(() => {
    if (leading || stopped || !channel || state === 'replaced' || state === 'queued'
        || Date.now() - heardLeader < deadMs) return;
    heardLeader = Date.now();
    setState(navigator.onLine ? 'reconnecting' : 'offline');
    post({ type: 'check' });
  }, 1000);

  function check(why) {
    if (source) source.check(why);
    else if (!leading) post({ type: 'check' });
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
  el.addEventListener('chat:check', () => check('send'));
  el.addEventListener('chat:signed-out', () => stop('signed-out'));
  setState('connecting');
  join();
}
