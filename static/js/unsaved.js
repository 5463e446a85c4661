// UnsavedChanges: edits, deletions and reactions whose outcome is unknown (no answer in time, the
// connection failed, a 5xx). Each stays on its message, under its text, as "Saving…" / "Not saved
// yet — will retry." (an edit with the text typed), with "Retry now" and "Don't save", and is sent
// again by the posts' engine (retries.js) until the server answers: an edit made while the network
// was down was dropped, its "could not reach the server" erased once the stream was back.
// Sending one again is safe: an edit sets the text (the same text again changes nothing; it carries
// the version it started from, so one that waited while the message was edited elsewhere is
// refused, 409 edit_conflict, and shown so with its text, never stored over the newer), deleting
// a deleted message is 204, a reaction is put or taken back (docs/api.md).
//
// "Don't save" on one already tried withdraws it by its idempotency key, as "Don't send" does a
// post (pending.js): a stalled network may still deliver the attempt it holds, and a deletion the
// person called off then deleted the message. It says "Not saving it — checking…" until the
// server says nothing was done, and nothing will be (the line goes), or that it had been done.
//
// As posts are (pending.js), they are kept in the tab (sessionStorage, per room page) for their
// writer: a reload sends what was waiting, with the same body (an edit's base_edited_ts too),
// instead of quietly undoing a deletion or losing a long edit; signing out forgets them
// (session.js forgetWriter). One whose message the reloaded page does not show (further back
// than the page's messages) is still sent: the person asked for it and the server needs no
// page to do it. It waits on a stand-in line at the end of the log that says so, and goes once
// done (refused, its sentence stays there until dismissed).
import { expandable } from './expand.js';
import { t } from './i18n.js';
import { stored } from './pending.js';
import { Retries, appendControls, sayWithdrawn, showControls } from './retries.js';

// A reaction's sentences name it (its emoji alone on the line read as one applied: helper-81),
// and a reaction taken back ('unreact', a DELETE) is said to be taken back, not saved.
const STRINGS = {
  queued: {
    edit: t('Edit waiting to be saved…'),
    delete: t('Waiting to delete…'),
    reaction: (emoji) => t('Your reaction {emoji} is waiting to be saved…', { emoji }),
    unreact: (emoji) => t('Waiting to take back your reaction {emoji}…', { emoji }),
  },
  sending: {
    edit: t('Saving your edit…'),
    delete: t('Deleting…'),
    reaction: (emoji) => t('Saving your reaction {emoji}…', { emoji }),
    unreact: (emoji) => t('Taking back your reaction {emoji}…', { emoji }),
  },
  waiting: {
    edit: t('Edit not saved yet — will retry.'),
    delete: t('Not deleted yet — will retry.'),
    reaction: (emoji) => t('Your reaction {emoji} is not saved yet — will retry.', { emoji }),
    unreact: (emoji) => t('Your reaction {emoji} is not taken back yet — will retry.', { emoji }),
  },
  retry: t('Retry now'),
  // Calling off a reaction taken back keeps the reaction: said so, not "don't save".
  discard: { other: t("Don't save"), unreact: t('Keep it') },
  dismiss: t('Dismiss'),
  withdrawing: {
    other: t('Not saving it — checking it was not saved…'),
    unreact: t('Keeping it — checking it was not taken back…'),
  },
  withdrawWaiting: {
    other: t('Not saving it — will check again shortly that it was not saved.'),
    unreact: t('Keeping it — will check again shortly that it was not taken back.'),
  },
  alreadySaved: {
    other: t('It had already been saved before you chose not to save it.'),
    unreact: t('It had already been taken back before you chose to keep it.'),
  },
  withdrawn: {
    edit: t('Your edit was not saved.'),
    delete: t('The message was not deleted.'),
    reaction: (emoji) => t('Your reaction {emoji} was not saved.', { emoji }),
    unreact: (emoji) => t('Your reaction {emoji} was not taken back.', { emoji }),
  },
  failed: (status) => t('That did not work ({status}).', { status }),
  away: t('Your change to a message further back, not shown on this page:'),
};

// The sentence of ``strings`` (one of STRINGS' groups: by kind, else ``other``) for a change.
function said(strings, { kind, method, emoji }) {
  const words = strings[kind === 'reaction' && method === 'DELETE' ? 'unreact' : kind] ?? strings.other;
  return typeof words === 'function' ? words(emoji) : words;
}

