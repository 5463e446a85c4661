// Show every server-rendered <time data-ts> in the reader's own time zone: a message's time of
// day (its day is in the log's day separators), a room's last activity as date and time.
const clock = new Intl.DateTimeFormat(undefined, { timeStyle: 'short' });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function localTime(ms) {
  return clock.format(new Date(Number(ms)));
}

export function fullTime(ms) {
  return full.format(new Date(Number(ms)));
}

export function LocalTimes(root) {
  for (const el of root.querySelectorAll('time[data-ts]')) {
    const when = new Date(Number(el.dataset.ts));
    el.textContent = el.dataset.style === 'datetime' ? full.format(when) : clock.format(when);
    if (el.dataset.style !== 'datetime') el.title = full.format(when);
  }
}
