// The page's language for scripts: t(key, params) and tn(one, other, n, params) look a message
// up in this language's catalogue (static/i18n/<lang>.json, written from translations/*.po by
// `make translations`); a message not there (or no catalogue at all) stays English.
//
//   t('Sending failed ({status}).', { status: 503 })
//   tn('{n} person is typing…', '{n} people are typing…', 3)   // {n} is the count
//
// Keys are the English texts themselves, written out as plain string literals: pybabel finds
// them there (`make messages`), and a test fails on an English UI string outside t()/tn().
// Numbers in params are formatted for the language (1,234 / 1,234 / 1 234).
const root = document.documentElement;
export const lang = root.lang || 'en';

const link = document.querySelector('link[data-catalogue]');
let catalogue = { messages: {}, plurals: {} };
if (link) {
  try {
    // Preloaded by the page's <link>: usually no wait. A catalogue that does not come within a few
    // seconds is given up (the page works in English) rather than holding every script back.
    const response = await fetch(link.href, { signal: AbortSignal.timeout(5000) });
    if (response.ok) catalogue = await response.json();
  } catch (err) { /* offline or blocked: English is better than nothing */ }
}

// The reader's own variant of the page's language for dates and numbers (en-GB days before
// months), as long as it writes the same script: a zh-TW browser reading the zh-Hans page
// still gets Simplified characters.
function sameScript(tag) {
  try {
    const a = new Intl.Locale(tag).maximize();
    const b = new Intl.Locale(lang).maximize();
    return a.language === b.language && a.script === b.script;
  } catch (err) { return false; }
}
export const locales = [...(navigator.languages || []).filter(sameScript), lang];

const numbers = new Intl.NumberFormat(locales);
const pluralRules = new Intl.PluralRules(locales);
const englishRules = new Intl.PluralRules('en');

/** ``n`` written for the page's language (1,234 / 1.234 / 1 234). */
export const formatNumber = (n) => numbers.format(n);

function format(text, params) {
  return text.replace(/\{(\w+)\}/g, (whole, name) => {
    if (!(name in params)) return whole;
    const value = params[name];
    return typeof value === 'number' ? numbers.format(value) : String(value);
  });
}

/** The message ``key`` (its English text) in the page's language, with {name}s filled in. */
export function t(key, params = {}) {
  const found = catalogue.messages[key];
  return format(typeof found === 'string' && found ? found : key, params);
}

/** A message that depends on a count ``n``: the language's plural form of it ({n} is n). */
export function tn(one, other, n, params = {}) {
  const forms = catalogue.messages[one];
  let text;
  if (Array.isArray(forms) && forms.every(Boolean)) {
    // The catalogue says which gettext form each of the language's plural categories uses.
    const index = catalogue.plurals[pluralRules.select(n)];
    text = forms[index ?? forms.length - 1];
  } else {
    text = englishRules.select(n) === 'one' ? one : other;
  }
  return format(text, { n, ...params });
}
