// The Mentions page: times in the reader's own time zone.
import { LocalTimes } from './times.js';

LocalTimes(document);
