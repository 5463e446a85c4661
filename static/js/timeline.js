// How a log is laid out: day separators ("Today", "Yesterday", a date) and runs of one author's
// messages, whose later entries get the class "cont" (author and time shown once). The server
// lays out a page by the same rule (app/rooms/timeline.py) in UTC; here it is the reader's time zone.
import { locales, t } from './i18n.js';

const STRINGS = { today: t('Today'), yesterday: t('Yesterday') };
const dateLabel = new Intl.DateTimeFormat(locales,
  { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });

const pad = (n) => String(n).padStart(2, '0');

export function dayKey(ms) {
  const d = new Date(Number(ms));
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

function dayLabel(key, ms) {
  const now = new Date();
  if (key === dayKey(now)) return STRINGS.today;
  now.setDate(now.getDate() - 1);
  if (key === dayKey(now)) return STRINGS.yesterday;
  return dateLabel.format(new Date(Number(ms)));
}

function separator(key, ms) {
  const li = document.createElement('li');
  li.className = 'day';
  li.dataset.kind = 'day';
  li.dataset.day = key;
  const span = document.createElement('span');
  span.textContent = dayLabel(key, ms);
  li.append(span);
  return li;
}

// Bring the list's separators and runs in line with its entries (li with data-ts), touching only
// what changed: a screen reader hears an added separator once, not on every message.
export function arrange(list, groupMs) {
  let prev = null;     // the last entry seen: { day, ts, kind, user }
  let pending = null;  // a separator met and not yet matched to the entry after it
  for (const li of Array.from(list.children)) {
    if (li.dataset.kind === 'day') {
      if (pending) pending.remove();
      pending = li;
      continue;
    }
    const ts = Number(li.dataset.ts);
    const day = dayKey(ts);
    const newDay = !prev || prev.day !== day;
    if (newDay && pending && pending.dataset.day === day) {
      const label = dayLabel(day, ts);
      if (pending.textContent !== label) pending.firstElementChild.textContent = label;
    } else {
      if (pending) pending.remove();
      if (newDay) li.before(separator(day, ts));
    }
    pending = null;
    if (li.classList.contains('msg')) {
      li.classList.toggle('cont', !newDay && prev.kind === li.dataset.kind
        && prev.user === li.dataset.user && ts - prev.ts < groupMs);
    }
    prev = { day, ts, kind: li.classList.contains('msg') ? li.dataset.kind : 'other', user: li.dataset.user };
  }
  if (pending) pending.remove();
}
