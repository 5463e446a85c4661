// LoadOlder: fetches the page of history before the oldest message shown.
export function LoadOlder(button, root) {
  if (!button) return;
  const list = root.querySelector('[data-messages]');
  button.addEventListener('click', async () => {
    const oldest = list.firstElementChild;
    const url = new URL(root.dataset.historyUrl, location.href);
    if (oldest) url.searchParams.set('before', oldest.dataset.id);
    url.searchParams.set('limit', '50');
    button.disabled = true;
    try {
      const response = await fetch(url, { headers: { Accept: 'application/json' } });
      if (!response.ok) throw new Error((await response.json()).error);
      const page = await response.json();
      root.dispatchEvent(new CustomEvent('chat:older', { detail: page, bubbles: true }));
      button.hidden = !page.more;
    } catch (err) {
      button.textContent = 'Could not load older messages — try again';
    } finally {
      button.disabled = false;
    }
  });
}
