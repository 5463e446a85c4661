// ChatStream: one EventSource on the room; everything it hears leaves as bubbling events.
export function ChatStream(el) {
  let cursor = el.dataset.cursor || '';
  let source = null;
  let retryTimer = null;
  let live = false;  // from a 'ready' until the next error: the stream is delivering

  const emit = (name, detail) => el.dispatchEvent(new CustomEvent(name, { detail, bubbles: true }));

  function open() {
    // The cursor of the newest message the server rendered: nothing falls between the page
    // and the stream. Later reconnects carry Last-Event-ID by themselves.
    const url = new URL(el.dataset.streamUrl, location.href);
    if (cursor) url.searchParams.set('last_event_id', cursor);
    else if (el.dataset.backlog) url.searchParams.set('backlog', el.dataset.backlog);
    source = new EventSource(url);
    source.onopen = () => emit('chat:state', { state: 'connecting' });
    source.addEventListener('ready', (e) => {
      if (e.lastEventId) cursor = e.lastEventId;
      live = true;
      emit('chat:state', { state: 'connected' });
    });
    source.addEventListener('message', (e) => {
      cursor = e.lastEventId || cursor;
      emit('chat:message', { message: JSON.parse(e.data), live: true });
    });
    source.addEventListener('direct', (e) => {
      cursor = e.lastEventId || cursor;
      emit('chat:direct', { message: JSON.parse(e.data), live: true });
    });
    source.addEventListener('presence', (e) => emit('chat:presence', JSON.parse(e.data)));
    source.addEventListener('dropped', (e) => emit('chat:dropped', JSON.parse(e.data)));
    source.addEventListener('unavailable', () => { live = false; emit('chat:state', { state: 'reconnecting' }); });
    source.onerror = () => {
      live = false;
      if (source.readyState === EventSource.CLOSED) {
        // The server answered with an error (e.g. 503 at capacity): the browser gives up, we don't.
        emit('chat:state', { state: navigator.onLine ? 'reconnecting' : 'offline' });
        source.close();
        clearTimeout(retryTimer);
        retryTimer = setTimeout(open, 3000 + Math.random() * 2000);
      } else {
        emit('chat:state', { state: navigator.onLine ? 'reconnecting' : 'offline' });
      }
    };
  }

  addEventListener('offline', () => emit('chat:state', { state: 'offline' }));
  addEventListener('online', () => {
    if (source && source.readyState === EventSource.CLOSED) { clearTimeout(retryTimer); open(); }
    else emit('chat:state', { state: live ? 'connected' : 'reconnecting' });  // the stream outlived the blip
  });
  open();
}
