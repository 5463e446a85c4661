// Links in message text: http(s) URLs become links, nothing else becomes markup. The one rule,
// here and in app/web/links.py (keep them in step): a link starts with http:// or https:// and
// runs to the next whitespace, <, > or quote; trailing punctuation and an unmatched closing
// bracket stay text. Other schemes (javascript:, data:) are never links. Text goes in through
// text nodes only.
const URL_RE = /https?:\/\/[^\s<>"'`]+/gi;
const TRAILING = '.,;:!?*\'"';
const PAIRS = { ')': '(', ']': '[', '}': '{' };
export const REL = 'noopener noreferrer nofollow ugc';

const count = (s, ch) => s.split(ch).length - 1;

function trim(url) {
  while (url) {
    const last = url[url.length - 1];
    if (TRAILING.includes(last)) url = url.slice(0, -1);
    else if (PAIRS[last] && count(url, PAIRS[last]) < count(url, last)) url = url.slice(0, -1);
    else break;
  }
  return url;
}

/** Fill ``el`` with ``text``, its http(s) URLs as links that open in a new tab. */
export function setLinkedText(el, text) {
  const parts = [];
  let at = 0;
  for (const match of (text || '').matchAll(URL_RE)) {
    const url = trim(match[0]);
    if (url.length <= 'https://'.length) continue;
    parts.push(document.createTextNode(text.slice(at, match.index)));
    const a = document.createElement('a');
    a.href = url;
    a.rel = REL;
    a.target = '_blank';
    a.textContent = url;
    parts.push(a);
    at = match.index + url.length;
  }
  parts.push(document.createTextNode((text || '').slice(at)));
  el.replaceChildren(...parts);
}
