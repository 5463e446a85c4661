// Notices: the "older messages were dropped" notice and the unread count in the title.
export function DroppedNotice(el, root) {
  root.addEventListener('chat:dropped', (e) => {
    el.textContent = e.detail.message || 'Some older messages are no longer available.';
    el.hidden = false;
  });
  root.addEventListener('chat:replaced', (e) => {  // the stream stopped: the server says why
    el.textContent = e.detail.message;
    el.hidden = false;
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
