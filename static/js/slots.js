// Connection slots: how many rooms this browser may stream at once over HTTP/1.1.
//
// Over HTTP/1.1 a browser opens at most six connections to a host, and a stream holds one for
// good: with six streams open, no tab of the site could post or even load a page. So the streams
// of this browser each take one of STREAM_SLOTS slot locks, leaving two connections free; a room
// beyond them waits ("paused") until another room's stream closes, and its tab can still post.
// HTTP/2 carries every stream on one connection: no slots there.
const STREAM_SLOTS = 4;

export function limitedConnections() {
  const protocol = performance.getEntriesByType('navigation')[0]?.nextHopProtocol || '';
  return /^http\/1/.test(protocol);
}

// Ask for every slot; the first granted is ours (the others are given up); returns an abort
// controller that stops waiting. granted(release) is called once.
export function takeSlot(granted) {
  const waiting = new AbortController();
  let taken = false;
  for (let n = 0; n < STREAM_SLOTS; n += 1) {
    navigator.locks.request(`ripple-slot:${n}`, { signal: waiting.signal }, () => {
      if (taken) return undefined;  // two were free at once: keep one
      taken = true;
      waiting.abort();
      return new Promise((resolve) => granted(resolve));
    }).catch(() => {});  // aborted: another slot was taken, or the page stopped streaming
  }
  return waiting;
}
