// Notices: the "older messages were dropped" notice and the unread count in the title.
import { t } from './i18n.js';
import { leaveQuietly } from './leaving.js';
import { fullTime } from './times.js';

const QUEUED = t('Live updates for this room are paused: this browser has too many rooms open. Sending still works; close the tab of another room and this one goes live, with what it missed.');
const DROPPED = t('Some older messages are no longer available.');
const REPLACED = t('This stream was replaced by a newer one of the same session (too many open tabs or devices). Reload the page to continue here.');
export function DroppedNotice(el, root) {
  root.addEventListener('chat:dropped', () => {
    el.textContent = DROPPED;  // the server's sentence is English (for API clients); ours is the page's language
    el.hidden = false;
  });
  root.addEventListener('chat:replaced', () => {  // the stream stopped: a newer one took its place
    el.textContent = REPLACED;
    el.hidden = false;
  });
  root.addEventListener('chat:removed', (e) => {  // a ban, a removal, a deleted room (app/rooms/moderation.py)
    const { room, reason, until, seconds_left: left } = e.detail;
    el.textContent = reason === 'deleted' ? t('#{room} was deleted by its owner or an administrator.', { room })
      : reason === 'banned' && until ? t('You are banned from #{room} until {time}.', { room, time: fullTime(until) })
      : reason === 'banned' ? t('You were banned from #{room}.', { room })
        : reason === 'private' ? t('#{room} is now private: only its members can read it.', { room })
          : reason === 'left' ? t('You left #{room}.', { room })  // in another tab, or by a program
            : t('You were removed from #{room}.', { room });
    el.hidden = false;
    root.querySelector('[data-form]')?.setAttribute('hidden', '');  // its posts would be refused
    // A ban for a time: the page comes back by itself once it lapses (the draft kept meanwhile
    // comes back with it), timed by the server's clock (this one may be off); a timer's delay
    // is capped near 24.8 days.
    const wait = reason === 'banned' && until ? (left ?? (until - Date.now()) / 1000) * 1000 + 1000 : NaN;
    if (wait > 0 && wait < 2 ** 31) setTimeout(() => { leaveQuietly(); window.location.reload(); }, wait);
  });
  // Waiting for a connection slot (stream.js): the page says so above the log, and claims
  // nothing about now that it cannot know ("No messages yet" goes, the online list is marked
  // stale: style.css) until the stream, resuming from the page's cursor, brings what it missed.
  const online = document.querySelector('[data-online]');
  root.addEventListener('chat:state', (e) => {
    const paused = e.detail.state === 'queued';
    root.toggleAttribute('data-paused', paused);
    online?.toggleAttribute('data-stale', paused);
    if (paused) {
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
