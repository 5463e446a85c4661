// Recent: the stream events a tab keeps, so that as leader it can catch up a tab that joins
// late (its page was rendered at an older cursor, and it has no direct messages at all).
import { compareIds, laterCursor, roomPart } from './ids.js';
import { nextOnline } from './online.js';

const KEPT = { message: 500, direct: 50 };

/** ``covered``: the room id after which every room message is kept (or on this page). */
export function Recent(covered) {
  const kept = { message: [], direct: [] };  // {name, data, id}, oldest first
  let online = null;  // the last presence snapshot, changes applied: {room, online, guests, count}

  return {
    add(name, data, id) {  // room events of every kind (messages, edits...) share one list
      const which = name === 'direct' ? 'direct' : 'message';
      const list = kept[which];
      list.push({ name, data, id });
      if (list.length > KEPT[which]) {
        const gone = list.shift();
        if (which === 'message') covered = laterCursor(covered, roomPart(gone.id));
      }
    },
    presence(detail) { online = { room: detail.room, ...nextOnline(online, detail) }; },
    // What a tab at ``cursor`` lacks of what is kept, and the online list.
    after(cursor) {
      const [room, direct] = (cursor || '').split('.');
      const newer = (id, than) => !than || compareIds(id, than) > 0;
      const events = [
        ...kept.direct.filter((e) => newer(e.id.split('.')[1] || '0-0', direct)),
        ...kept.message.filter((e) => newer(roomPart(e.id), room)),
      ];
      if (online) {  // a snapshot, as a stream's first presence event
        const { room: r, online: names, guests, count } = online;
        const snapshot = { room: r, action: 'here', online: names, guests, online_count: count };
        events.push({ name: 'presence', data: JSON.stringify(snapshot), id: '' });
      }
      return events;
    },
    // A tab whose page ends at room id ``theirs`` (older than what is kept) needs a replay
    // from there; after it, everything from there on is covered.
    rewinds(theirs) {
      if (!theirs || (covered && compareIds(theirs, covered) >= 0)) return false;
      covered = theirs;
      return true;
    },
  };
}
