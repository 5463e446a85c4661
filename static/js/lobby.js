// The lobby: local times, and telling the other tabs who is signed in (after "Leave", nobody).
import { announceSession } from './session.js';
import { LocalTimes } from './times.js';

LocalTimes(document);
announceSession(document.querySelector('[data-whoami]')?.textContent || '');
