// The views drawn from the store: the guild rail, the channel list, the member
// list, the user panel. Each part is redrawn whole, and only when what it shows
// changed. Methods of App (see mixin).

import { isTextChannel, isLarge } from './store.js';
import { avatar, guildInitials } from './markup.js';
import { $, el, Perm } from './dom.js';

export class Views {
  // ---------------------------------------------------------------- store → view

  onStoreChange(d) {
    switch (d.kind) {
      case 'guilds':
        this.queue('rail');
        this.queue('sidebar');
        break;
      case 'guild':
      case 'channels':
        if (!d.guildId || d.guildId === this.guildId) this.queue('sidebar');
        this.queue('rail');
        break;
      case 'messages':
        if (d.channelId === this.channelId) {
          this.queue('messages');
          if (d.created && d.message && this.store.me && d.message.author.id !== this.store.me.id) {
            $('announcer').textContent = `${this.store.displayName(d.message.author.id, d.message.guild_id)}: ${d.message.content}`;
          }
        }
        this.queue('sidebar');
        this.queue('rail');
        break;
      case 'typing':
        if (d.channelId === this.channelId) this.queue('typing');
        break;
      case 'members':
        if (!d.guildId || d.guildId === this.guildId) this.queue('members');
        break;
      case 'read':
        this.queue('sidebar');
        this.queue('rail');
        break;
      default:
    }
  }

