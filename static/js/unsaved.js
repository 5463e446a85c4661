// UnsavedChanges: edits, deletions and reactions whose outcome is unknown (no answer in time, the
// connection failed, a 5xx). Each stays on its message, under its text, as "Saving…" / "Not saved
// yet — will retry." (an edit with the text typed), with "Retry now" and "Don't save", and is sent
// again by the posts' engine (retries.js) until the server answers: an edit made while the network
// was down was dropped, its "could not reach the server" erased once the stream was back.
// Sending one again is safe: an edit sets the text (the same text again changes nothing; it carries
// the version it started from, so one that waited while the message was edited elsewhere is
// refused, 409 edit_conflict, and shown so with its text, never stored over the newer), deleting
// a deleted message is 204, a reaction is put or taken back (docs/api.md). Not kept across a
// reload (the page's menu has the typed edit until then).
import { t } from './i18n.js';
import { stored } from './pending.js';
import { Retries, appendControls } from './retries.js';

const STRINGS = {
  sending: { edit: t('Saving your edit…'), delete: t('Deleting…'), reaction: t('Saving your reaction…') },
  waiting: {
    edit: t('Edit not saved yet — will retry.'),
    delete: t('Not deleted yet — will retry.'),
    reaction: t('Reaction not saved yet — will retry.'),
  },
  retry: t('Retry now'),
  discard: t("Don't save"),
  dismiss: t('Dismiss'),
  failed: (status) => t('That did not work ({status}).', { status }),
};

/**
 * root: the room's element; send(change, signal): do it, resolve to {response, body} or throw;
 * done(change, body): show what the server answered. A change: {li, kind: 'edit' | 'delete' |
 * 'reaction', text?, emoji?, ...what send needs}.
 * Returns { add(change, outcome), carry(change, inflight), busy() }.
 */
export function UnsavedChanges(root, { timeoutMs, send, done }) {
  const retries = Retries(root, { timeoutMs });
  const queue = retries.queue;

  function render(entry) {
    const line = document.createElement('p');
    line.className = 'pending-state pending-change';
    line.dataset.pendingChange = entry.kind;
    if (entry.kind === 'edit') {  // what was typed, to see (and copy) until it is saved
      const text = document.createElement('q');
      text.className = 'pending-text';
      text.dir = 'auto';
      text.textContent = stored(entry.text);
      line.append(text, ' ');
    } else if (entry.kind === 'reaction') line.append(entry.emoji, ' ');
    appendControls(line, { retryLabel: STRINGS.retry, retry: () => retries.retry(),
                           discardLabel: STRINGS.discard, discard: () => forget(entry) });
    entry.line = line;
    const menu = entry.li.querySelector('[data-actions]');
    if (menu) menu.before(line);
    else entry.li.append(line);
  }

  function show(entry, what, sentence = '') {
    entry.line.querySelector('[data-pending-status]').textContent = what === 'refused' ? sentence
      : STRINGS[what][entry.kind];
    entry.line.dataset.state = what;
    entry.line.querySelector('[data-retry]').hidden = what !== 'waiting';
    // Refused, nothing is left to save: the line (and the text typed, to copy) goes when dismissed.
    entry.line.querySelector('[data-discard]').textContent = what === 'refused' ? STRINGS.dismiss : STRINGS.discard;
  }

  function forget(entry) {
    retries.drop(entry);
    entry.line.remove();
  }

  function entryOf(change) {
    // The same message's earlier edit waiting: this one's text replaces it.
    if (change.kind === 'edit') {
      for (const other of queue.filter((e) => e.kind === 'edit' && e.li === change.li)) forget(other);
    }
    const entry = {
      ...change,
      send: (signal) => send(entry, signal),
      show: (what) => show(entry, what),
      sent(result) { entry.line.remove(); done(entry, result.body); },
      // Refused (too late to edit, edited elsewhere meanwhile: edit_conflict, signed out...): the
      // server's sentence stays, with an edit's typed text, until dismissed.
      refused({ response, body }) {
        entry.line.hidden = false;
        show(entry, 'refused', body.error || STRINGS.failed(response.status));
      },
    };
    render(entry);
    return entry;
  }

  // Its outcome came on the stream (the answer was lost): the line goes, a last retry confirms it.
  root.addEventListener('chat:edit', (e) => {
    const echoed = queue.filter((entry) => entry.kind === 'edit' && entry.li.dataset.id === e.detail.message_id
      && stored(entry.text) === e.detail.text);
    for (const entry of echoed) entry.line.hidden = true;
    if (echoed.length) retries.back();
  });
  // Deleted: nothing else will be done to it (an edit or a reaction would be refused).
  root.addEventListener('chat:delete', (e) => {
    for (const entry of [...queue]) if (entry.li.dataset.id === e.detail.message_id) forget(entry);
    for (const line of root.querySelectorAll(`li.msg[data-id="${CSS.escape(e.detail.message_id)}"] [data-pending-change]`)) {
      line.remove();
    }
  });
  root.addEventListener('chat:signed-out', () => {
    for (const line of root.querySelectorAll('[data-pending-change]')) line.remove();
  });

  return {
    /** Wait on the message (after a failed attempt, or behind the others when ``outcome`` is null). */
    add(change, outcome) { retries.add(entryOf(change), outcome); },
    /** Still unanswered: shown as saving, its attempt carried on here. */
    carry(change, inflight) { retries.carry(entryOf(change), inflight); },
    busy: () => queue.length > 0,
  };
}
