// PendingPosts: the posts of one composer whose outcome is unknown (no answer in time, the
// connection failed, a 5xx that may have stored them). As in Telegram, Signal or Slack, each
// waits at the end of the log as "Sending…" / "Not sent yet — will retry" (one queued behind
// another, not tried yet: "Waiting to send…"), with its text and its idempotency key, and the
// composer is free for new text: a post kept in the composer invited a correction, and the
// corrected text (a new message, a new key) was posted beside the first, which had been stored
// after all.
//
// Each is sent again with the same key (never stored twice) by the page's retry engine
// (retries.js): when the stream is connected again, when the browser is back online, on "Retry
// now", and on a backing-off timer; one at a time and in order, and a new post from the composer
// waits behind them. A post still unanswered after a moment is shown here at once ("Sending…",
// carried over in flight), the composer free. "Don't send" drops one never tried (it waited
// behind another), and the composer's note says so, with "Put it back to edit" (it was often
// pressed to correct a post); one tried already may still be stored, however late (a stalled
// network holds an attempt and delivers it after the person chose not to send it), so it is
// withdrawn instead (the room's data-withdraw-url, api.withdraw_post; a conversation's,
// direct.withdraw_direct): "Not sending it — checking…" until the server says nothing was
// stored, and nothing will be (gone, said in the note as above), or that it had been (a
// sentence, and the message in the log). The withdrawal waits and is retried like a post, and
// is kept with the tab's posts, so a reload or a dead network never turns it into a send. None
// is offered while an attempt is in flight (retries.js showControls). Its own message on
// the stream (matched by author, text and reply) shows it was stored: the entry gives way to the
// message at once, and a last retry with its key confirms it quietly (200 and the original, or
// 201 if the message seen was another one with the same words). The queue is kept in the tab
// (sessionStorage) for its writer, so a reload sends what was waiting instead of losing it;
// signing out forgets it.
import { expandable } from './expand.js';
import { t } from './i18n.js';
import { Retries, appendControls, sayWithdrawn, showControls } from './retries.js';

const STRINGS = {
  queued: t('Waiting to send…'),
  sending: t('Sending…'),
  waiting: t('Not sent yet — will retry.'),
  retry: t('Retry now'),
  discard: t("Don't send"),
  withdrawing: t('Not sending it — checking it was not sent…'),
  withdrawWaiting: t('Not sending it — will check again shortly that it was not sent.'),
  alreadySent: t('It had already been sent before you chose not to send it: it is in the room above, where you can delete it.'),
  alreadySentDirect: t('It had already been sent before you chose not to send it: it is in the conversation above.'),
  dismiss: t('OK'),
  // The post's words isolated (a <bdi>): a cut right-to-left excerpt had its "…" at the wrong end.
  withdrawn: (text) => {
    const [before, after = ''] = t('“{text}” was not sent.', { text: '\u0000' }).split('\u0000');
    const words = document.createElement('bdi');
    words.textContent = text;
    const sentence = document.createDocumentFragment();
    sentence.append(before, words, after);
    return sentence;
  },
  failed: (status) => t('Sending failed ({status}).', { status: String(status) }),
};

// What the server stores (app/rooms/messages.py check_text): blank lines around the text dropped.
export const stored = (value) => value.replace(/^(?:[^\S\n]*\n)+/, '').trimEnd();

// A post named in a sentence: its first line, cut to EXCERPT columns (a wide character, as
// Chinese ones are, takes two: 40 of them wrapped to three lines on a phone), with "…" when
// something follows.
const EXCERPT = 40;
const WIDE = /[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]|[\u{20000}-\u{3fffd}]/u;
function excerpt(text) {
  const lines = stored(text).split('\n');
  const chars = [...lines[0]];
  const width = (char) => (WIDE.test(char) ? 2 : 1);
  let columns = chars.reduce((sum, char) => sum + width(char), 0);
  if (columns <= EXCERPT) return lines[0] + (lines.length > 1 ? '…' : '');
  while (columns > EXCERPT - 1) columns -= width(chars.pop());
  return chars.join('') + '…';
}

/**
 * form: the composer; log: its [data-log]; submit(data, signal): post a FormData, resolve to
 * {response, body} or throw (network failure, timeout); event: 'chat:message' or 'chat:direct'.
 * Returns { add(fields, outcome), carry(fields, inflight, echoed), busy(), echo(message) }:
 * fields {key, text, reply_to, quote: {user, text} of what it answers, or null}; outcome
 * {response?, echoed?} of the attempt that failed.
 */
