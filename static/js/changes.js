// Changes: a message's later life on the page. Edits, deletions and reactions arrive on
// the stream as their own events; the actions menu under each message is plain forms (they work
// without JavaScript), sent here with fetch to the JSON API and applied at once. Applying a
// change twice (the answer, then the stream's event) shows the same thing: it is idempotent.
import { t } from './i18n.js';
import { fold } from './fold.js';
import { compareIds, newKey } from './ids.js';
import { setLinkedText } from './links.js';
import { stored } from './pending.js';
import { SHOW_AFTER_MS } from './retries.js';
import { UnsavedChanges } from './unsaved.js';

const QUOTE_CHARS = 120;  // app/rooms/messages.py quote(): the first line, cut to this
const STRINGS = {
  edited: t('(edited)'),
  deleted: t('message deleted'),
  failed: (status) => t('That did not work ({status}).', { status }),
  pickEmoji: t('Type or paste an emoji first.'),
};

// A reply's quote of a text: its first line, cut as the server cuts it.
const firstLine = (text) => {
  const line = [...(text || '').split('\n', 1)[0]];
  return line.length > QUOTE_CHARS ? line.slice(0, QUOTE_CHARS - 1).join('') + '…' : line.join('');
};

// The quote a reply shows of what it answers ({id, user, text, deleted?}), a link to it.
export function showQuote(li, quote, root) {
  const a = document.createElement('a');
  a.className = 'quote' + (quote.deleted ? ' gone' : '');
  a.dataset.quote = '';
  a.dataset.replyTo = quote.id;
  const url = new URL(location.pathname, location.href);
  url.searchParams.set('at', quote.id);
  url.hash = `m-${quote.id}`;
  a.href = url.pathname + url.search + url.hash;
  const user = document.createElement('span');
  user.className = 'quote-user';
  user.dir = 'auto';
  user.textContent = quote.user;
  const text = document.createElement('span');
  text.className = 'quote-text';
  text.dir = 'auto';
  text.textContent = quote.deleted ? STRINGS.deleted : quote.text;
  a.append(user, ' ', text);
  li.querySelector('.text').before(a);
}

const own = (li, root) => !!root.dataset.myUid && li.dataset.uid === root.dataset.myUid;
const editable = (li, root) => Date.now() - Number(li.dataset.ts) < Number(root.dataset.editWindowMs || 0);

// The version an edit of the message starts from: the edit form's base_edited_ts (the server's
// check, 409 edit_conflict, that nothing edited elsewhere since is overwritten). It follows the
// text in the form's box: set when the box is given the stored text, kept while one types.
const setBase = (li, editedTs) => {
  const base = li.querySelector('form[data-edit] [data-base-edited-ts]');
  if (base) base.value = String(Number(editedTs) || 0);
};

// The message's text is now ``text``, marked "(edited)"; ``editedTs``: its edited_ts (an older
// one than the page has, an event late on the stream, leaves the version as it is).
export function showEdit(li, text, editedTs) {
  if (li.classList.contains('deleted')) return;
  if (Number(editedTs) > Number(li.dataset.editedTs || 0)) li.dataset.editedTs = editedTs;
  const p = li.querySelector('.text');
  if (p) setLinkedText(p, text);
  if (!li.querySelector('[data-edited]')) {
    const mark = document.createElement('span');
    mark.className = 'edited';
    mark.dataset.edited = '';
    mark.textContent = STRINGS.edited;
    li.querySelector('time').after(' ', mark);
  }
  const box = li.querySelector('form[data-edit] textarea');
  if (box && document.activeElement !== box) {  // not while one types: that edit starts from what was there
    box.value = text;
    setBase(li, li.dataset.editedTs);
  }
}

// An edit's mentions replace the message's: the highlight follows them, and the person it
// newly mentions hears of it as of a new mention (``chat:edit-mentions-me``; reading.js notifies).
function showMentions(li, edit, root) {
  if (li.classList.contains('deleted') || !Array.isArray(edit.mentions)) return;
  const me = fold(root.dataset.me || '');
  const mine = !!me && edit.mentions.some((name) => fold(name) === me);
  const was = li.classList.contains('mentions-me');
  li.classList.toggle('mentions-me', mine);
  if (mine && !was && edit.live && fold(edit.user || '') !== me) {  // not a catch-up's
    const detail = { room: edit.room, user: edit.user, text: edit.text, id: edit.message_id };
    root.dispatchEvent(new CustomEvent('chat:edit-mentions-me', { detail, bubbles: true }));
  }
}

