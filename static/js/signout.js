// SignOutGuard: "Sign out" asks first while posts or changes of this person still wait to be sent
// (pending.js, unsaved.js): signing out forgets them (session.js), and a post promised as "will
// retry" was thrown away without a word. "Sign out anyway" signs out as before; "Cancel" keeps
// them. The plain form signs out at once without JavaScript (nothing waits there). Counted: what
// waits on this page, the posts and changes this tab keeps for other rooms' pages, and what the
// other open tabs of this browser have for the same person (each tab keeps its own, in its
// sessionStorage: a sign-out in one tab signs every tab out and throws theirs away too).
import { locales, t, tn } from './i18n.js';
import { newKey } from './ids.js';
import { leaveQuietly } from './leaving.js';
import { signedIn, waitingInTab } from './waiting.js';

// The tabs ask each other over this channel. Each tab says hello when it loads (and answers
// another's hello) and bye when it goes, so a tab knows which others are open: at sign-out it
// asks them and waits until every one answered (a busy background tab answers late, and a fixed
// 300 ms left its posts out and threw them away), or ASK_MS passed (a tab frozen in the
// background, or closed without a bye, is not counted). With no other tab it does not wait.
const CHANNEL = 'ripple-waiting';
const ASK_MS = 1500;
const tab = newKey();
// "3 of them are in other tabs" gave nothing to act on: the sentence names where they wait, the
// rooms with most first, at most this many (then "the rest in 2 more rooms").
const PLACES_SHOWN = 3;

// Every tab of this origin that loaded this module answers another's question with its keys.
let channel = null;
const others = new Set();  // the other tabs open now (their ids)
const asks = new Map();    // this tab's question (its id) -> its answers' handler
function knownTabsChanged() {
  // How many other tabs this tab knows of, on the page (the tests wait for it).
  document.documentElement.dataset.otherTabs = String(others.size);
}
function answerOtherTabs() {
  if (channel || !window.BroadcastChannel) return;
  channel = new BroadcastChannel(CHANNEL);
  channel.onmessage = (e) => {
    const { type, from } = e.data || {};
    if (!from || from === tab) return;
    if (type === 'bye') others.delete(from);
    else others.add(from);
    knownTabsChanged();
    if (type === 'hello') channel.postMessage({ type: 'here', from: tab, to: from });
    else if (type === 'ask') {
      // The keys (all a tab loaded before rooms were named reads), and where each waits.
      const waiting = waitingInTab(e.data.writer, { withdrawing: false });
      channel.postMessage({ type: 'answer', id: e.data.id, from: tab, keys: [...waiting.keys()],
                            places: Object.fromEntries(waiting) });
    }
    for (const onAnswer of asks.values()) onAnswer(e.data);  // an answer, or a bye of one asked
  };
  channel.postMessage({ type: 'hello', from: tab });
  knownTabsChanged();
  addEventListener('pagehide', () => channel.postMessage({ type: 'bye', from: tab }));
  // Back from the back/forward cache: open again, and the tabs open now answer the hello.
  addEventListener('pageshow', (e) => {
    if (!e.persisted) return;
    others.clear();
    knownTabsChanged();
    channel.postMessage({ type: 'hello', from: tab });
  });
}

/**
 * What the other tabs have waiting for ``writer`` (a Map of keys to where each waits), once every
 * tab known to be open answered (or went), or ASK_MS passed.
 */
function askOtherTabs(writer) {
  if (!channel || !others.size) return Promise.resolve(new Map());
  return new Promise((resolve) => {
    const id = newKey();
    const keys = new Map();
    const waiting = new Set(others);
    const finish = () => { clearTimeout(timer); asks.delete(id); resolve(keys); };
    const timer = setTimeout(finish, ASK_MS);
    asks.set(id, (message) => {
      if (message.type === 'answer' && message.id === id) {
        for (const key of message.keys) keys.set(key, message.places?.[key] || '');
        waiting.delete(message.from);
      } else if (message.type === 'bye') waiting.delete(message.from);
      if (!waiting.size) finish();
    });
    channel.postMessage({ type: 'ask', id, writer, from: tab });
  });
}

// Text with ``{name}`` in it, as nodes: ``node`` in its place (a room's name may be written
// right to left: in a <bdi> of its own it does not reorder the sentence around it).
function fill(text, name, node) {
  const [before, ...after] = text.split(`{${name}}`);
  return after.length ? [before, node, after.join(`{${name}}`)] : [text];
}

