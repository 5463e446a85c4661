// Notices: the "older messages were dropped" notice and the unread count in the title.
const QUEUED = 'Live updates for this room are paused: this browser has too many rooms open. '
  + 'Sending still works; close the tab of another room and this one goes live, with what it missed.';
export function DroppedNotice(el, root) {
  root.addEventListener('chat:dropped', (e) => {
    el.textContent = e.detail.message || 'Some older messages are no longer available.';
    el.hidden = false;
  });
  root.addEventListener('chat:replaced', (e) => {  // the stream stopped: the server says why
    el.textContent = e.detail.message;
    el.hidden = false;
  });
  root.addEventListener('chat:state', (e) => {  // waiting for a connection slot (stream.js)
    if (e.detail.state === 'queued') {
      el.textContent = QUEUED;
      el.hidden = false;
    } else if (el.textContent === QUEUED) {
      el.hidden = true;
      el.textContent = '';
    }
  });
}

export function UnreadTitle(root) {
  const base = document.title;
  let unread = 0;
  const count = (e) => {
    const author = e.detail.message.user ?? e.detail.message.from;
    if (!document.hidden || !e.detail.live || author === root.dataset.me) return;
    unread += 1;
    document.title = `(${unread}) ${base}`;
  };
  root.addEventListener('chat:message', count);
  root.addEventListener('chat:direct', count);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) { unread = 0; document.title = base; }
  });
}
