// fold(name): the form names are compared in, exactly as the server's names.fold (app/people/
// names.py): NFKC, case-folded, blanks collapsed, reduced to the Unicode TR39 skeleton, repeated
// until it no longer changes. So "Ann", "ＡＮＮ" and a Cyrillic "аnn" are one name here too.
// The tables come from scripts/fold_data.py (tests/test_names_js.py keeps the two in step).
import { CASEFOLD, IGNORABLE, PROTOTYPES, WHITESPACE } from './fold-data.js';

const ROUNDS = 6;  // as the server: a fixed point in two or three
const CACHE_SIZE = 500;
const cache = new Map();

const ignorable = (cp) => IGNORABLE.some(([low, high]) => cp >= low && cp <= high);

// Unicode case folding, which JavaScript lacks: per character, lowercase but where it differs.
function casefold(text) {
  let out = '';
  for (const ch of text) out += CASEFOLD[ch] ?? ch.toLowerCase();
  return out;
}

// Python's " ".join(text.split()): runs of its whitespace become one space, none at the ends.
function collapse(text) {
  const words = [];
  let word = '';
  for (const ch of text) {
    if (WHITESPACE.includes(ch)) {
      if (word) words.push(word);
      word = '';
    } else {
      word += ch;
    }
  }
  if (word) words.push(word);
  return words.join(' ');
}

function skeleton(text) {
  let out = '';
  for (const ch of text.normalize('NFD')) {
    if (!ignorable(ch.codePointAt(0))) out += PROTOTYPES[ch] ?? ch;
  }
  return out.normalize('NFD');
}

function foldOnce(text) {
  return casefold(skeleton(collapse(casefold(text.normalize('NFKC'))))).normalize('NFD');
}

export function fold(name) {
  const key = String(name ?? '');
  let text = cache.get(key);
  if (text !== undefined) return text;
  text = key;
  for (let i = 0; i < ROUNDS; i += 1) {
    const folded = foldOnce(text);
    if (folded === text) break;
    text = folded;
  }
  if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value);
  cache.set(key, text);
  return text;
}
