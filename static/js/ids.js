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