function placeName(place) {
  const name = document.createElement('bdi');
  name.textContent = place;  // '#room' or '@name', as the page writes them
  return name;
}

/**
 * "2 are in #lobby and 1 is in #技术交流." (nodes) for ``places`` (a Map of a place to how many
 * wait there); the rooms with most first, the rest counted as "the rest in 2 more rooms".
 */
function wherePlaces(places) {
  const sorted = [...places].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const shown = sorted.length > PLACES_SHOWN ? sorted.slice(0, PLACES_SHOWN - 1) : sorted;
  const items = shown.map(([place, count]) => fill(
    // Translators: {n} of the person's unsent messages or changes wait in {place}, a room ("#lobby")
    // or a direct conversation ("@ann"); one item of a list ("2 are in #lobby and 1 is in #dev").
    tn('{n} is in {place}', '{n} are in {place}', count), 'place', placeName(place)));
  if (shown.length < sorted.length) {
    // Translators: the last item of that list, when it names only the first rooms: {n} rooms more.
    items.push([tn('the rest in {n} more room', 'the rest in {n} more rooms', sorted.length - shown.length)]);
  }
  // "a, b and c" as the language lists things ("a、b和c"); each item stays nodes.
  const list = new Intl.ListFormat(locales, { type: 'conjunction' }).formatToParts(items.map((_, i) => String(i)));
  const nodes = list.flatMap((part) => (part.type === 'element' ? items[Number(part.value)] : [part.value]));
  // Translators: that list ({places}) as a sentence of its own, after "3 of them are in other tabs".
  const [before, after] = t('{places}.').split('{places}');
  return [before, ...nodes, after ?? ''];
}

export function SignOutGuard(form) {
  answerOtherTabs();
  if (!form) return;
  let box = null;
  let asking = false;
  let leaving = false;  // "Sign out anyway" was pressed: asked once is enough
  form.addEventListener('submit', async (e) => {
    if (leaving) return;
    const writer = signedIn();
    const here = waitingInTab(writer, { withdrawing: false });
    if (!asking && !here.size && !others.size) return;  // nothing waits, no other tab to ask: signed out at once
    e.preventDefault();  // the other tabs answer first
    if (asking) return;
    asking = true;
    const there = await askOtherTabs(writer);  // a duplicated tab's copies count once
    asking = false;
    const places = new Map();  // where the other tabs' own wait: place -> how many
    for (const [key, place] of there) {
      if (here.has(key) || !place) continue;
      places.set(place, (places.get(place) || 0) + 1);
    }
    const elsewhere = [...there.keys()].filter((key) => !here.has(key)).length;
    const n = here.size + elsewhere;
    if (!n) { form.submit(); return; }
    box?.remove();
    box = document.createElement('p');
    box.className = 'notice signout-warning';
    box.setAttribute('role', 'alert');
    box.dataset.signoutWarning = '';
    const anyway = document.createElement('button');
    anyway.type = 'button';
    anyway.className = 'danger';
    anyway.textContent = t('Sign out anyway');
    anyway.addEventListener('click', () => {  // no second question, from here or the browser
      leaving = true;
      leaveQuietly();
      form.submit();
    });
    const cancel = document.createElement('button');
    cancel.type = 'button';
    cancel.textContent = t('Cancel');
    cancel.addEventListener('click', () => { box.remove(); box = null; form.querySelector('button[type=submit]')?.focus(); });
    // Between sentences: a space, but none after Chinese or Japanese full stops ("。").
    const gap = /^(zh|ja)\b/i.test(document.documentElement.lang) ? '' : ' ';
    box.append(tn(
      '{n} message or change of yours is not sent yet. Signing out stops sending it (if already on its way, it may still arrive).',
      '{n} messages or changes of yours are not sent yet. Signing out stops sending them (any already on their way may still arrive).', n), gap);
    if (elsewhere) {
      box.append(tn('{n} of them is in another tab of this browser.',
        '{n} of them are in other tabs of this browser.', elsewhere), gap);
      if (places.size) box.append(...wherePlaces(places), gap);
    }
    box.append(anyway, ' ', cancel);
    form.after(box);
    cancel.focus();  // the safe choice, as "Delete message" asks
  });
}
