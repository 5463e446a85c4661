// Show every server-rendered <time data-ts> in the reader's own time zone and language: a
// message's time of day (its day is in the log's day separators), a room's last activity as
// "3 minutes ago" (data-style="relative", kept current) or as date and time (data-style="datetime").
import { locales } from './i18n.js';

const clock = new Intl.DateTimeFormat(locales, { timeStyle: 'short' });
const full = new Intl.DateTimeFormat(locales, { dateStyle: 'medium', timeStyle: 'short' });
const relative = new Intl.RelativeTimeFormat(locales, { numeric: 'auto' });
const UNITS = [['year', 365 * 86400], ['month', 30 * 86400], ['week', 7 * 86400], ['day', 86400],
  ['hour', 3600], ['minute', 60], ['second', 1]];

export function localTime(ms) {
  return clock.format(new Date(Number(ms)));
}

export function fullTime(ms) {
  return full.format(new Date(Number(ms)));
}

/** "3 minutes ago" / "3分钟前" for a time ``ms`` before now (the largest unit that fits). */
export function ago(ms, now = Date.now()) {
  const seconds = Math.min(0, (Number(ms) - now) / 1000);
  for (const [unit, size] of UNITS) {
    if (-seconds >= size || unit === 'second') return relative.format(Math.round(seconds / size), unit);
  }
  return '';
}

function show(el) {
  const when = new Date(Number(el.dataset.ts));
  if (el.dataset.style === 'relative') el.textContent = ago(when.getTime());
  else el.textContent = el.dataset.style === 'datetime' ? full.format(when) : clock.format(when);
  if (el.dataset.style !== 'datetime') el.title = full.format(when);
}

export function LocalTimes(root) {
  const all = root.querySelectorAll('time[data-ts]');
  all.forEach(show);
  if (Array.from(all).some((el) => el.dataset.style === 'relative')) {
    setInterval(() => root.querySelectorAll('time[data-style=relative]').forEach(show), 30000);
  }
}