// The message is gone: "message deleted" in its place, nothing to act on.
export function showDeleted(li) {
  li.classList.add('deleted');
  for (const part of li.querySelectorAll('[data-edited], [data-actions], [data-reactions], [data-quote]')) part.remove();
  const p = li.querySelector('.text');
  if (p) {
    p.className = 'text gone';
    p.dataset.gone = '';
    p.removeAttribute('dir');
    p.textContent = STRINGS.deleted;
  }
}

const reactionsUrl = (root, li) => {
  const url = new URL(root.dataset.historyUrl, location.href);
  url.pathname += `/${encodeURIComponent(li.dataset.id)}/reactions`;
  return url;
};
const csrfToken = () => document.querySelector('input[name=csrf_token]')?.value || '';

// Draw a message's reactions (``{emoji: {count, users, uids}}``) the way the server does (_log.html):
// each a form that toggles it, pressed when this person (by uid: a name can change hands) is
// among those who reacted; the counts alone for someone who may not react (data-read-only: an
// administrator in a private room they are no member of).
export function showReactions(li, reactions, root) {
  let bar = li.querySelector('[data-reactions]');
  if (!bar) {
    bar = document.createElement('div');
    bar.className = 'reactions';
    bar.dataset.reactions = '';
    li.querySelector('.text').after(bar);
  }
  const me = root.dataset.me || '';
  const reacts = !!me && !('readOnly' in root.dataset);
  const myUid = root.dataset.myUid || '';
  const entries = Object.entries(reactions || {});
  bar.replaceChildren(...entries.map(([emoji, { count, users, uids }]) => {
    const mine = !!me && !!myUid && (uids || []).includes(myUid);
    const chip = document.createElement(reacts ? 'button' : 'span');
    chip.className = 'chip' + (mine ? ' mine' : '');
    chip.title = users.join(', ');
    chip.dataset.emoji = emoji;
    const number = document.createElement('span');
    number.className = 'count';
    number.textContent = count;
    chip.append(emoji, ' ', number);
    if (!reacts) return chip;
    chip.type = 'submit';
    chip.setAttribute('aria-pressed', String(mine));
    const form = document.createElement('form');
    form.method = 'post';
    form.action = reactionsUrl(root, li).pathname;
    form.dataset.reaction = '';
    for (const [name, value] of [['csrf_token', csrfToken()], ['emoji', emoji], ['on', mine ? '0' : '1']]) {
      const input = document.createElement('input');
      input.type = 'hidden';
      input.name = name;
      input.value = value;
      form.append(input);
    }
    form.append(chip);
    return form;
  }));
  bar.hidden = entries.length === 0;
}

// Give a message rendered live the menu the server renders under each message.
export function addActions(li, root) {
  const template = document.querySelector('template[data-actions]');
  if (!template || li.classList.contains('deleted') || li.querySelector('[data-actions]')) return;
  const menu = template.content.firstElementChild.cloneNode(true);
  const named = ['action', 'id', 'for', 'href', 'aria-labelledby'];
  for (const el of menu.querySelectorAll(named.map((name) => `[${name}]`).join(', '))) {
    for (const name of named) {
      if (el.hasAttribute(name)) el.setAttribute(name, el.getAttribute(name).replace('__ID__', li.dataset.id));
    }
  }
  const text = li.querySelector('.text');
  const box = menu.querySelector('form[data-edit] textarea');
  if (box) box.value = text ? text.textContent : '';
  li.append(menu);
  setBase(li, li.dataset.editedTs);
  fitActions(li, root);
}

// "Delete message" asks first ("Delete this message? Cancel / Yes, delete it", in the menu: a
// mis-tap deletes nothing) or, with ``asking`` false, puts the button back. Focus goes to the
// safe choice, Cancel, then back to the button; ``quietly`` leaves focus alone (a menu closing).
function askDelete(form, asking, quietly = false) {
  const start = form.querySelector('[data-delete-ask]');
  const question = form.querySelector('[data-delete-confirm]');
  if (!start || !question) return false;
  start.hidden = asking;
  question.hidden = !asking;
  if (!quietly) (asking ? question.querySelector('[data-delete-cancel]') : start).focus();
  if (asking) question.scrollIntoView({ block: 'nearest' });  // the menu may run below the log's edge
  return true;
}

