// Online: who is online in a room, as presence events tell it. An event with an `online` list
// (a stream's snapshot, or any event while the room is small) replaces what is known; one
// without (a join, leave or "here" in a room above RIPPLE_PRESENCE_LIST_MAX) is a change to
// apply: {name, action, guest, online_count}. A snapshot of a big room lists only some names,
// so `count` (the server's online_count) may exceed the names known.

/** The state after ``detail``: {online: [names, sorted], guests: [those among them], count}. */
export function nextOnline(known, detail) {
  if (Array.isArray(detail.online)) {
    return {
      online: detail.online.slice(),
      guests: (detail.guests || []).slice(),
      count: detail.online_count ?? detail.online.length,
    };
  }
  const names = new Set(known ? known.online : []);
  const guests = new Set(known ? known.guests : []);
  if (detail.name && (detail.action === 'join' || detail.action === 'here')) {
    names.add(detail.name);
    if (detail.guest) guests.add(detail.name); else guests.delete(detail.name);
  } else if (detail.name && detail.action === 'leave') {
    names.delete(detail.name);
    guests.delete(detail.name);
  }
  return {
    online: Array.from(names).sort(),
    guests: Array.from(guests).filter((name) => names.has(name)).sort(),
    count: detail.online_count ?? names.size,
  };
}
