// MessageList: one log (the room's, or a conversation's direct messages) in id order, each
// message once, with textContent only; laid out in day separators and runs (timeline.js).
// The room's log also shows who joined and left, consecutive changes collapsed into one line.
import { addActions, showDeleted, showEdit, showQuote, showReactions } from './changes.js';
import { fold } from './fold.js';
import { t, tn } from './i18n.js';
import { compareIds } from './ids.js';
import { setLinkedText } from './links.js';
import { arrange } from './timeline.js';
import { fullTime, localTime } from './times.js';

const STRINGS = {
  // "ann, bob, cy, dan, eve and 35 others": a busy room's line names a few (SHOWN_NAMES).
  others: (names, n) => tn('{names} and {n} other', '{names} and {n} others', n, { names }),
  joined: (names) => t('{names} joined', { names }),
  left: (names) => t('{names} left', { names }),
  separator: ' · ',
  bot: t('bot'),
  botTitle: t('Sent by the service or a program, not a signed-in person'),
  guest: t('guest'),
  guestTitle: t('A guest: this name has no account'),
  changed: (name) => t('another {name}', { name }),
  changedTitle: t('Someone else used this name earlier in this log'),
  unseen: (n) => tn('{n} new message ↓', '{n} new messages ↓', n),
};
// Translators: what separates the names of people who joined or left ("ann, bob joined").
const NAME_SEPARATOR = t(', ');
const SHOWN_NAMES = 5;  // a join/leave line names the latest five, then counts the rest
const someNames = (who) => (who.length > SHOWN_NAMES
  ? STRINGS.others(who.slice(-SHOWN_NAMES).join(NAME_SEPARATOR), who.length - SHOWN_NAMES)
  : who.join(NAME_SEPARATOR));

// Names compare exactly as the server compares them (NFKC, case folding, TR39 skeleton: fold.js).
export const sameName = (a, b) => fold(a || '') === fold(b || '');

// The other person in a direct message (oneself in a note to self).
export const otherParty = (message, me) => (sameName(message.from, me) ? message.to : message.from);

