// ConnectionStatus: shows connected / reconnecting / offline / signed out as the stream reports it.
const LABELS = {
  connecting: 'connecting…', connected: 'connected', reconnecting: 'reconnecting…', offline: 'offline',
  'signed-out': 'signed out', replaced: 'paused', queued: 'paused',
};

export function ConnectionStatus(el, root) {
  root.addEventListener('chat:state', (e) => {
    el.textContent = LABELS[e.detail.state] || e.detail.state;
    el.dataset.state = e.detail.state;
  });
}