  queue(part) {
    this.renderQueued.add(part);
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      const parts = this.renderQueued;
      this.renderQueued = new Set();
      if (parts.has('rail')) this.renderRail();
      if (parts.has('sidebar')) this.renderSidebar();
      if (parts.has('messages')) this.renderMessages();
      if (parts.has('typing')) this.renderTyping();
      if (parts.has('members')) this.renderMembers();
    });
  }

  render() {
    for (const p of ['rail', 'sidebar', 'messages', 'typing', 'members']) this.queue(p);
  }

  renderMe() {
    const me = this.store.me;
    if (!me) return;
    $('me-name').textContent = me.global_name || me.username;
    const av = avatar(me, 'avatar small');
    av.id = 'me-avatar';
    $('me-avatar').replaceWith(av);
  }

  /**
   * Whether a part's drawn state changed since it was last drawn. Parts are
   * redrawn whole, so redrawing only on change keeps the nodes under a reader's
   * pointer (a click on a node replaced between press and release is lost).
   */
  changed(part, sig) {
    this.drawn = this.drawn || new Map();
    if (this.drawn.get(part) === sig) return false;
    this.drawn.set(part, sig);
    return true;
  }

  renderRail() {
    const sig = this.store.guildOrder.map((id) => `${id}:${this.store.guilds.get(id)?.name}:${id === this.guildId}:${this.store.guildUnread(id)}`).join('|');
    if (!this.changed('rail', sig)) return;
    const ul = $('guild-list');
    ul.textContent = '';
    for (const id of this.store.guildOrder) {
      const g = this.store.guilds.get(id);
      if (!g) continue;
      const unread = this.store.guildUnread(id);
      const li = el('li', { class: [id === this.guildId ? 'current' : '', unread ? 'unread' : ''].join(' ').trim() });
      const b = el('button', {
        class: 'guild-button', type: 'button', title: g.name,
        'aria-label': `${g.name || 'Server'}${unread ? ', unread messages' : ''}`,
        'aria-current': id === this.guildId ? 'true' : null,
        dataset: { guildId: id },
        onclick: () => this.selectGuild(id),
      }, guildInitials(g.name || '…'));
      li.append(b);
      ul.append(li);
    }
  }

  canInGuild(guildId, perm) {
    const g = this.store.guilds.get(guildId);
    const me = this.store.me;
    if (!g || !me) return false;
    if (g.owner_id === me.id) return true;
    const member = g.members.get(me.id);
    let p = 0n;
    for (const r of g.roles || []) {
      if (r.id === guildId || (member && member.roles && member.roles.includes(r.id))) p |= BigInt(r.permissions || '0');
    }
    return (p & Perm.ADMINISTRATOR) !== 0n || (p & perm) === perm;
  }

  renderSidebar() {
    const g = this.guildId && this.store.guilds.get(this.guildId);
    $('guild-name').textContent = g ? g.name : 'Guildhall';
    $('invite-people').hidden = !g || !this.channelId;
    $('create-channel').hidden = !g || !this.canInGuild(g.id, Perm.MANAGE_CHANNELS);
    const tree = g ? this.store.channelTree(g.id) : [];
    const sig = `${g ? g.id : ''}:${this.channelId}:` + tree.map((grp) => `${grp.category ? `${grp.category.id}=${grp.category.name}` : ''}[${
      grp.channels.map((c) => `${c.id}=${c.name}:${isTextChannel(c) && this.store.isUnread(c.id)}`).join(',')}]`).join('');
    if (!this.changed('sidebar', sig)) return;
    const list = $('channel-list');
    list.textContent = '';
    if (!g) return;
    for (const group of tree) {
      if (group.category) list.append(el('h3', { class: 'channel-category', text: group.category.name }));
      if (!group.channels.length) continue;
      const ul = el('ul', { 'aria-label': group.category ? group.category.name : 'Channels' });
      for (const c of group.channels) {
        const text = isTextChannel(c);
        const unread = text && this.store.isUnread(c.id);
        const current = c.id === this.channelId;
        const b = el('button', {
          class: `channel${unread && !current ? ' unread' : ''}`, type: 'button',
          'aria-current': current ? 'true' : null,
          'aria-label': `${c.name}${unread && !current ? ', unread' : ''}`,
          dataset: { channelId: c.id },
          disabled: !text,
          onclick: () => this.selectChannel(c.id),
        }, el('span', { class: 'hash', 'aria-hidden': 'true', text: '#' }), el('span', { class: 'name', text: c.name }));
        ul.append(el('li', {}, b));
      }
      list.append(ul);
    }
  }

  // ---------------------------------------------------------------- members

  requestMembers(guildId, again = false) {
    const g = this.store.guilds.get(guildId);
    if (!g || g.unavailable || isLarge(g) || !this.gw) return;
    if (g.membersRequested && !again) return;
    g.membersRequested = true;
    this.gw.requestGuildMembers(guildId, { query: '', limit: 0, presences: true });
  }

  async refreshCounts(guildId) {
    try {
      const g = await this.api.get(`/guilds/${guildId}?with_counts=true`);
      const cur = this.store.guilds.get(guildId);
      if (cur) {
        cur.member_count = g.approximate_member_count ?? cur.member_count;
        cur.approximate_presence_count = g.approximate_presence_count ?? cur.approximate_presence_count;
        this.queue('members');
      }
    } catch { /* counts are best effort */ }
  }

  renderMembers() {
    const box = $('members');
    const g = this.guildId && this.store.guilds.get(this.guildId);
    $('shell').classList.toggle('no-guild', !g);
    if (!g) {
      if (this.changed('members', '')) box.textContent = '';
      return;
    }
    if (isLarge(g)) {
      // Large guilds get no presences: show the online count, refreshed every 30 s.
      const now = Date.now();
      if (!g.countsAt || now - g.countsAt > 30000) {
        g.countsAt = now;
        this.refreshCounts(g.id);
      }
      if (!this.changed('members', `large:${g.id}:${g.approximate_presence_count}:${g.member_count}`)) return;
      box.textContent = '';
      box.append(el('div', { class: 'member-counts' },
        el('strong', { text: (g.approximate_presence_count ?? 0).toLocaleString() }), 'online',
        el('strong', { text: (g.member_count ?? 0).toLocaleString() }), 'members'));
      return;
    }
    const members = [...g.members.values()];
    const status = (m) => this.store.presences.get(m.user.id) || 'offline';
    const name = (m) => m.nick || m.user.global_name || m.user.username;
    const sig = `${g.id}:${g.membersLoaded}:` + members.map((m) => `${m.user.id}=${name(m)}:${status(m)}`).join(',');
    if (!this.changed('members', sig)) return;
    box.textContent = '';
    members.sort((a, b) => name(a).localeCompare(name(b)));
    const online = members.filter((m) => status(m) !== 'offline');
    const offline = members.filter((m) => status(m) === 'offline');
    const section = (title, list) => {
      if (!list.length) return;
      box.append(el('h3', { text: `${title} — ${list.length}` }));
      const ul = el('ul', { 'aria-label': title });
      for (const m of list) {
        const st = status(m);
        const av = avatar(m.user, 'avatar small');
        av.append(el('span', { class: `status-dot ${st}` }));
        ul.append(el('li', { class: `member ${st === 'offline' ? 'offline' : ''}`, 'aria-label': `${name(m)}, ${st}`, dataset: { userId: m.user.id } },
          av, el('span', { class: 'name', text: name(m) })));
      }
      box.append(ul);
    };
    section('Online', online);
    section('Offline', offline);
    if (!g.membersLoaded && members.length <= 1) box.append(el('p', { class: 'member-counts', text: 'Loading members…' }));
  }
}