export function PendingPosts(form, root, log, { submit, event, timeoutMs }) {
  const list = document.createElement('ol');
  list.className = 'messages pending-posts';
  list.dataset.pending = '';
  list.setAttribute('aria-live', 'polite');
  log.querySelector('[data-messages]').after(list);
  const storageKey = `ripple-pending:${new URL(form.action, location.href).pathname}`;
  // A room's posts are withdrawn at the room's data-withdraw-url (api.withdraw_post), a
  // conversation's at its own (direct.withdraw_direct).
  const conversation = form.closest('[data-conversation]');
  const retries = Retries(root, { timeoutMs, onChange: save,
                                  withdrawUrl: (conversation || root).dataset.withdrawUrl });
  const queue = retries.queue;  // {key, text, reply_to, echoed, tried, withdrawing, li, ...}

  function save() {
    try {
      const posts = queue.map(({ key, text, reply_to, quote, tried, withdrawing }) => ({ key, text, reply_to, quote, tried, withdrawing }));
      if (posts.length) sessionStorage.setItem(storageKey, JSON.stringify({ writer: root.dataset.me, posts }));
      else sessionStorage.removeItem(storageKey);
    } catch (err) { /* storage off: kept on this page only */ }
  }

  function render(entry) {
    const li = document.createElement('li');
    li.className = 'pending-post';
    li.dataset.key = entry.key;
    const who = document.createElement('span');
    who.className = 'who';
    who.dir = 'auto';
    who.textContent = root.dataset.me || '';
    const text = document.createElement('p');
    text.className = 'text';
    text.dir = 'auto';
    text.textContent = stored(entry.text);
    expandable(text);  // cut to one line on a phone
    const line = document.createElement('p');
    line.className = 'pending-state';
    appendControls(line, { retryLabel: STRINGS.retry, retry: () => retries.retry(),
                           discardLabel: STRINGS.discard, discard: () => drop(entry) });
    li.append(who, text, line);
    if (entry.reply_to && entry.quote) {  // what it answers, as a sent reply shows it
      const quote = document.createElement('span');
      quote.className = 'quote pending-quote';
      const user = document.createElement('span');
      user.className = 'quote-user';
      user.dir = 'auto';
      user.textContent = entry.quote.user;
      const said = document.createElement('span');
      said.className = 'quote-text';
      said.dir = 'auto';
      said.textContent = entry.quote.text;
      quote.append(user, ' ', said);
      text.before(quote);
    }
    li.hidden = !!entry.echoed;
    entry.li = li;
    list.append(li);
    log.scrollTop = log.scrollHeight;  // one's own post: show it, as a sent one is shown
  }

  function show(entry, what, sentence = '') {
    const status = entry.li.querySelector('[data-pending-status]');
    let words = what === 'refused' ? sentence : STRINGS[what];
    if (entry.withdrawing && what !== 'refused') words = what === 'waiting' ? STRINGS.withdrawWaiting : STRINGS.withdrawing;
    status.textContent = words;
    entry.li.dataset.state = what;
    entry.li.querySelector('[data-discard]').textContent = what === 'refused' ? STRINGS.dismiss : STRINGS.discard;
    showControls(entry.li, what, entry.withdrawing);  // being withdrawn: asked already
  }

  // The entry's line goes; the keyboard's focus, if it was on the line, goes to the composer
  // (an answer that comes later must not pull it from where the person is typing now).
  function forget(entry) {
    const focused = entry.li.contains(document.activeElement) || document.activeElement === document.body;
    entry.li.remove();
    if (focused) form.querySelector('textarea[name=text]')?.focus();
  }

  function drop(entry) {
    if (retries.mustWithdraw(entry)) {
      withdraw(entry);
      return;
    }
    retries.drop(entry);  // never sent (or a conversation's: its message would come on the stream)
    if (entry.tried) {  // tried, and no withdrawing here: it may still arrive, so nothing is said
      forget(entry);
      return;
    }
    notSent(entry);
  }

  // Its line goes, and the composer's note says it was not sent, with "Put it back to edit"
  // (the keyboard's focus on the note if it was on the line).
  function notSent(entry) {
    const focused = entry.li.contains(document.activeElement);
    entry.li.remove();
    sayWithdrawn(form, STRINGS.withdrawn(excerpt(entry.text)), focused, () => restore(entry));
  }

  // A post not sent, back in the composer to correct and send again (a new post: the composer's
  // key is a new one): its text after anything typed there since, and what it answered.
  function restore(entry) {
    const box = form.querySelector('textarea[name=text]');
    if (!box) return;
    const text = stored(entry.text);
    box.value = box.value.trim() ? `${box.value.trimEnd()}\n${text}` : text;
    if (entry.reply_to) root.dispatchEvent(new CustomEvent('chat:reply-to', { detail: { id: entry.reply_to } }));
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
    box.dispatchEvent(new Event('input', { bubbles: true }));  // its counter, its draft kept
  }

  // From now on the entry's attempts withdraw it (retries.withdraw): 200 nothing was stored,
  // and never will be; 409 "already_sent" with the message, which goes in the log.
  function withdraw(entry) {
    const sent = () => notSent(entry);
    const refused = ({ response, body }) => {
      const focused = entry.li.contains(document.activeElement);
      entry.li.hidden = false;
      if (body.code === 'already_sent' && body.message) {
        // Its message as it is now; one trimmed from the history since is an id alone (the
        // page shows it if it has it, and else the line's text says what it was).
        if (typeof body.message.text === 'string') {
          root.dispatchEvent(new CustomEvent(event, {
            detail: { message: body.message, live: false, answer: true, retried: true }, bubbles: true }));
        }
        show(entry, 'refused', conversation ? STRINGS.alreadySentDirect : STRINGS.alreadySent);
      } else show(entry, 'refused', body.error || STRINGS.failed(response.status));
      if (focused) entry.li.querySelector('[data-discard]').focus();
    };
    retries.withdraw(entry, { sent, refused });
  }

  function data(entry) {
    const body = new FormData(form);  // the session's CSRF token and the form's other fields
    body.set('text', entry.text);
    body.set('idempotency_key', entry.key);
    if (body.has('reply_to')) body.set('reply_to', entry.reply_to || '');
    return body;
  }

  // An entry of the queue: what the engine does with it (retries.js).
  function entryOf(fields, echoed) {
    const entry = {
      ...fields,
      echoed,
      send: (signal) => submit(() => data(entry), signal),
      show: (what) => show(entry, what),
      sent(result) {
        entry.li.remove();
        root.dispatchEvent(new CustomEvent(event, {
          detail: { message: result.body, live: false, answer: true, retried: true }, bubbles: true }));
      },
      // Nothing was stored: the entry stays with the server's sentence, its text to copy, until
      // dismissed (one whose message already showed gives way to it).
      refused({ response, body }) {
        if (entry.echoed) { entry.li.remove(); return; }
        if (body.code === 'withdrawn') { notSent(entry); return; }  // "Don't send" in another copy of this tab
        entry.li.hidden = false;
        show(entry, 'refused', body.error || STRINGS.failed(response.status));
      },
    };
    render(entry);
    return entry;
  }

  // Signed out (here or in another tab): nothing of theirs stays on the page or goes out later
  // under no session (session.js forgets the tab's copy; retries.js the queue).
  root.addEventListener('chat:signed-out', () => list.replaceChildren());

  // Kept by a reload (or a phone that discarded the tab): its writer's posts are sent again.
  try {
    const kept = JSON.parse(sessionStorage.getItem(storageKey) || 'null');
    if (kept && kept.writer && kept.writer === root.dataset.me) {
      for (const post of kept.posts || []) {
        // Tried before the reload (or kept by an older page, which did not say): it may be stored.
        const entry = entryOf({ key: post.key, text: post.text, reply_to: post.reply_to || '', quote: post.quote || null,
                               tried: post.tried ?? true }, false);
        if (post.withdrawing) {  // still not to be sent: withdrawn, or (no way to) forgotten
          if (!retries.canWithdraw()) { entry.li.remove(); continue; }
          withdraw(entry);
        }
        retries.add(entry, null);
      }
      save();  // without those forgotten
    } else if (kept) sessionStorage.removeItem(storageKey);
  } catch (err) { /* storage off, or unreadable: nothing kept */ }

  return {
    /** Wait in the log (after a failed attempt, or behind the others when ``outcome`` is null). */
    add(fields, outcome) {
      const entry = entryOf(fields, !!outcome?.echoed);
      retries.add(entry, outcome);
      if (outcome && entry.echoed) retries.back();
    },
    /** The composer's post, still unanswered: shown as sending, its attempt carried on here. */
    carry(fields, inflight, echoed) {
      retries.carry(entryOf(fields, echoed), inflight);
    },
    busy: () => queue.length > 0,
    /** This person's message came on the stream: a pending post of the same words gives way. */
    echo(message) {
      const reply = message.reply_to?.id || '';
      const entry = queue.find((p) => !p.echoed && stored(p.text) === message.text
        && (p.reply_to || '') === reply);
      if (!entry) return;
      // One being withdrawn got through after all: its withdrawal asks at once, and says so.
      if (entry.withdrawing) { retries.retry(); return; }
      entry.echoed = true;
      entry.li.hidden = true;  // the message is in the log now; the retry below only confirms it
      retries.back();
    },
  };
}
