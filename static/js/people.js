// People: the online list, kept current by presence events. Signed in, each other name links to
// a conversation with that person (a plain link: the same with JavaScript off); one's own is
// marked, not linked.
export function People(el, root) {
  const list = el.querySelector('[data-online]');
  const count = el.querySelector('[data-online-count]');
  const STRINGS = { title: (name) => `Send ${name} a direct message` };

  function render(names) {
    const me = root.dataset.me;  // '' once signed out: no direct messages then
    list.replaceChildren(...names.map((name) => {
      const li = document.createElement('li');
      li.dir = 'auto';
      if (me && name === me) {
        li.className = 'me';
        li.textContent = name;
      } else if (me) {
        const link = document.createElement('a');
        link.href = root.dataset.conversationUrl + encodeURIComponent(name);
        link.title = STRINGS.title(name);
        link.textContent = name;
        li.append(link);
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
