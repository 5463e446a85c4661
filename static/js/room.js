// The room page: mount each piece on its element.
import { ChatForm } from './form.js';
import { MessageList } from './messages.js';
import { DroppedNotice, UnreadTitle } from './notices.js';
import { LoadOlder } from './older.js';
import { People } from './people.js';
import { ConnectionStatus } from './status.js';
import { ChatStream } from './stream.js';
import { LocalTimes } from './times.js';

const root = document.querySelector('main.room');
LocalTimes(root);
ConnectionStatus(document.querySelector('[data-status]'), root);
MessageList(root.querySelector('[data-log]'), root);
LoadOlder(root.querySelector('[data-older]'), root);
DroppedNotice(root.querySelector('[data-notice]'), root);
UnreadTitle(root);
People(document.querySelector('.people'), root);
const form = root.querySelector('[data-form]');
if (form) ChatForm(form, root);  // signed out, the page shows the sign-in form instead
ChatStream(root);
