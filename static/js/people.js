// People: the online list, kept current by presence events; each name offers a direct message.
export function People(el, root) {
  const list = el.querySelector('[data-online]');
  const count = el.querySelector('[data-online-count]');

  function render(names) {
    const me = root.dataset.me;  // '' once signed out: no direct messages then
    list.replaceChildren(...names.map((name) => {
      const li = document.createElement('li');
      li.dir = 'auto';
      if (me && name !== me) {
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'link';
        button.textContent = name;
        button.title = `Send ${name} a direct message`;
        button.addEventListener('click', () => root.dispatchEvent(
          new CustomEvent('chat:reply', { detail: { name }, bubbles: true })));
        li.append(button);
      } else {
        li.textContent = name;
      }
      return li;
    }));
    count.textContent = names.length;
  }

  root.addEventListener('chat:presence', (e) => render(e.detail.online));
  root.addEventListener('chat:signed-out', () => render(Array.from(list.children, (li) => li.textContent)));
  render(Array.from(list.children, (li) => li.textContent));
}
