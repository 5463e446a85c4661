// The room page: mount each piece on its element.
//
// The pieces talk through bubbling CustomEvents on <main class="room">; every one there is:
//   chat:message      {message, live, answer?, retried?}   a room message (stream, a catch-up, or
//                                       the answer to a post of this page: answer, retried for a
//                                       pending one's: pending.js)
//   chat:direct       {message, live}   a direct message to or from this person
//   chat:presence     {room, action, name?, guest?, online_count?, online?, guests?}   who is online changed
//                                       (online.js: without `online`, a big room's change to apply)
//   chat:typing       {room, name}      someone is typing (unnumbered, never replayed)
//   chat:unread       {rooms, complete?, hidden?}  the person's sidebar counts (reading.py)
//   chat:read         {room, read_id}   the person's read position moved (on any device)
//   chat:activity     {room, user, mentions, id, text?}  a message in another sidebar room
//   chat:mentions     {room, id, added, removed, user, text?, live}  an edit or deletion in another
//                                       sidebar room changed whom a message mentions
//   chat:deleted      {room, id, live}  a message in another sidebar room was deleted
//   chat:dropped      {message}         older messages the cursor asked for are gone
//   chat:replaced     {room, message}   a newer stream of this session took this one's place
//   chat:removed      {room, reason, message, event}   removed or banned from the room, or it
//                                       was deleted: the stream stopped for good
//   chat:older        {messages, more}  a page of history before the oldest shown
//   chat:edit         {message_id, text, edited_ts, mentions, live, ...}   a message's text changed
//                                       (edit, delete and reaction carry ``live`` as chat:message)
//   chat:edit-mentions-me {room, user, text, id}   a live edit made a message of this room mention this person
//   chat:delete       {message_id, by, ...}                a message was deleted
//   chat:reaction     {message_id, emoji, user, on, reactions}  a message's reactions changed
//   chat:state        {state}           the stream: connecting/connected/reconnecting/offline/
//                                       queued/replaced/signed-out/removed
//   chat:check        {}                don't trust the stream (a send failed): check it now
//   chat:sent         {}                (on a composer) its text left it: stored, or waiting in the
//                                       log as a pending post (pending.js)
//   chat:session-ended {}               the server says this session signed out
//   chat:signed-out   {}                nobody is signed in now: show the signed-out page
import { Changes } from './changes.js';
import { ChatForm } from './form.js';
import { Inbox } from './inbox.js';
import { MessageList, otherParty, sameName } from './messages.js';
import { DroppedNotice, UnreadTitle } from './notices.js';
import { LoadOlder } from './older.js';
import { People } from './people.js';
import { MentionSuggest } from './mentions_input.js';
import { MentionAlerts, ReadTracker } from './reading.js';
import { announceSession, restoreDraft, SessionWatch, SignedOutView } from './session.js';
import { LeaveGuard } from './leaving.js';
import { SignOutGuard } from './signout.js';
import { ConnectionStatus } from './status.js';
import { Sidebar } from './sidebar.js';
import { ChatStream } from './stream.js';
import { LocalTimes } from './times.js';
import { TypingLine, TypingSignal } from './typing.js';

const root = document.querySelector('main.room');
const conversation = document.querySelector('[data-conversation]');
const other = conversation ? conversation.dataset.with : null;
LocalTimes(document);
ConnectionStatus(document.querySelector('[data-status]'), root);
MessageList(root.querySelector('[data-log]'), root);
Changes(root);
if (conversation) {
  // Its own log and composer; events bubble from either form to the room's element.
  MessageList(conversation.querySelector('[data-log]'), root, {
    kind: 'direct', accepts: (message) => sameName(otherParty(message, root.dataset.me), other) });
  ChatForm(conversation.querySelector('[data-form]'), root);
}
LoadOlder(root.querySelector('[data-older]'), root);
DroppedNotice(root.querySelector('[data-notice]'), root);
UnreadTitle(root);
People(document.querySelector('.people'), root);
Inbox(document.querySelector('[data-inbox]'), root, other);
TypingLine(root.querySelector('[data-typing]'), root);
Sidebar(document.querySelector('[data-sidebar]'), root, root.dataset.room);
ReadTracker(root.querySelector('[data-log]'), root);
MentionAlerts(root);
const form = root.querySelector('[data-form]');
if (form) {  // signed out, the page shows the sign-in form instead
  ChatForm(form, root);
  restoreDraft(root, form);
  TypingSignal(form, root.dataset.typingUrl);
  MentionSuggest(form.querySelector('textarea'), root);
}
SessionWatch(root);
SignOutGuard(document.querySelector('form.whoami'));
LeaveGuard();  // closing the tab would lose what waits
SignedOutView(root);
root.addEventListener('chat:signed-out', () => conversation?.remove());  // its form would only fail
if (!('archive' in root.dataset)) ChatStream(root);  // an older page of history is not live
announceSession(root.dataset.me || '');