// The tab's copy of a room page's waiting changes; signout.js counts those of other pages.
export const STORED = 'ripple-changes:';
export const storageKey = (root) => STORED + new URL(root.dataset.historyUrl, location.href).pathname;
// One waiting change, the same in every tab that has it (a duplicated tab copies them): a
// reaction put and then taken back both wait, and two tabs' different edits of one message are two.
export const changeKey = (id, { kind, method, emoji, text }) => [id, kind, method, emoji || '']
  .concat(kind === 'edit' ? [stored(text || '')] : []).join(' ');

/**
 * root: the room's element; send(change, signal): do it, resolve to {response, body} or throw;
 * done(change, body): show what the server answered; kept(change): a change kept by a reload,
 * before it is sent again. A change: {li, kind: 'edit' | 'delete' | 'reaction', method, url,
 * body?, text?, emoji?, mine?} (mine: an edit's texts this page sent for the message, kept with it).
 * Returns { add(change, outcome), carry(change, inflight), busy() }.
 */
export function UnsavedChanges(root, { timeoutMs, send, done, kept = () => {} }) {
  const retries = Retries(root, { timeoutMs, onChange: save });
  const queue = retries.queue;
  const key = storageKey(root);
  const FIELDS = ['kind', 'method', 'url', 'body', 'text', 'emoji', 'mine', 'key', 'tried', 'withdrawing'];

  function save() {
    try {
      const changes = queue.map((entry) => Object.fromEntries([['id', entry.li.dataset.id],
        ...FIELDS.filter((name) => entry[name] !== undefined).map((name) => [name, entry[name]])]));
      if (changes.length) sessionStorage.setItem(key, JSON.stringify({ writer: root.dataset.me, changes }));
      else sessionStorage.removeItem(key);
      for (const entry of queue) delete entry.line.dataset.unkept;
    } catch (err) {
      // Storage off or full: kept on this page only, and a reload would lose them (leaving.js
      // LeaveGuard asks first, as for every one waiting).
      for (const entry of queue) entry.line.dataset.unkept = '';
    }
  }

  // The message of a kept change, or (not on this page) a stand-in for it at the end of the log.
  function messageOf(id) {
    const shown = root.querySelector(`[data-messages] li.msg[data-id="${CSS.escape(id)}"]`);
    if (shown) return shown;
    let away = root.querySelector('[data-changes-away]');
    if (!away) {
      away = document.createElement('ol');
      away.className = 'messages changes-away';
      away.dataset.changesAway = '';
      away.setAttribute('aria-live', 'polite');
      root.querySelector('[data-messages]').after(away);
    }
    const li = document.createElement('li');
    li.className = 'change-away';
    li.dataset.id = id;
    li.dataset.away = '';
    const note = document.createElement('p');
    note.className = 'away-note';
    note.textContent = STRINGS.away;
    li.append(note);
    away.append(li);
    return li;
  }

  // A stand-in with nothing left waiting on it goes.
  function tidy(li) {
    if ('away' in li.dataset && !li.querySelector('[data-pending-change]')) li.remove();
  }

  function render(entry) {
    const line = document.createElement('p');
    line.className = 'pending-state pending-change';
    line.dataset.pendingChange = entry.kind;
    line.dataset.changeKey = changeKey(entry.li.dataset.id, entry);
    if (entry.kind === 'edit') {  // what was typed, to see (and copy) until it is saved
      const text = document.createElement('q');
      text.className = 'pending-text';
      text.dir = 'auto';
      text.textContent = stored(entry.text);
      expandable(text);  // cut to one line on a phone
      line.append(text, ' ');
    }
    appendControls(line, { retryLabel: STRINGS.retry, retry: () => retries.retry(),
                           discardLabel: said(STRINGS.discard, entry), discard: () => discard(entry) });
    entry.line = line;
    const menu = entry.li.querySelector('[data-actions]');
    if (menu) menu.before(line);
    else entry.li.append(line);
  }

  function show(entry, what, sentence = '') {
    let words = what === 'refused' ? sentence : said(STRINGS[what], entry);
    if (entry.withdrawing && what !== 'refused') words = said(what === 'waiting' ? STRINGS.withdrawWaiting : STRINGS.withdrawing, entry);
    entry.line.querySelector('[data-pending-status]').textContent = words;
    entry.line.dataset.state = what;
    // Refused, nothing is left to save: the line (and the text typed, to copy) goes when dismissed.
    entry.line.querySelector('[data-discard]').textContent = what === 'refused' ? STRINGS.dismiss : said(STRINGS.discard, entry);
    showControls(entry.line, what, entry.withdrawing);  // being withdrawn: asked already
  }

  function forget(entry) {
    retries.drop(entry);
    entry.line.remove();
    tidy(entry.li);
  }

  // "Don't save": one never tried (or refused) is forgotten; one tried may still be done, and is
  // withdrawn (api.withdraw_post): 200 nothing was done, and never will be; 409 already_sent:
  // it was (its event comes on the stream).
  function discard(entry) {
    if (retries.mustWithdraw(entry)) withdraw(entry);
    else forget(entry);
  }

  function withdraw(entry) {
    retries.withdraw(entry, {
      sent: () => {
        const focused = entry.line.contains(document.activeElement);
        entry.line.remove();
        tidy(entry.li);
        sayWithdrawn(root.querySelector('form[data-form][data-kind=message]'), said(STRINGS.withdrawn, entry), focused);
      },
      refused: ({ response, body }) => {
        const focused = entry.line.contains(document.activeElement);
        entry.line.hidden = false;
        if (body.code === 'already_sent') {
          if (body.message) done(entry, body.message);  // the message as it is now
          show(entry, 'refused', said(STRINGS.alreadySaved, entry));
        } else show(entry, 'refused', body.error || STRINGS.failed(response.status));
        if (focused) entry.line.querySelector('[data-discard]').focus();
      },
    });
  }

  function entryOf(change) {
    // The same message's earlier edit waiting: this one's text replaces it.
    if (change.kind === 'edit') {
      // (One being withdrawn stays: its withdrawal keeps its stalled attempt from landing later.)
      for (const other of queue.filter((e) => e.kind === 'edit' && e.li === change.li && !e.withdrawing)) forget(other);
    }
    const entry = {
      ...change,
      send: (signal) => send(entry, signal),
      show: (what) => show(entry, what),
      sent(result) { entry.line.remove(); done(entry, result.body); tidy(entry.li); },
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
    // One being withdrawn that was saved after all: its withdrawal asks at once, and says so.
    const echoed = queue.filter((entry) => entry.kind === 'edit' && entry.li.dataset.id === e.detail.message_id
      && stored(entry.text) === e.detail.text);
    for (const entry of echoed) if (!entry.withdrawing) entry.line.hidden = true;
    if (echoed.some((entry) => entry.withdrawing)) retries.retry();
    else if (echoed.length) retries.back();
  });
  // Deleted: nothing else will be done to it (an edit or a reaction would be refused).
  // One being withdrawn waits for its withdrawal's answer (a deletion called off that landed
  // first: "It had already been saved").
  root.addEventListener('chat:delete', (e) => {
    for (const entry of [...queue]) if (entry.li.dataset.id === e.detail.message_id && !entry.withdrawing) forget(entry);
    const id = CSS.escape(e.detail.message_id);
    for (const line of root.querySelectorAll(`li.msg[data-id="${id}"] [data-pending-change]:not([data-withdrawing])`)) {
      line.remove();
    }
  });
  root.addEventListener('chat:signed-out', () => {
    for (const line of root.querySelectorAll('[data-pending-change], [data-changes-away]')) line.remove();
    try { sessionStorage.removeItem(key); } catch (err) { /* storage off */ }
  });

  // Kept by a reload (or a phone that discarded the tab): its writer's changes are sent again,
  // as they were.
  try {
    const saved = JSON.parse(sessionStorage.getItem(key) || 'null');
    if (saved && saved.writer && saved.writer === root.dataset.me) {
      for (const fields of saved.changes || []) {
        if (!fields.id || !['edit', 'delete', 'reaction'].includes(fields.kind)) continue;
        const change = { li: messageOf(fields.id) };
        for (const name of FIELDS) if (fields[name] !== undefined) change[name] = fields[name];
        kept(change);
        if (change.tried === undefined) change.tried = true;  // kept by an older page: it may be done
        const entry = entryOf(change);
        if (change.withdrawing) {  // still not to be done: withdrawn, or (no way to) forgotten
          if (!change.key || !retries.canWithdraw()) { forget(entry); continue; }
          withdraw(entry);
        }
        retries.add(entry, null);
      }
      save();  // without those forgotten
    } else if (saved) sessionStorage.removeItem(key);
  } catch (err) { /* storage off, or unreadable: nothing kept */ }

  return {
    /** Wait on the message (after a failed attempt, or behind the others when ``outcome`` is null). */
    add(change, outcome) { retries.add(entryOf(change), outcome); },
    /** Still unanswered: shown as saving, its attempt carried on here. */
    carry(change, inflight) { retries.carry(entryOf(change), inflight); },
    busy: () => queue.length > 0,
  };
}
