// MessageList: renders room messages, direct messages and join/leave lines in time order,
// each once, with textContent only.
import { compareIds } from './ids.js';
import { localTime } from './times.js';

export function MessageList(el, root) {
  const list = el.querySelector('[data-messages]');
  const jump = el.querySelector('[data-jump]');
  const me = () => root.dataset.me || '';
  // Room and direct ids come from different logs: the kind is part of the identity.
  const seen = new Set(Array.from(list.children, (li) => li.dataset.kind + li.dataset.id));

  const atBottom = () => el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  const toBottom = () => { el.scrollTop = el.scrollHeight; jump.hidden = true; };

  function render(message, kind) {
    const li = document.createElement('li');
    const direct = kind === 'direct';
    const author = direct ? message.from : message.user;
    li.className = 'msg' + (author === me() ? ' own' : '') + (direct ? ' direct' : '');
    li.dataset.id = message.id;
    li.dataset.kind = kind;
    const who = document.createElement('span');
    who.className = 'who';
    who.dir = 'auto';
    who.textContent = direct ? `${message.from} → ${message.to} (direct)` : message.user;
    const time = document.createElement('time');
    time.dateTime = new Date(message.ts).toISOString();
    time.dataset.ts = message.ts;
    time.textContent = localTime(message.ts);
    const text = document.createElement('p');
    text.className = 'text';
    text.dir = 'auto';
    text.textContent = message.text;
    li.append(who, ' ', time, text);
    if (message.bot) {  // sent by the service or a program (publish token, CLI), not a person
      li.dataset.bot = '';
      const tag = document.createElement('span');
      tag.className = 'bot';
      tag.title = 'Sent by the service or a program, not a signed-in person';
      tag.textContent = 'bot';
      who.after(' ', tag);
    }
    if (direct) {
      const other = author === me() ? message.to : message.from;
      const reply = document.createElement('button');
      reply.type = 'button';
      reply.className = 'link reply';
      reply.textContent = 'Reply';
      reply.setAttribute('aria-label', `Reply to ${other} privately`);
      reply.addEventListener('click', () => root.dispatchEvent(
        new CustomEvent('chat:reply', { detail: { name: other }, bubbles: true })));
      li.append(reply);
    }
    return li;
  }

  // Insert in id order: usually at the end, but a sent message's echo can race the stream.
  function insert(message, kind = 'message') {
    if (seen.has(kind + message.id)) return false;
    seen.add(kind + message.id);
    let after = list.lastElementChild;
    while (after && compareIds(after.dataset.id, message.id) > 0) after = after.previousElementSibling;
    const li = render(message, kind);
    if (after) after.after(li); else list.prepend(li);
    return true;
  }

  root.addEventListener('chat:message', (e) => {
    const stick = atBottom();
    if (!insert(e.detail.message)) return;
    if (stick || e.detail.message.user === me()) toBottom();
    else jump.hidden = false;
  });

  root.addEventListener('chat:direct', (e) => {
    const stick = atBottom();
    if (!insert(e.detail.message, 'direct')) return;
    if (stick || e.detail.message.from === me()) toBottom();
    else jump.hidden = false;
  });

  root.addEventListener('chat:presence', (e) => {
    if (e.detail.action !== 'join' && e.detail.action !== 'leave') return;
    if (e.detail.name === me()) return;
    const stick = atBottom();
    const li = document.createElement('li');
    li.className = 'presence';
    li.dataset.kind = 'presence';
    li.dataset.id = `${Date.now()}-0`;  // in time order with the messages around it
    li.textContent = `${e.detail.name} ${e.detail.action === 'join' ? 'joined' : 'left'}`;
    list.append(li);
    if (stick) toBottom();
  });

  root.addEventListener('chat:older', (e) => {
    const height = el.scrollHeight;
    for (const message of e.detail.messages) insert(message);
    el.scrollTop += el.scrollHeight - height;  // keep the reader where they were
  });

  // The log shrinks when what is around it grows (a status that wraps the header, an error
  // line in the composer, a dragged textarea): a reader who was at the bottom stays there.
  let stuck = true;
  el.addEventListener('scroll', () => { stuck = atBottom(); if (stuck) jump.hidden = true; });
  new ResizeObserver(() => { if (stuck) toBottom(); }).observe(el);
  jump.addEventListener('click', toBottom);
  toBottom();
}
