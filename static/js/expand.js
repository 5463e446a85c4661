// expandable(el): a waiting line's text (pending.js, unsaved.js), which a phone shows on one line
// cut with an ellipsis (style.css) to keep the line short, opens whole on a tap, a click, Enter
// or Space, and closes the same way: cut, a long text could not be read at all. It is a toggle
// (role=button, aria-expanded, in the tab order) only while there is something to open, or it is
// open: a short text, or any on a wide screen, stays plain text. A drag that selects some of it,
// to copy it, toggles nothing.
let resized = null;  // made on first use: importing this creates nothing

const isOpen = (el) => el.getAttribute('aria-expanded') === 'true';

function update(el) {
  if (isOpen(el) || el.scrollWidth > el.clientWidth) {
    el.setAttribute('role', 'button');
    el.tabIndex = 0;
    el.setAttribute('aria-expanded', String(isOpen(el)));
  } else {
    for (const name of ['role', 'tabindex', 'aria-expanded']) el.removeAttribute(name);
  }
}

/** Let el, while it is cut (or open), be opened and closed by a tap, a click, Enter or Space. */
export function expandable(el) {
  const toggle = () => el.setAttribute('aria-expanded', String(!isOpen(el)));
  el.addEventListener('click', () => {
    const selection = getSelection();
    const selecting = !selection.isCollapsed && selection.containsNode(el, true);
    if (el.hasAttribute('aria-expanded') && !selecting) toggle();
  });
  el.addEventListener('keydown', (e) => {
    if (!el.hasAttribute('aria-expanded') || (e.key !== 'Enter' && e.key !== ' ')) return;
    e.preventDefault();  // Space would scroll the log
    toggle();
  });
  resized ||= new ResizeObserver((entries) => { for (const { target } of entries) update(target); });
  resized.observe(el);  // a narrower screen cuts it, a wider one shows it whole
}
