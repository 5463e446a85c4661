// Show every server-rendered <time data-ts> in the reader's own time zone.
const format = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function localTime(ms) {
  return format.format(new Date(Number(ms)));
}

export function LocalTimes(root) {
  for (const el of root.querySelectorAll('time[data-ts]')) el.textContent = localTime(el.dataset.ts);
}

LocalTimes(document);
