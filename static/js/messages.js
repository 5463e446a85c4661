// MessageList: renders messages in id order, once each, with textContent only.
import { compareIds } from './ids.js';
import { localTime } from './times.js';

export function MessageList(el, root) {
  const list = el.querySelector('[data-messages]');
  const jump = el.querySelector('[data-jump]');
  const me = () => root.dataset.me || '';
  const seen = new Set(Array.from(list.children, (li) => li.dataset.id));

  const atBottom = () => el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  const toBottom = () => { el.scrollTop = el.scrollHeight; jump.hidden = true; };

  function render(message) {
    const li = document.createElement('li');
    li.className = 'msg' + (message.user === me() ? ' own' : '');
    li.dataset.id = message.id;
    const who = document.createElement('span');
    who.className = 'who';
    who.dir = 'auto';
    who.textContent = message.user;
    const time = document.createElement('time');
    time.dateTime = new Date(message.ts).toISOString();
    time.dataset.ts = message.ts;
    time.textContent = localTime(message.ts);
    const text = document.createElement('p');
    text.className = 'text';
    text.dir = 'auto';
    text.textContent = message.text;
    li.append(who, ' ', time, text);
    return li;
  }

  // Insert in id order: usually at the end, but a sent message's echo can race the stream.
  function insert(message) {
    if (seen.has(message.id)) return false;
    seen.add(message.id);
    let after = list.lastElementChild;
    while (after && compareIds(after.dataset.id, message.id) > 0) after = after.previousElementSibling;
    const li = render(message);
    if (after) after.after(li); else list.prepend(li);
    return true;
  }

  root.addEventListener('chat:message', (e) => {
    const stick = atBottom();
    if (!insert(e.detail.message)) return;
    if (stick || e.detail.message.user === me()) toBottom();
    else jump.hidden = false;
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
