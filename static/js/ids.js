// Message ids are Redis stream ids, "<ms>-<seq>": compare them as numbers, not strings.
export function compareIds(a, b) {
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return am - bm || as - bs;
}

// A fresh idempotency key; crypto.randomUUID exists only on secure origins.
export function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// Stream cursors are "<room id>" or "<room id>.<direct id>": each part only moves forward, so
// the later of two cursors is the later of each part (a replayed event never moves one back).
export function laterCursor(a, b) {
  if (!a || !b) return a || b || '';
  const [ar, ad] = a.split('.');
  const [br, bd] = b.split('.');
  const room = compareIds(ar, br) >= 0 ? ar : br;
  const direct = !ad || !bd ? ad || bd : compareIds(ad, bd) >= 0 ? ad : bd;
  return direct ? `${room}.${direct}` : room;
}

// The room part of a cursor ('' when there is none).
export const roomPart = (cursor) => (cursor || '').split('.')[0];