// Focus where it was, near the message, after an action (not the page's top, where a disabled or
// removed button leaves it): the button if still shown, else the closed menu's "⋯", else the
// message itself (a deleted one has no menu).
function keepFocus(li, button) {
  const menu = li.querySelector('[data-actions]');
  if (button?.isConnected && button.getClientRects().length) button.focus();  // shown: not in a closed menu
  else if (menu?.isConnected && !menu.open) menu.querySelector('summary').focus();
  else { li.tabIndex = -1; li.focus({ preventScroll: true }); }
}

// Show only what this person may do with the message now.
function fitActions(li, root) {
  const menu = li.querySelector('[data-actions]');
  if (!menu) return;
  const mine = own(li, root);
  // A room's moderators (data-moderates) keep the delete form on anyone's message.
  const keep = (form) => 'moderates' in root.dataset && form.matches('[data-delete]');
  if (!mine) for (const form of menu.querySelectorAll('[data-own-only]')) if (!keep(form)) form.remove();
  const edit = menu.querySelector('form[data-edit]');
  if (edit && mine) edit.hidden = !editable(li, root);
  menu.hidden = !menu.querySelector('form:not([hidden]), [data-always]');
}

export function Changes(root) {
  const list = root.querySelector('[data-messages]');
  const find = (id) => list.querySelector(`li.msg[data-id="${CSS.escape(id)}"]`);

  const quotesOf = (id) => list.querySelectorAll(`[data-quote][data-reply-to="${CSS.escape(id)}"]`);
  root.addEventListener('chat:edit', (e) => {
    const li = find(e.detail.message_id);
    if (li) {
      showEdit(li, e.detail.text, e.detail.edited_ts);
      showMentions(li, e.detail, root);
    }
    for (const q of quotesOf(e.detail.message_id)) q.querySelector('.quote-text').textContent = firstLine(e.detail.text);
  });
  root.addEventListener('chat:delete', (e) => {
    const li = find(e.detail.message_id);
    if (li) showDeleted(li);
    for (const q of quotesOf(e.detail.message_id)) {
      q.classList.add('gone');
      q.querySelector('.quote-text').textContent = STRINGS.deleted;
    }
  });
  root.addEventListener('chat:reaction', (e) => {
    const li = find(e.detail.message_id);
    if (li && !li.classList.contains('deleted')) showReactions(li, e.detail.reactions, root);
  });

  // The menu's own state: the edit window may have closed since the page was drawn.
  list.addEventListener('toggle', (e) => {
    if (!e.target.matches('[data-actions]')) return;
    if (e.target.open) {
      fitActions(e.target.closest('li.msg'), root);
      // On the last messages of a phone's short log the menu opened below its edge, out of sight.
      e.target.querySelector('.menu')?.scrollIntoView({ block: 'nearest' });
    } else for (const form of e.target.querySelectorAll('form[data-delete]')) askDelete(form, false, true);
  }, true);
  list.addEventListener('click', (e) => {
    const cancel = e.target.closest('[data-delete-cancel]');
    if (cancel) askDelete(cancel.closest('form'), false);
  });
  list.addEventListener('keydown', (e) => {  // Escape answers the question "no"
    const question = e.target.closest('[data-delete-confirm]');
    if (e.key === 'Escape' && question) { e.preventDefault(); askDelete(question.closest('form'), false); }
  });

  // The texts this page sent as edits of each message (by id), kept with a waiting edit across a
  // reload (its ``mine``): an edit whose answer was lost may have been stored, and the page's next
  // edit, starting from the version before it, is then refused as "changed elsewhere" by its own.
  const sentHere = new Map();
  const remember = (id, texts) => {
    if (!sentHere.has(id)) sentHere.set(id, new Set());
    for (const text of texts) sentHere.get(id).add(stored(text));
  };

  // Do a change: {li, kind, method, url, body?} (its CSRF token the page's now: a retry may come
  // after the session's token was refreshed).
  async function send(change, signal) {
    for (let again = 0; ; again += 1) {
      const headers = { Accept: 'application/json', 'X-CSRF-Token': csrfToken() };
      if (change.body) headers['Content-Type'] = 'application/json';
      if (change.key) headers['Idempotency-Key'] = change.key;  // "Don't save" withdraws it by this
      const response = await fetch(change.url, { method: change.method, headers, body: change.body, signal });
      const body = response.status === 204 ? {} : await response.json().catch(() => ({}));
      if (signal.aborted) throw new Error('timed out');  // while reading the answer
      // "Changed elsewhere", but to a text this page sent (its own earlier edit, answer lost): no
      // one else's text is overwritten; sent again from that version (the 409 says which). Only
      // a few times: someone editing it elsewhere meanwhile gets the refusal.
      const own = change.kind === 'edit' && response.status === 409 && body.code === 'edit_conflict'
        && typeof body.text === 'string' && Number.isSafeInteger(body.edited_ts)
        && !!sentHere.get(change.li.dataset.id)?.has(body.text);
      if (!own || again >= 2) return { response, body };
      change.body = JSON.stringify({ ...JSON.parse(change.body), base_edited_ts: body.edited_ts });
    }
  }
  // What the server answered to a change, on its message.
  function done(change, body) {
    const li = change.li;
    if ('away' in li.dataset) return;  // a message this page does not show (unsaved.js)
    if (change.kind === 'delete') showDeleted(li);
    else if (change.kind === 'reaction') { if (body.reactions && !li.classList.contains('deleted')) showReactions(li, body.reactions, root); }
    else if (body.text !== undefined) {
      showEdit(li, body.text, body.edited_ts);
      setBase(li, li.dataset.editedTs);  // this page's own edit is the version to start from
    }
  }
  // Edits, deletions and reactions whose outcome is unknown wait on their message and are sent
  // again (unsaved.js), with the posts' timeout.
  const timeoutMs = Number(root.dataset.postTimeoutMs) || 12000;
  const kept = (change) => { if (change.kind === 'edit') remember(change.li.dataset.id, change.mine || []); };
  const unsaved = UnsavedChanges(root, { timeoutMs, send, done, kept });
  const closeMenu = (li) => li.querySelector('[data-actions]')?.removeAttribute('open');

  list.addEventListener('submit', async (e) => {
    const form = e.target;
    const li = form.closest('li.msg');
    if (!li || !form.closest('[data-actions], [data-reactions]')) return;
    e.preventDefault();
    const error = li.querySelector('[data-action-error]');
    const say = (message) => {
      if (!error) return;
      error.textContent = message;
      error.hidden = !message;
    };
    const url = new URL(root.dataset.historyUrl, location.href);
    url.pathname += `/${encodeURIComponent(li.dataset.id)}`;
    let change;
    if (form.matches('[data-edit]')) {
      const text = form.querySelector('textarea').value;
      // The version it started from goes with it, and with every retry of it: an edit that
      // waited offline while the same message was edited elsewhere is refused, not stored over it.
      const base = form.querySelector('[data-base-edited-ts]');
      const fields = base ? { text, base_edited_ts: Number(base.value) || 0 } : { text };
      remember(li.dataset.id, [text]);
      change = { li, kind: 'edit', method: 'PATCH', text, body: JSON.stringify(fields),
                 mine: [...sentHere.get(li.dataset.id)] };
    } else if (form.matches('[data-delete]')) {
      if (e.submitter?.name !== 'confirm' && askDelete(form, true)) return;  // not yet: ask
      change = { li, kind: 'delete', method: 'DELETE' };
    } else if (form.matches('[data-react], [data-reaction]')) {
      const emoji = (e.submitter?.name === 'emoji' ? e.submitter.value : form.elements.emoji?.value || '').trim();
      if (!emoji) { say(STRINGS.pickEmoji); return; }
      const on = form.elements.on ? form.elements.on.value === '1'
        : !li.querySelector(`[data-reactions] .chip.mine[data-emoji="${CSS.escape(emoji)}"]`);
      url.pathname += `/reactions/${encodeURIComponent(emoji)}`;
      change = { li, kind: 'reaction', method: on ? 'PUT' : 'DELETE', emoji };
    } else {
      return;
    }
    change.url = url.href;
    change.key = newKey();
    // A refusal of an earlier one of the same kind is answered by this one.
    for (const line of li.querySelectorAll(`[data-pending-change="${change.kind}"][data-state=refused]`)) line.remove();
    const button = e.submitter || form.querySelector('button[type=submit]');
    const focused = li.contains(document.activeElement);  // disabling the button drops its focus
    const settled = () => { if (focused && !li.contains(document.activeElement)) keepFocus(li, button); };
    say('');
    // Its outcome unknown (no answer, a 5xx): it waits on the message, and the menu closes (it
    // covered the messages below, their pending posts' buttons too); the typed edit stays in both.
    const wait = (outcome) => {
      unsaved.add(change, outcome);
      closeMenu(li);
      settled();
    };
    if (unsaved.busy()) { wait(null); return; }  // behind the others, in order
    if (button) button.disabled = true;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    const attempt = send(change, abort.signal);
    let carried = false;  // no answer yet after a moment: shown as saving, carried on there
    const carry = setTimeout(() => {
      carried = true;
      if (button) button.disabled = false;
      unsaved.carry(change, { promise: attempt, abort });
      closeMenu(li);
      settled();
    }, SHOW_AFTER_MS);
    try {
      const { response, body } = await attempt;
      if (carried) return;
      if (response.status >= 500 || (response.status === 429 && !body.error)) { wait({ response }); return; }
      if (!response.ok) {
        say(body.error || STRINGS.failed(response.status));
        // Edited elsewhere: the typed text stays in the box; saved again, after a look at the
        // message as the page shows it now, it is meant to replace that.
        if (body.code === 'edit_conflict') setBase(li, li.dataset.editedTs);
        return;
      }
      done(change, body);
      if (change.kind === 'reaction' && form.elements.emoji?.type === 'text') form.elements.emoji.value = '';
      if (change.kind !== 'delete') closeMenu(li);
    } catch (err) {
      if (carried) return;
      // Not reached, or no answer: perhaps done. It waits, and the stream, on the same path, may
      // be as dead: have it checked (the status says "reconnecting…" until it proves itself).
      wait({});
      root.dispatchEvent(new CustomEvent('chat:check', { detail: {}, bubbles: true }));
    } finally {
      clearTimeout(carry);
      clearTimeout(timer);
      if (!carried) {
        if (button) button.disabled = false;
        settled();
      }
    }
  });

  // Reply: the composer answers this message until it is sent or cancelled.
  const composer = root.querySelector('form[data-form][data-kind=message]');
  const replying = composer?.querySelector('[data-replying]');
  function replyTo(li) {
    if (!replying) return;
    replying.querySelector('[data-replying-id]').value = li ? li.dataset.id : '';
    replying.querySelector('[data-replying-user]').textContent = li ? li.dataset.user : '';
    replying.querySelector('[data-replying-text]').textContent = li ? firstLine(li.querySelector('.text').textContent) : '';
    replying.hidden = !li;
    if (li) composer.querySelector('textarea[name=text]').focus();
  }
  replying?.querySelector('[data-replying-cancel]').addEventListener('click', (e) => { e.preventDefault(); replyTo(null); });
  // A post not sent, put back in the composer (pending.js): it answers what it answered (older
  // history loaded up to it if need be), unless the composer is replying to something else now
  // (that is kept) or the message was deleted since (a reply to it would be refused).
  root.addEventListener('chat:reply-to', async (e) => {
    if (!replying || !replying.hidden) return;
    const li = find(e.detail.id) || await reveal(e.detail.id);
    if (li && !li.classList.contains('deleted') && replying.hidden) replyTo(li);
  });
  root.addEventListener('chat:message', (e) => {  // one's own reply was stored: the composer is free again
    if (!e.detail.live && !e.detail.retried && e.detail.message.reply_to) replyTo(null);  // not a pending one's
  });

  // A quote leads to what it answers: here if shown, else after loading older pages up to it.
  async function reveal(id) {
    for (let pages = 0; pages < 20; pages += 1) {
      const shown = find(id);
      if (shown) return shown;
      const oldest = list.querySelector('li.msg');
      if (!oldest || compareIds(id, oldest.dataset.id) > 0) return null;  // it is not in the history
      const url = new URL(root.dataset.historyUrl, location.href);
      url.searchParams.set('before', oldest.dataset.id);
      url.searchParams.set('limit', '200');
      const response = await fetch(url, { headers: { Accept: 'application/json' } });
      if (!response.ok) return null;
      const page = await response.json();
      root.dispatchEvent(new CustomEvent('chat:older', { detail: page, bubbles: true }));
      if (!page.more) {
        root.querySelector('[data-older]')?.parentElement.setAttribute('hidden', '');
        return find(id);
      }
    }
    return null;
  }

  list.addEventListener('click', async (e) => {
    const reply = e.target.closest('[data-reply]');
    if (reply && composer) {
      e.preventDefault();
      const li = reply.closest('li.msg');
      li.querySelector('[data-actions]')?.removeAttribute('open');
      replyTo(li);
      return;
    }
    const quote = e.target.closest('[data-quote]');
    if (!quote) return;
    e.preventDefault();
    const target = await reveal(quote.dataset.replyTo).catch(() => null);
    if (!target) { location.href = quote.href; return; }  // the page around it, from the server
    target.scrollIntoView({ block: 'center' });
    target.classList.remove('flash');
    void target.offsetWidth;  // restart the animation
    target.classList.add('flash');
  });

  for (const li of list.querySelectorAll('li.msg')) fitActions(li, root);
}
