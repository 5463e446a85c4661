// ConnectionStatus: shows connected / reconnecting / offline / signed out as the stream reports it.
import { t } from './i18n.js';

const LABELS = {
  connecting: t('connecting…'), connected: t('connected'), reconnecting: t('reconnecting…'), offline: t('offline'),
  checking: t('checking connection…'),
  'signed-out': t('signed out'), replaced: t('paused'), queued: t('paused'), removed: t('closed'),
};

export function ConnectionStatus(el, root) {
  root.addEventListener('chat:state', (e) => {
    el.textContent = LABELS[e.detail.state] || e.detail.state;
    el.dataset.state = e.detail.state;
  });
}
