// LoadOlder: "Load older messages" is a plain link to the older page (JavaScript off); here it
// fetches that page into the log instead, and goes away once the whole history is shown.
import { t } from './i18n.js';

const STRINGS = { failed: t('Could not load older messages — try again') };

export function LoadOlder(link, root) {
  if (!link) return;
  const list = root.querySelector('[data-messages]');
  let busy = false;
  link.addEventListener('click', async (e) => {
    e.preventDefault();
    if (busy) return;
    busy = true;
    const oldest = list.querySelector('li.msg');
    const url = new URL(root.dataset.historyUrl, location.href);
    if (oldest) url.searchParams.set('before', oldest.dataset.id);
    url.searchParams.set('limit', '50');
    link.setAttribute('aria-disabled', 'true');
    try {
      const response = await fetch(url, { headers: { Accept: 'application/json' } });
      if (!response.ok) throw new Error((await response.json()).error);
      const page = await response.json();
      root.dispatchEvent(new CustomEvent('chat:older', { detail: page, bubbles: true }));
      if (page.messages.length) link.href = `?before=${encodeURIComponent(page.messages[0].id)}`;
      link.parentElement.hidden = !page.more;
    } catch (err) {
      link.textContent = STRINGS.failed;
    } finally {
      busy = false;
      link.removeAttribute('aria-disabled');
    }
  });
}
