// Notices: the "older messages were dropped" notice and the unread count in the title.
export function DroppedNotice(el, root) {
  root.addEventListener('chat:dropped', (e) => {
    el.textContent = e.detail.message || 'Some older messages are no longer available.';
    el.hidden = false;
  });
}

export function UnreadTitle(root) {
  const base = document.title;
  let unread = 0;
  root.addEventListener('chat:message', (e) => {
    if (!document.hidden || !e.detail.live || e.detail.message.user === root.dataset.me) return;
    unread += 1;
    document.title = `(${unread}) ${base}`;
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) { unread = 0; document.title = base; }
  });
}
