// The views drawn from the store: the guild rail, the channel list, the member
// list, the user panel. Each part is redrawn whole, and only when what it shows
// changed. Methods of App (see mixin).

import { isTextChannel, isLarge, dmHome, ChannelType } from './store.js';
import { avatar, guildInitials } from './markup.js';
import { $, el, svg, icons, Perm } from './dom.js';
import { toast } from './modal.js';

/** A count of unread mentions, for a channel or a server. */
function badge(n) {
  return n > 0 ? el('span', { class: 'badge', 'aria-hidden': 'true', text: n > 99 ? '99+' : String(n) }) : null;
}

function mentionWords(n) {
  return n > 0 ? `, ${n} mention${n === 1 ? '' : 's'}` : '';
}

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
        if (this.groupPickerRedraw) this.groupPickerRedraw(); // members arrived for the group dialog
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
    const s = this.store;
    const sig = [dmHome, ...s.guildOrder].map((id) => `${id}:${s.guilds.get(id)?.name}:${id === this.guildId}:${s.guildUnread(id)}:${s.guildMentions(id)}`).join('|');
    if (!this.changed('rail', sig)) return;
    // Direct messages: the first item of the rail, as on Discord.
    const home = $('home');
    const homeUnread = s.guildUnread(dmHome);
    const homeMentions = s.guildMentions(dmHome);
    $('home-item').className = ['home-item', this.guildId === dmHome ? 'current' : '', homeUnread ? 'unread' : ''].join(' ').trim();
    home.setAttribute('aria-label', `Direct messages${homeUnread ? ', unread messages' : ''}${mentionWords(homeMentions)}`);
    if (this.guildId === dmHome) home.setAttribute('aria-current', 'true');
    else home.removeAttribute('aria-current');
    home.querySelector('.badge')?.remove();
    if (homeMentions) home.append(badge(homeMentions));
    const ul = $('guild-list');
    ul.textContent = '';
    for (const id of this.store.guildOrder) {
      const g = this.store.guilds.get(id);
      if (!g) continue;
      const unread = this.store.guildUnread(id);
      const mentioned = this.store.guildMentions(id);
      const li = el('li', { class: [id === this.guildId ? 'current' : '', unread ? 'unread' : ''].join(' ').trim() });
      const b = el('button', {
        class: 'guild-button', type: 'button', title: g.name,
        'aria-label': `${g.name || 'Server'}${unread ? ', unread messages' : ''}${mentionWords(mentioned)}`,
        'aria-current': id === this.guildId ? 'true' : null,
        dataset: { guildId: id },
        onclick: () => this.selectGuild(id),
      }, guildInitials(g.name || '…'), badge(mentioned));
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
    if (this.guildId === dmHome) {
      this.renderDMList();
      return;
    }
    const g = this.guildId && this.store.guilds.get(this.guildId);
    $('guild-name').textContent = g ? g.name : 'Guildhall';
    $('invite-people').hidden = !g || !this.channelId;
    $('create-channel').hidden = !g || !this.canInGuild(g.id, Perm.MANAGE_CHANNELS);
    $('new-group').hidden = true;
    const tree = g ? this.store.channelTree(g.id) : [];
    const sig = `${g ? g.id : ''}:${this.channelId}:` + tree.map((grp) => `${grp.category ? `${grp.category.id}=${grp.category.name}` : ''}[${
      grp.channels.map((c) => `${c.id}=${c.name}:${isTextChannel(c) && this.store.isUnread(c.id)}:${this.store.read.mentionCount(c.id)}`).join(',')}]`).join('');
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
        const mentioned = current ? 0 : this.store.read.mentionCount(c.id);
        const b = el('button', {
          class: `channel${unread && !current ? ' unread' : ''}`, type: 'button',
          'aria-current': current ? 'true' : null,
          'aria-label': `${c.name}${unread && !current ? ', unread' : ''}${mentionWords(mentioned)}`,
          dataset: { channelId: c.id },
          disabled: !text,
          onclick: () => this.selectChannel(c.id),
        }, el('span', { class: 'hash', 'aria-hidden': 'true', text: '#' }), el('span', { class: 'name', text: c.name }), badge(mentioned));
        ul.append(el('li', {}, b));
      }
      list.append(ul);
    }
  }

  /** The sidebar of the direct messages: one entry per DM, the most recent first. */
  renderDMList() {
    const s = this.store;
    $('guild-name').textContent = 'Direct messages';
    $('invite-people').hidden = true;
    $('create-channel').hidden = true;
    $('new-group').hidden = false;
    const dms = s.dmOrder();
    const sig = `${dmHome}:${this.channelId}:` + dms.map((c) => `${c.id}=${s.channelLabel(c)}:${s.isUnread(c.id)}:${s.read.mentionCount(c.id)}`).join(',');
    if (!this.changed('sidebar', sig)) return;
    const list = $('channel-list');
    list.textContent = '';
    if (!dms.length) {
      list.append(el('p', { class: 'sidebar-note', text: 'No conversations yet. Open one from a server\'s member list, or start a group with the button above.' }));
      return;
    }
    const ul = el('ul', { 'aria-label': 'Direct messages' });
    for (const c of dms) {
      const current = c.id === this.channelId;
      const unread = !current && s.isUnread(c.id);
      const mentioned = current ? 0 : s.read.mentionCount(c.id);
      const label = s.channelLabel(c);
      const group = c.type === ChannelType.GROUP_DM;
      const other = group ? null : (c.recipients || [])[0];
      const people = (c.recipients || []).length + 1;
      ul.append(el('li', {}, el('button', {
        class: `channel dm${group ? ' group' : ''}${unread ? ' unread' : ''}`, type: 'button',
        'aria-current': current ? 'true' : null,
        'aria-label': `${label}${group ? `, group of ${people}` : ''}${unread ? ', unread' : ''}${mentionWords(mentioned)}`,
        dataset: { channelId: c.id },
        onclick: () => this.selectChannel(c.id),
      }, avatar(other || { id: c.id, username: label }, 'avatar tiny'),
      el('span', { class: 'name', text: label }),
      group ? el('span', { class: 'people', 'aria-hidden': 'true', text: `${people}` }) : null,
      badge(mentioned))));
    }
    list.append(ul);
  }

  /** Opens the DM with a user, creating it the first time (POST /users/@me/channels). */
  async openDM(userId) {
    let ch = this.store.dmWith(userId);
    if (!ch) {
      try {
        ch = await this.api.post('/users/@me/channels', { recipient_id: userId });
      } catch (ex) {
        toast(`Could not open the conversation: ${ex.message}`, { error: true });
        return;
      }
      this.store.addChannel(ch);
    }
    this.selectChannel(ch.id);
    $('composer-input').focus();
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
    $('toggle-members').hidden = !g;
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
        const me = this.store.me && m.user.id === this.store.me.id;
        ul.append(el('li', { class: `member ${st === 'offline' ? 'offline' : ''}`, 'aria-label': `${name(m)}, ${st}`, dataset: { userId: m.user.id } },
          av, el('span', { class: 'name', text: name(m) }),
          me || m.user.bot ? null : el('button', {
            class: 'icon-button member-dm', type: 'button', 'aria-label': `Message ${name(m)}`, title: `Message ${name(m)}`,
            onclick: () => this.openDM(m.user.id),
          }, svg(icons.message))));
      }
      box.append(ul);
    };
    section('Online', online);
    section('Offline', offline);
    if (!g.membersLoaded && members.length <= 1) box.append(el('p', { class: 'member-counts', text: 'Loading members…' }));
  }
}
