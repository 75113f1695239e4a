// Notifications, newest first, with priority and tags; new ones arrive over the WebSocket.
import { get, withQuery } from './api.js';
import { badge, fill, h, time } from './dom.js';

export function createNotifications(root, { onError }) {
  const list = root.querySelector('ol');
  const more = root.querySelector('[data-more]');
  let next;

  function item(n) {
    return h(
      'li',
      { class: `note p-${n.priority}`, 'data-notification': n.id },
      h(
        'div',
        { class: 'note-head' },
        h('span', { class: `prio p-${n.priority}` }, `${n.priority} priority`),
        ' ',
        badge(n.status),
        ' ',
        h('strong', {}, n.title),
      ),
      h('p', {}, n.message),
      h(
        'div',
        { class: 'small muted' },
        h('a', { href: `#/runs/${encodeURIComponent(n.runId)}` }, `${n.job} · ${n.runId}`),
        ' · ',
        time(n.at),
        n.tags.length
          ? [
              ' · ',
              h(
                'span',
                { class: 'tags' },
                n.tags.map((t) => h('span', { class: 'tag' }, `#${t}`)),
              ),
            ]
          : null,
      ),
    );
  }

  async function load(append) {
    try {
      const page = await get(withQuery('/notifications', { limit: 50, before: append ? next : undefined }));
      next = page.next;
      if (append) list.append(...page.items.map(item));
      else fill(list, page.items.map(item));
      if (list.childElementCount === 0) fill(list, h('li', { class: 'muted', 'data-empty': '' }, 'No notifications yet.'));
      more.hidden = !next;
    } catch (err) {
      onError(err);
    }
  }

  more.addEventListener('click', () => load(true));

  return {
    reload: () => load(false),
    /** A `notification` event: its data is the notification. */
    add(data) {
      list.querySelector('[data-empty]')?.remove();
      list.prepend(item({ ...data, job: data.job, at: data.at ?? new Date().toISOString() }));
    },
  };
}