// options.kind: 'message' (the room) or 'direct'; options.accepts(message): whether it belongs here.
export function MessageList(el, root, { kind = 'message', accepts = () => true } = {}) {
  const list = el.querySelector('[data-messages]');
  const jump = el.querySelector('[data-jump]');
  const empty = el.querySelector('[data-empty]');
  const me = () => root.dataset.me || '';
  const groupMs = Number(root.dataset.groupSeconds || 300) * 1000;
  const seen = new Set(Array.from(list.querySelectorAll('li.msg'), (li) => li.dataset.id));
  const presence = new Map();  // a collapsed join/leave line -> Map(name -> 'joined' | 'left')

  const atBottom = () => el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  let unseen = 0;  // arrived while the reader was scrolled up: the jump button counts them
  const toBottom = () => { el.scrollTop = el.scrollHeight; jump.hidden = true; unseen = 0; };
  const author = (message) => (kind === 'direct' ? message.from : message.user);

  function render(message) {
    const li = document.createElement('li');
    li.className = 'msg' + (author(message) === me() ? ' own' : '') + (kind === 'direct' ? ' direct' : '');
    if ((message.mentions || []).some((name) => sameName(name, me()))) li.classList.add('mentions-me');
    li.dataset.id = message.id;
    li.dataset.kind = kind;
    li.dataset.user = author(message);
    li.dataset.ts = message.ts;
    const who = document.createElement('span');
    who.className = 'who';
    who.dir = 'auto';
    who.textContent = author(message);
    const time = document.createElement('time');
    time.dateTime = new Date(message.ts).toISOString();
    time.dataset.ts = message.ts;
    time.textContent = localTime(message.ts);
    time.title = fullTime(message.ts);
    const text = document.createElement('p');
    text.className = 'text';
    text.dir = 'auto';
    setLinkedText(text, message.text);
    li.append(who, ' ', time, text);
    if (message.bot) {  // sent by the service or a program (publish token, CLI), not a person
      li.dataset.bot = '';
      const tag = document.createElement('span');
      tag.className = 'bot';
      tag.title = STRINGS.botTitle;
      tag.textContent = STRINGS.bot;
      who.after(' ', tag);
    }
    if (message.uid) li.dataset.uid = message.uid;
    if (message.uid && message.uid.startsWith('guest:')) who.after(' ', tag('guest', STRINGS.guest, STRINGS.guestTitle));
    if (kind === 'message') {
      li.id = `m-${message.id}`;
      if (message.deleted) showDeleted(li);
      else {
        if (message.edited_ts) showEdit(li, message.text, message.edited_ts);
        if (message.reply_to) showQuote(li, message.reply_to, root);
        if (message.reactions) showReactions(li, message.reactions, root);
        addActions(li, root);
      }
    }
    return li;
  }

  function tag(className, text, title) {
    const span = document.createElement('span');
    span.className = className;
    span.title = title;
    span.textContent = text;
    return span;
  }

  // The same name, another person (a different stable id) than its previous message here.
  function markChangedHands(li) {
    let before = li.previousElementSibling;
    while (before && !(before.dataset.user === li.dataset.user && before.dataset.uid)) {
      before = before.previousElementSibling;
    }
    if (before && li.dataset.uid && before.dataset.uid !== li.dataset.uid) {
      const mark = tag('changed', STRINGS.changed(li.dataset.user), STRINGS.changedTitle);
      mark.dataset.changed = '';
      li.querySelector('.who').after(' ', mark);
    }
  }

  // Insert in id order: usually at the end, but a sent message's echo can race the stream.
  function insert(message) {
    if (seen.has(message.id)) return false;
    seen.add(message.id);
    let after = list.lastElementChild;  // day separators are re-placed by arrange() after
    while (after && (after.dataset.kind === 'day' || compareIds(after.dataset.id, message.id) > 0)) {
      after = after.previousElementSibling;
    }
    const li = render(message);
    if (after) after.after(li); else list.prepend(li);
    markChangedHands(li);
    if (empty) empty.hidden = true;
    return true;
  }

  function added(message, own) {
    const stick = atBottom();
    if (!insert(message)) return;
    arrange(list, groupMs);
    if (stick || own) toBottom();
    else {
      unseen += 1;
      jump.textContent = STRINGS.unseen(unseen);
      jump.hidden = false;
    }
  }

  root.addEventListener(kind === 'direct' ? 'chat:direct' : 'chat:message', (e) => {
    if (accepts(e.detail.message)) added(e.detail.message, author(e.detail.message) === me());
  });

  if (kind === 'message') {
    root.addEventListener('chat:presence', (e) => {
      if (e.detail.action !== 'join' && e.detail.action !== 'leave') return;
      if (e.detail.name === me()) return;
      const stick = atBottom();
      let li = list.lastElementChild;
      if (!li || !li.classList.contains('presence')) {
        li = document.createElement('li');
        li.className = 'presence';
        li.dataset.kind = 'presence';
        li.dataset.id = `${Date.now()}-0`;  // in time order with the messages around it
        li.dataset.ts = Date.now();
        presence.set(li, new Map());
        list.append(li);
      }
      // One line for a run of comings and goings: each name once, with what it did last.
      const names = presence.get(li);
      names.delete(e.detail.name);
      names.set(e.detail.name, e.detail.action);
      const parts = ['join', 'leave'].map((action) => {
        const who = Array.from(names).filter(([, did]) => did === action).map(([name]) => name);
        if (!who.length) return '';
        return action === 'join' ? STRINGS.joined(someNames(who)) : STRINGS.left(someNames(who));
      });
      li.textContent = parts.filter(Boolean).join(STRINGS.separator);
      arrange(list, groupMs);
      if (stick) toBottom();
    });

    root.addEventListener('chat:older', (e) => {
      const height = el.scrollHeight;
      const top = el.scrollTop;
      for (const message of e.detail.messages) insert(message);
      arrange(list, groupMs);
      el.scrollTop = top + el.scrollHeight - height;  // keep the reader where they were
    });
  }

  // The log shrinks when what is around it grows (a status that wraps the header, an error
  // line in the composer, a dragged textarea): a reader who was at the bottom stays there.
  const target = list.querySelector('li.msg.target');  // a permalink's message
  let stuck = !target;
  el.addEventListener('scroll', () => { stuck = atBottom(); if (stuck) { jump.hidden = true; unseen = 0; } });
  new ResizeObserver(() => { if (stuck) toBottom(); }).observe(el);
  jump.addEventListener('click', toBottom);
  arrange(list, groupMs);  // the server laid the page out in UTC: now in the reader's time zone
  // A permalink's message in the middle; else, new since the person left: the page starts at the
  // first unread (its line shows above it); else at the bottom.
  const first = list.querySelector('li.first-unread');
  if (target) {
    target.scrollIntoView({ block: 'center' });
  } else if (first) {
    el.scrollTop = Math.max(0, first.offsetTop - 40);
    stuck = atBottom();
    jump.hidden = stuck;
  } else {
    toBottom();
  }
}
