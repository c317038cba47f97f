// The application: wires the REST client, the gateway client and the store to
// the page, and draws everything (rail, channels, messages, members, composer).

import { Api, ApiError } from './api.js';
import { GatewayClient } from './gateway.js';
import { Store, ChannelType, isTextChannel } from './store.js';
import { VirtualList } from './messagelist.js';
import { renderContent, mentions, avatar, guildInitials } from './markup.js';
import { compareIds, idTime, newNonce } from './snowflake.js';
import { modal, formModal, toast, closeModal, modalOpen } from './modal.js';

const pageSize = 50;
const olderPageSize = 100;
const groupMs = 7 * 60 * 1000;
const typingEveryMs = 8000;
const maxGapPages = 10;
const quickReactions = ['👍', '❤️', '😂', '🎉', '😮', '😢'];
const tokenKey = 'guildhall.token';
const inviteKey = 'guildhall.invite';
const themeKey = 'guildhall.theme';

const Perm = { CREATE_INSTANT_INVITE: 1n, ADMINISTRATOR: 8n, MANAGE_CHANNELS: 16n, MANAGE_MESSAGES: 8192n };

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function svg(path) {
  const s = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  s.setAttribute('viewBox', '0 0 24 24');
  s.setAttribute('aria-hidden', 'true');
  const p = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  p.setAttribute('d', path);
  s.append(p);
  return s;
}

const icons = {
  reply: 'M10 9V5l-7 7 7 7v-4.1c5 0 8.5 1.6 11 5.1-1-5-4-10-11-11z',
  edit: 'M3 17.25V21h3.75L17.81 9.94l-3.75-3.75L3 17.25zM20.71 7.04a1 1 0 0 0 0-1.41l-2.34-2.34a1 1 0 0 0-1.41 0l-1.83 1.83 3.75 3.75 1.83-1.83z',
  trash: 'M6 19a2 2 0 0 0 2 2h8a2 2 0 0 0 2-2V7H6v12zM19 4h-3.5l-1-1h-5l-1 1H5v2h14V4z',
  smile: 'M12 2a10 10 0 1 0 10 10A10 10 0 0 0 12 2zm-3.5 6A1.5 1.5 0 1 1 7 9.5 1.5 1.5 0 0 1 8.5 8zm7 0A1.5 1.5 0 1 1 14 9.5 1.5 1.5 0 0 1 15.5 8zM12 17.5A5.5 5.5 0 0 1 6.8 14h10.4a5.5 5.5 0 0 1-5.2 3.5z',
};

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

function msgTime(m) {
  const t = m.timestamp ? Date.parse(m.timestamp) : NaN;
  return Number.isNaN(t) ? idTime(m.id) : t;
}

function sameDay(a, b) {
  const x = new Date(a);
  const y = new Date(b);
  return x.getFullYear() === y.getFullYear() && x.getMonth() === y.getMonth() && x.getDate() === y.getDate();
}

export class App {
  constructor() {
    this.api = new Api();
    this.store = new Store();
    this.gw = null;
    this.guildId = null;
    this.channelId = null;
    this.list = null;
    this.editing = null; // message being edited
    this.replyTo = null; // message being replied to
    this.drafts = new Map();
    this.lastTypingSent = 0;
    this.renderQueued = new Set();
    this.frame = 0;
    this.probed = new Set(); // channels whose newest message id was asked for
    this.ackTimer = 0;
    this.bannerTimer = 0;
    this.pickerFor = null;
    this.authMode = 'login';
    this.api.onUnauthorized = () => this.logout('Your session has ended. Log in again.');
    this.store.addEventListener('change', (e) => this.onStoreChange(e.detail));
  }

  start() {
    this.applyTheme(localStorage.getItem(themeKey) || 'system');
    this.bindStatic();
    const invite = location.pathname.match(/^\/invite\/([A-Za-z0-9-]{1,64})\/?$/);
    if (invite) sessionStorage.setItem(inviteKey, invite[1]);
    const token = localStorage.getItem(tokenKey);
    if (token) this.startSession(token);
    else this.showAuth();
    setInterval(() => {
      this.queue('typing'); // indicators expire
      if (this.store.guilds.get(this.guildId)?.large) this.queue('members'); // online counts refresh
    }, 2000);
  }

  // ---------------------------------------------------------------- auth

  showAuth(message) {
    $('shell').hidden = true;
    $('auth').hidden = false;
    $('auth-error').textContent = message || '';
    const code = sessionStorage.getItem(inviteKey);
    const inv = $('auth-invite');
    inv.hidden = !code;
    if (code) inv.textContent = `You have been invited to join a server (invite ${code}). Log in or register to accept.`;
    this.setAuthMode(this.authMode);
    $('auth-username').focus();
  }

  setAuthMode(mode) {
    this.authMode = mode;
    const login = mode === 'login';
    $('auth-title').textContent = login ? 'Welcome back' : 'Create an account';
    $('auth-submit').textContent = login ? 'Log in' : 'Register';
    $('auth-switch-text').textContent = login ? 'Need an account?' : 'Already have an account?';
    $('auth-switch').textContent = login ? 'Register' : 'Log in';
    $('auth-password').autocomplete = login ? 'current-password' : 'new-password';
  }

  async submitAuth(e) {
    e.preventDefault();
    const username = $('auth-username').value.trim();
    const password = $('auth-password').value;
    const err = $('auth-error');
    if (!username || !password) {
      err.textContent = 'Enter a username and a password.';
      return;
    }
    $('auth-submit').disabled = true;
    err.textContent = '';
    try {
      const path = this.authMode === 'login' ? '/auth/login' : '/auth/register';
      const res = await this.api.post(path, { username, password }, { auth: false });
      localStorage.setItem(tokenKey, res.token);
      $('auth-password').value = '';
      this.startSession(res.token);
    } catch (ex) {
      err.textContent = ex instanceof ApiError ? ex.message : 'Cannot reach the server.';
    } finally {
      $('auth-submit').disabled = false;
    }
  }

  async startSession(token) {
    this.api.token = token;
    $('auth').hidden = true;
    $('shell').hidden = false;
    this.setConn('connecting');
    this.store.reset();
    this.guildId = null;
    this.channelId = null;
    this.ensureList();
    this.render();
    try {
      const me = await this.api.get('/users/@me');
      this.store.me = me;
      this.renderMe();
    } catch (ex) {
      if (ex instanceof ApiError && ex.status === 401) return; // onUnauthorized logged out
      // The server may be restarting: the gateway client retries by itself.
    }
    this.gw = new GatewayClient({
      token,
      gatewayURL: () => this.gatewayURL(),
      onDispatch: (t, d) => this.onDispatch(t, d),
      onState: (s, detail) => this.onGatewayState(s, detail),
    });
    this.gw.start();
  }

  async gatewayURL() {
    const { url } = await this.api.get('/gateway');
    const u = new URL(url);
    // A server listening on every interface reports 0.0.0.0 or [::]: use the host this page came from.
    if (['0.0.0.0', '[::]', '::', ''].includes(u.hostname)) u.hostname = location.hostname;
    if (location.protocol === 'https:' && u.protocol === 'ws:' && u.host === location.host) u.protocol = 'wss:';
    return u.toString();
  }

  async logout(message) {
    const token = this.api.token;
    if (this.gw) this.gw.stop();
    this.gw = null;
    localStorage.removeItem(tokenKey);
    if (token && !message) {
      // Revoke the token where the server can (Discord-style POST /auth/logout).
      try {
        await this.api.post('/auth/logout', {});
      } catch { /* an older server has no logout: the token is forgotten here */ }
    }
    this.api.token = null;
    this.store.reset();
    this.guildId = null;
    this.channelId = null;
    if (this.list) this.list.setItems([], { reset: true });
    this.showAuth(message);
  }

  // ---------------------------------------------------------------- gateway

  onGatewayState(state, detail) {
    if (state === 'failed') {
      if (detail.code === 4004) {
        this.logout('Your session has ended. Log in again.');
        return;
      }
      this.showBanner(`Disconnected: ${detail.reason}`, true);
    }
    if (state === 'connected' && detail.how === 're-identified') this.refetchAfterNewSession();
    this.setConn(state, detail);
  }

  setConn(state, detail = {}) {
    const c = $('conn');
    c.dataset.state = state;
    c.dataset.how = detail.how || '';
    const label = {
      connecting: 'Connecting…',
      connected: detail.how === 're-identified' ? 'Reconnected (new session)' : 'Connected',
      resumed: 'Resumed',
      reconnecting: 'Reconnecting…',
      failed: 'Disconnected',
    }[state] || state;
    c.textContent = label;
    c.title = {
      connected: detail.how === 're-identified' ? 'The old session had expired: a new one started and missed messages were fetched.' : 'Live',
      resumed: 'The connection dropped and was resumed: every missed event was replayed.',
      reconnecting: 'The connection dropped. Resuming…',
    }[state] || '';
    clearTimeout(this.bannerTimer);
    if (state === 'reconnecting') {
      // A short blip needs no banner; a longer outage does.
      this.bannerTimer = setTimeout(() => this.showBanner('Connection lost. Reconnecting…'), 3000);
    } else if (state !== 'failed') {
      $('banner').hidden = true;
    }
  }

  showBanner(text, error = false) {
    const b = $('banner');
    b.textContent = text;
    b.classList.toggle('error', error);
    b.hidden = false;
  }

  onDispatch(t, d) {
    const s = this.store;
    switch (t) {
      case 'READY':
        s.ready(d);
        this.renderMe();
        if (!d.guilds.length) this.selectGuild(null); // the welcome screen
        this.maybeAcceptInvite();
        break;
      case 'GUILD_CREATE':
        s.guildCreate(d);
        this.onGuildAvailable(d.id);
        break;
      case 'GUILD_UPDATE':
        s.guildCreate({ ...s.guilds.get(d.id), ...d, channels: undefined });
        break;
      case 'GUILD_DELETE':
        s.removeGuild(d.id);
        if (this.guildId === d.id) this.selectGuild(s.guildOrder[0] || null);
        break;
      case 'CHANNEL_CREATE':
      case 'CHANNEL_UPDATE':
        s.addChannel(d);
        break;
      case 'CHANNEL_DELETE':
        s.removeChannel(d.id);
        if (this.channelId === d.id) this.selectGuild(this.guildId);
        break;
      case 'MESSAGE_CREATE':
        s.messageCreate(d);
        break;
      case 'MESSAGE_UPDATE':
        s.messageUpdate(d);
        break;
      case 'MESSAGE_DELETE':
        s.messageDelete(d);
        break;
      case 'MESSAGE_DELETE_BULK':
        for (const id of d.ids || []) s.messageDelete({ id, channel_id: d.channel_id });
        break;
      case 'MESSAGE_REACTION_ADD':
      case 'MESSAGE_REACTION_REMOVE':
      case 'MESSAGE_REACTION_REMOVE_ALL':
      case 'MESSAGE_REACTION_REMOVE_EMOJI':
        s.reaction(t, d);
        break;
      case 'MESSAGE_ACK':
        s.ack(d.channel_id, d.message_id);
        break;
      case 'TYPING_START':
        s.typingStart(d);
        break;
      case 'PRESENCE_UPDATE':
        s.presenceUpdate(d);
        break;
      case 'GUILD_MEMBERS_CHUNK':
        s.membersChunk(d);
        break;
      case 'GUILD_MEMBER_ADD':
        s.memberAdd(d);
        // The newcomer's presence is not announced to this guild right away.
        if (d.guild_id === this.guildId && this.gw && !s.guilds.get(d.guild_id)?.large) {
          this.gw.requestGuildMembers(d.guild_id, { userIds: [d.user.id], presences: true });
        }
        break;
      case 'GUILD_MEMBER_REMOVE':
        s.memberRemove(d);
        break;
      case 'GUILD_MEMBER_UPDATE':
        s.memberUpdate(d);
        break;
      default:
    }
  }

  onGuildAvailable(guildId) {
    if (this.pendingGuild === guildId || (!this.guildId && !this.pendingGuild)) {
      const ch = this.pendingChannel;
      this.pendingGuild = null;
      this.pendingChannel = null;
      this.selectGuild(guildId, ch);
      return;
    }
    if (guildId === this.guildId) {
      if (this.channelId && !this.store.channels.has(this.channelId)) this.selectGuild(guildId);
      this.probeUnread(guildId);
      // A new session: member lists are asked for again.
      this.requestMembers(guildId, true);
    }
    this.maybeAcceptInvite();
  }

  /**
   * After a new session (INVALID_SESSION, then IDENTIFY) the events between the
   * two sessions were not replayed: fetch what the open channel missed and forget
   * the other channels' pages (they load again when opened).
   */
  async refetchAfterNewSession() {
    for (const [id, log] of this.store.logs) {
      if (id !== this.channelId) {
        this.store.logs.delete(id);
        continue;
      }
      if (!log.loaded) continue;
      let complete = false;
      for (let i = 0; i < maxGapPages; i++) {
        const after = log.newest();
        if (!after) break;
        let page;
        try {
          page = await this.api.get(`/channels/${id}/messages?after=${after}&limit=100`);
        } catch {
          break;
        }
        log.merge(page);
        for (const m of page) this.store.noteLast(id, m.id);
        if (page.length < 100) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        // Too much was missed to page through: start again from the newest page.
        this.store.logs.delete(id);
        if (this.channelId === id) this.selectChannel(id);
        continue;
      }
      this.queue('messages');
    }
    this.probed.clear();
    if (this.guildId) this.probeUnread(this.guildId);
  }

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

  // ---------------------------------------------------------------- selection

  selectGuild(guildId, channelId) {
    this.guildId = guildId;
    this.closeDrawers(false);
    if (!guildId) {
      this.selectChannel(null);
      this.queue('rail');
      this.queue('sidebar');
      this.queue('members');
      return;
    }
    const remembered = localStorage.getItem(`guildhall.channel.${guildId}`);
    let ch = channelId && this.store.channels.has(channelId) ? channelId : null;
    if (!ch && remembered && this.store.channels.has(remembered)) ch = remembered;
    if (!ch) ch = this.store.firstTextChannel(guildId);
    this.selectChannel(ch);
    this.requestMembers(guildId);
    this.probeUnread(guildId);
    this.queue('rail');
    this.queue('members');
  }

  selectChannel(channelId) {
    if (this.channelId) this.drafts.set(this.channelId, this.editing ? this.draftBeforeEdit || '' : $('composer-input').value);
    this.cancelContext(false);
    this.channelId = channelId;
    const ch = channelId && this.store.channels.get(channelId);
    if (ch && ch.guild_id) {
      if (ch.guild_id !== this.guildId) {
        this.guildId = ch.guild_id;
        this.queue('rail');
        this.queue('members');
      }
      localStorage.setItem(`guildhall.channel.${ch.guild_id}`, channelId);
    }
    $('channel-name').textContent = ch ? ch.name : '';
    $('channel-topic').textContent = (ch && ch.topic) || '';
    document.title = ch ? `#${ch.name} · ${this.store.guilds.get(ch.guild_id)?.name || 'Guildhall'}` : 'Guildhall';
    const input = $('composer-input');
    input.value = (channelId && this.drafts.get(channelId)) || '';
    input.placeholder = ch ? `Message #${ch.name}` : 'Message';
    this.autosize();
    $('composer').hidden = !ch;
    $('messages').setAttribute('aria-label', ch ? `Messages in #${ch.name}` : 'Messages');
    this.renderEmpty();
    this.ensureList();
    if (ch) {
      const log = this.store.log(channelId);
      if (!log.loaded && !log.loading) this.loadLatest(channelId);
      this.list.setItems(this.rows(), { reset: true });
      this.markRead();
    } else {
      this.list.setItems([], { reset: true });
    }
    this.queue('sidebar');
    this.queue('typing');
    this.closeDrawers(false);
  }

  renderEmpty() {
    const empty = $('empty');
    const noGuilds = this.store.me && !this.store.guildOrder.length && this.gw && this.gw.sessionId;
    const ch = this.channelId;
    empty.textContent = '';
    if (ch) {
      empty.hidden = true;
      $('messages').hidden = false;
      return;
    }
    $('messages').hidden = true;
    empty.hidden = false;
    if (noGuilds) {
      empty.append(el('div', {},
        el('h2', { text: 'Welcome to Guildhall' }),
        el('p', { text: 'You are not in any server yet. Create one, or join with an invite link.' }),
        el('div', { class: 'actions' },
          el('button', { class: 'primary', type: 'button', text: 'Create a server', onclick: () => this.createGuild() }),
          el('button', { class: 'secondary', type: 'button', text: 'Join with an invite', onclick: () => this.joinGuild() }))));
    } else if (this.guildId) {
      empty.append(el('div', {}, el('h2', { text: 'No text channels' }), el('p', { text: 'This server has no channel you can read yet.' })));
    } else {
      empty.append(el('div', {}, el('p', { text: 'Loading…' })));
    }
  }

  ensureList() {
    if (this.list) return;
    this.list = new VirtualList($('messages'), {
      key: (it) => it.key || it.id,
      signature: (it, i, items) => this.signature(it, i, items),
      render: (it, i, items) => this.renderRow(it, i, items),
      estimate: (it, i, items) => {
        if (it.kind === 'start') return 96;
        if (it.kind === 'loading') return 48;
        const { head, day } = this.grouping(it, i, items);
        return (head ? 58 : 22) + (day ? 40 : 0);
      },
      onNearTop: () => this.loadOlder(),
      onScroll: () => {
        this.closePicker();
        if (this.list.atBottom) this.markRead();
        this.updateJump();
      },
    });
  }

  rows() {
    const log = this.channelId && this.store.logs.get(this.channelId);
    if (!log) return [];
    const head = log.loaded && !log.hasOlder ? [{ kind: 'start', key: 'start' }] : [{ kind: 'loading', key: 'loading' }];
    return head.concat(log.items, log.pending);
  }

  renderMessages() {
    if (!this.list || !this.channelId) return;
    this.list.setItems(this.rows());
    this.markRead();
    this.updateJump();
  }

  /** Shows "jump to present" while the reader is away from the newest messages. */
  updateJump() {
    const j = $('jump');
    const away = !!this.channelId && this.list && !this.list.atBottom;
    if (j.hidden === !away) return;
    j.hidden = !away;
  }

  /**
   * Arrow keys in the message list move between messages (roving focus); a
   * focused message shows its actions, which Tab then reaches.
   */
  onListKey(e) {
    if ((e.key !== 'ArrowUp' && e.key !== 'ArrowDown') || e.altKey || e.ctrlKey || e.metaKey) return;
    const rows = [...document.querySelectorAll('#messages .msg[data-id]:not([data-id=""])')]
      .sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top);
    if (!rows.length) return;
    const cur = e.target.closest && e.target.closest('.msg');
    let i = cur ? rows.indexOf(cur) : e.key === 'ArrowUp' ? rows.length : -1;
    i += e.key === 'ArrowUp' ? -1 : 1;
    if (i < 0 || i >= rows.length) return; // past the drawn rows: the list scrolls as usual
    e.preventDefault();
    rows[i].focus({ preventScroll: true });
    this.list.scrollToKey(rows[i].dataset.id, 'nearest');
  }

  // ---------------------------------------------------------------- history

  async loadLatest(channelId) {
    const log = this.store.log(channelId);
    log.loading = true;
    try {
      const page = await this.api.get(`/channels/${channelId}/messages?limit=${pageSize}`);
      log.merge(page);
      log.loaded = true;
      log.hasOlder = page.length === pageSize;
      for (const m of page) this.store.rememberUser(m.author);
      if (log.newest()) this.store.noteLast(channelId, log.newest());
      if (this.store.read && !this.store.read.has(channelId) && this.store.read.fresh && log.newest()) {
        this.store.read.set(channelId, log.newest());
      }
      this.probeCapabilities(channelId, page[0]);
    } catch (ex) {
      log.loaded = false;
      if (this.channelId === channelId) toast(`Could not load messages: ${ex.message}`, { error: true });
    } finally {
      log.loading = false;
    }
    if (this.channelId === channelId) {
      this.list.setItems(this.rows(), { reset: !this.list.items.length || this.list.atBottom });
      this.markRead();
    }
    this.queue('sidebar');
  }

  loadOlder() {
    const channelId = this.channelId;
    const log = channelId && this.store.logs.get(channelId);
    if (!log || !log.loaded || !log.hasOlder || log.loadingOlder) return;
    const before = log.oldest();
    if (!before) return;
    log.loadingOlder = (async () => {
      try {
        const page = await this.api.get(`/channels/${channelId}/messages?before=${before}&limit=${olderPageSize}`);
        log.merge(page);
        log.hasOlder = page.length === olderPageSize;
        for (const m of page) this.store.rememberUser(m.author);
      } catch (ex) {
        toast(`Could not load older messages: ${ex.message}`, { error: true });
        await new Promise((r) => setTimeout(r, 2000));
      } finally {
        log.loadingOlder = null;
      }
      if (this.channelId === channelId) this.list.setItems(this.rows());
    })();
  }

  /** Asks each text channel of the guild for its newest message, to mark unread channels (no read states from the server). */
  async probeUnread(guildId) {
    const g = this.store.guilds.get(guildId);
    if (!g) return;
    const todo = [...g.channelIds]
      .map((id) => this.store.channels.get(id))
      .filter((c) => c && isTextChannel(c) && !this.probed.has(c.id) && !this.store.lastMessage.has(c.id))
      .slice(0, 30);
    for (const c of todo) this.probed.add(c.id);
    const worker = async () => {
      for (let c = todo.shift(); c; c = todo.shift()) {
        try {
          const [m] = await this.api.get(`/channels/${c.id}/messages?limit=1`);
          if (m) {
            this.store.noteLast(c.id, m.id);
            if (this.store.read && this.store.read.fresh && !this.store.read.has(c.id)) this.store.read.set(c.id, m.id);
          }
        } catch { /* a channel we may not read: no mark */ }
      }
    };
    await Promise.all([worker(), worker()]);
    if (this.store.read) this.store.read.fresh = false;
    this.queue('sidebar');
    this.queue('rail');
  }

  /**
   * Learns from the server's answers whether it has replies: a message whose
   * message_reference is not an object is refused either way, so nothing is sent.
   * A server with replies names the field (Discord's 50035 with
   * errors.message_reference); one without ignores it and finds the message
   * empty (50006).
   */
  async probeReplies(channelId) {
    const caps = this.store.caps;
    if (caps.replies !== null || this.probingReplies) return;
    this.probingReplies = true;
    try {
      await this.api.post(`/channels/${channelId}/messages`, { message_reference: 0 });
    } catch (ex) {
      if (ex instanceof ApiError && caps.replies === null) {
        if (ex.code === 50035 && ex.body && ex.body.errors && ex.body.errors.message_reference) caps.replies = true;
        else if (ex.code === 50006) caps.replies = false;
      }
    } finally {
      this.probingReplies = false;
    }
    if (this.list && caps.replies !== null) this.list.setItems(this.rows());
  }

  /** Learns from the server's answers whether it has reactions (no side effects). */
  async probeCapabilities(channelId, message) {
    this.probeReplies(channelId);
    const caps = this.store.caps;
    if (caps.reactions !== null || !message || this.probingReactions) return;
    this.probingReactions = true;
    try {
      await this.api.get(`/channels/${channelId}/messages/${message.id}/reactions/${encodeURIComponent('👍')}?limit=1`);
      caps.reactions = true;
    } catch (ex) {
      // No such route: an older server. Any other answer means the route exists.
      caps.reactions = !(ex instanceof ApiError && ex.unknownRoute);
      if (!(ex instanceof ApiError)) caps.reactions = null;
    } finally {
      this.probingReactions = false;
    }
    this.queue('messages');
    if (this.list) this.list.setItems(this.rows());
  }

  // ---------------------------------------------------------------- message rows

  grouping(m, i, items) {
    if (m.kind === 'start' || m.kind === 'loading') return { head: true, day: false };
    const prev = items[i - 1];
    const t = msgTime(m);
    if (!prev || prev.kind === 'start' || prev.kind === 'loading') return { head: true, day: true };
    const pt = msgTime(prev);
    const day = !sameDay(pt, t);
    const head = day || !!m.message_reference || prev.author.id !== m.author.id || t - pt > groupMs;
    return { head, day };
  }

  signature(m, i, items) {
    if (m.kind === 'start' || m.kind === 'loading') return m.kind;
    const { head, day } = this.grouping(m, i, items);
    return [m.content, m.edited_timestamp || '', head ? 1 : 0, day ? 1 : 0, m.reactions ? JSON.stringify(m.reactions) : '',
      this.editing && this.editing.id === m.id ? 'e' : '', this.store.caps.reactions ? 'r' : '', this.store.caps.replies ? 'y' : '',
      m.kind || '', m.failed ? 'f' : '', m.referenced_message ? m.referenced_message.content : ''].join('\u0001');
  }

  renderRow(m, i, items) {
    if (m.kind === 'start') {
      const ch = this.store.channels.get(this.channelId);
      return el('div', { class: 'history-start', role: 'listitem' },
        el('h2', { text: `Welcome to #${ch ? ch.name : ''}` }),
        el('p', { text: 'This is the start of the channel.' }));
    }
    if (m.kind === 'loading') return el('div', { class: 'history-loading', role: 'listitem', text: 'Loading older messages…' });
    const { head, day } = this.grouping(m, i, items);
    const me = this.store.me;
    const mine = me && m.author.id === me.id;
    const name = this.store.displayName(m.author.id, m.guild_id || this.guildId);
    const t = msgTime(m);
    const row = el('div', {
      class: ['msg', head ? 'head' : '', m.kind === 'pending' ? 'pending' : '', m.failed ? 'failed' : '',
        this.editing && this.editing.id === m.id ? 'editing' : '', me && !mine && mentions(m.content || '', me.id) ? 'mentioned' : ''].filter(Boolean).join(' '),
      role: 'listitem', dataset: { id: m.id || '', author: m.author.id },
      tabindex: m.id ? '-1' : null, // reachable with the arrow keys (see onListKey)
    });
    const wrap = el('div', {});
    if (day) wrap.append(el('div', { class: 'day', role: 'separator', text: dayFmt.format(t) }));
    wrap.append(row);
    if (m.message_reference) {
      const ref = m.referenced_message;
      const line = el('div', { class: 'reply-to' });
      if (ref) line.append(el('b', { text: this.store.displayName(ref.author.id, ref.guild_id || this.guildId) }), document.createTextNode(` ${ref.content || ''}`));
      else line.append(document.createTextNode('Original message was deleted'));
      row.append(line);
    }
    if (head) {
      row.append(avatar(m.author));
      row.append(el('div', { class: 'meta' },
        el('span', { class: 'author', text: name }),
        el('time', { datetime: new Date(t).toISOString(), title: dateTimeFmt.format(t), text: sameDay(t, Date.now()) ? `Today at ${timeFmt.format(t)}` : dateTimeFmt.format(t) })));
    } else {
      row.append(el('time', { class: 'gutter-time', datetime: new Date(t).toISOString(), title: dateTimeFmt.format(t), text: timeFmt.format(t) }));
    }
    const content = el('div', { class: 'content' });
    content.append(renderContent(m.content || '', {
      user: (id) => this.store.displayName(id, this.guildId),
      role: (id) => (this.store.guilds.get(this.guildId)?.roles || []).find((r) => r.id === id)?.name || 'role',
      channel: (id) => this.store.channels.get(id)?.name || 'channel',
    }));
    if (m.edited_timestamp) content.append(el('span', { class: 'edited', title: dateTimeFmt.format(Date.parse(m.edited_timestamp)), text: '(edited)' }));
    if (m.failed) content.append(el('span', { class: 'edited', text: ` — not sent: ${m.failed}` }));
    row.append(content);
    for (const a of m.attachments || []) {
      if (!/^(https?:\/\/|\/)/.test(a.url || '')) continue; // never a javascript: or data: link
      const link = el('a', { class: 'attachment', href: a.url, target: '_blank', rel: 'noopener noreferrer' });
      if ((a.content_type || '').startsWith('image/')) link.append(el('img', { src: a.url, alt: a.filename || 'image', loading: 'lazy' }));
      else link.textContent = `📎 ${a.filename}`;
      row.append(link);
    }
    if (m.reactions && m.reactions.length && this.store.caps.reactions) {
      const rs = el('div', { class: 'reactions' });
      for (const r of m.reactions) {
        const label = r.emoji.id ? `:${r.emoji.name}:` : r.emoji.name;
        rs.append(el('button', {
          class: `reaction${r.me ? ' me' : ''}`, type: 'button', 'aria-pressed': r.me ? 'true' : 'false',
          'aria-label': `${label} ${r.count} reaction${r.count === 1 ? '' : 's'}${r.me ? ', including yours' : ''}`,
          onclick: () => this.toggleReaction(m, r.emoji.name, !r.me),
        }, label, el('span', { text: String(r.count) })));
      }
      row.append(rs);
    }
    if (m.kind !== 'pending') row.append(this.rowActions(m, mine));
    return wrap;
  }

  rowActions(m, mine) {
    const bar = el('div', { class: 'actions', role: 'toolbar', 'aria-label': 'Message actions' });
    const add = (label, icon, fn, cls) => bar.append(el('button', { type: 'button', class: cls, 'aria-label': label, title: label, onclick: fn }, svg(icon)));
    if (this.store.caps.reactions) add('Add reaction', icons.smile, (e) => this.openPicker(m, e.currentTarget));
    if (this.store.caps.replies) add('Reply', icons.reply, () => this.startReply(m));
    if (mine) add('Edit message', icons.edit, () => this.startEdit(m));
    if (mine || this.canInGuild(this.guildId, Perm.MANAGE_MESSAGES)) add('Delete message', icons.trash, (e) => this.deleteMessage(m, e.shiftKey), 'delete');
    return bar;
  }

  openPicker(m, anchor) {
    this.closePicker();
    const row = anchor.closest('.msg');
    const picker = el('div', { class: 'emoji-picker', role: 'menu', 'aria-label': 'Pick a reaction' });
    for (const e of quickReactions) {
      picker.append(el('button', { type: 'button', role: 'menuitem', 'aria-label': `React with ${e}`, text: e, onclick: () => { this.closePicker(); this.toggleReaction(m, e, true); } }));
    }
    picker.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') { ev.stopPropagation(); this.closePicker(); anchor.focus(); } });
    row.append(picker);
    this.pickerFor = picker;
    picker.querySelector('button').focus();
  }

  closePicker() {
    if (this.pickerFor) this.pickerFor.remove();
    this.pickerFor = null;
  }

  async toggleReaction(m, emoji, add) {
    const path = `/channels/${m.channel_id}/messages/${m.id}/reactions/${encodeURIComponent(emoji)}/@me`;
    try {
      if (add) await this.api.put(path);
      else await this.api.delete(path);
    } catch (ex) {
      if (ex instanceof ApiError && ex.unknownRoute) {
        this.store.caps.reactions = false;
        toast('This server does not support reactions.');
        this.queue('messages');
      } else toast(`Could not react: ${ex.message}`, { error: true });
    }
  }

  // ---------------------------------------------------------------- composer

  autosize() {
    const t = $('composer-input');
    t.style.height = 'auto';
    t.style.height = `${Math.min(t.scrollHeight, window.innerHeight * 0.4)}px`;
  }

  onComposerKey(e) {
    const input = $('composer-input');
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      this.submitComposer();
    } else if (e.key === 'Escape') {
      if (this.editing || this.replyTo) {
        e.preventDefault();
        e.stopPropagation();
        this.cancelContext(true);
      }
    } else if (e.key === 'ArrowUp' && !input.value && !this.editing && !e.shiftKey && !e.altKey) {
      const m = this.lastOwnMessage();
      if (m) {
        e.preventDefault();
        this.startEdit(m);
      }
    }
  }

  lastOwnMessage() {
    const log = this.store.logs.get(this.channelId);
    const me = this.store.me;
    if (!log || !me) return null;
    for (let i = log.items.length - 1; i >= 0; i--) if (log.items[i].author.id === me.id) return log.items[i];
    return null;
  }

  startEdit(m) {
    this.cancelContext(false);
    this.draftBeforeEdit = $('composer-input').value;
    this.editing = m;
    const input = $('composer-input');
    input.value = m.content;
    this.showContext('Editing message', 'Enter to save');
    this.autosize();
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
    this.list.scrollToKey(m.id, 'center');
    this.list.setItems(this.rows());
  }

  startReply(m) {
    this.cancelContext(false);
    this.replyTo = m;
    this.showContext(`Replying to ${this.store.displayName(m.author.id, m.guild_id || this.guildId)}`);
    $('composer-input').focus();
  }

  showContext(text, hint) {
    const t = $('composer-context-text');
    t.textContent = '';
    t.append(el('b', { text }), hint ? ` — ${hint}` : '');
    $('composer-context').hidden = false;
  }

  cancelContext(restoreFocus) {
    const wasEditing = this.editing;
    this.editing = null;
    this.replyTo = null;
    $('composer-context').hidden = true;
    if (wasEditing) {
      $('composer-input').value = this.draftBeforeEdit || '';
      this.draftBeforeEdit = '';
      this.autosize();
      if (this.list) this.list.setItems(this.rows());
    }
    if (restoreFocus) $('composer-input').focus();
  }

  async submitComposer() {
    const input = $('composer-input');
    const content = input.value.trim();
    const channelId = this.channelId;
    if (!channelId) return;
    if (this.editing) {
      const m = this.editing;
      this.cancelContext(true);
      if (!content) {
        this.deleteMessage(m, false);
        return;
      }
      if (content === m.content) return;
      try {
        const updated = await this.api.patch(`/channels/${m.channel_id}/messages/${m.id}`, { content });
        this.store.messageUpdate(updated);
      } catch (ex) {
        toast(`Could not edit: ${ex.message}`, { error: true });
      }
      return;
    }
    if (!content) return;
    if (content.length > 2000) {
      toast('Messages can be at most 2000 characters.', { error: true });
      return;
    }
    const replyTo = this.replyTo;
    this.cancelContext(false);
    input.value = '';
    this.drafts.delete(channelId);
    this.autosize();
    this.lastTypingSent = 0;
    const nonce = newNonce();
    const log = this.store.log(channelId);
    const pending = {
      kind: 'pending', key: `p:${nonce}`, id: null, nonce, channel_id: channelId, guild_id: this.guildId, content,
      author: this.store.me, timestamp: new Date().toISOString(),
    };
    log.pending.push(pending);
    this.list.scrollToBottom();
    this.queue('messages');
    const body = { content, nonce };
    if (replyTo) body.message_reference = { message_id: replyTo.id, channel_id: replyTo.channel_id, guild_id: replyTo.guild_id, fail_if_not_exists: false };
    try {
      const m = await this.api.post(`/channels/${channelId}/messages`, body);
      log.pending = log.pending.filter((p) => p !== pending);
      if (replyTo) {
        const supported = !!m.message_reference;
        if (!supported && this.store.caps.replies !== false) toast('This server does not support replies yet: your message was sent without the reply.');
        this.store.caps.replies = supported;
      }
      this.store.messageCreate(m); // deduplicated with the gateway's MESSAGE_CREATE by id
      this.list.scrollToBottom();
    } catch (ex) {
      pending.failed = ex.message;
      pending.kind = 'pending';
      this.queue('messages');
      toast(`Message not sent: ${ex.message}`, { error: true });
      setTimeout(() => {
        log.pending = log.pending.filter((p) => p !== pending);
        if (this.channelId === channelId) this.queue('messages');
      }, 8000);
    }
  }

  onComposerInput() {
    this.autosize();
    const now = Date.now();
    if (!this.editing && this.channelId && $('composer-input').value.trim() && now - this.lastTypingSent > typingEveryMs) {
      this.lastTypingSent = now;
      this.api.post(`/channels/${this.channelId}/typing`).catch(() => {});
    }
  }

  async deleteMessage(m, skipConfirm) {
    if (!skipConfirm) {
      const ok = await formModal('Delete message', {
        intro: 'Delete this message? This cannot be undone. (Shift-click the delete button to skip this question.)',
        submitLabel: 'Delete', danger: true,
      });
      if (!ok) return;
    }
    try {
      await this.api.delete(`/channels/${m.channel_id}/messages/${m.id}`);
      this.store.messageDelete({ id: m.id, channel_id: m.channel_id });
    } catch (ex) {
      toast(`Could not delete: ${ex.message}`, { error: true });
    }
  }

  renderTyping() {
    const ids = this.channelId ? this.store.typers(this.channelId) : [];
    const names = ids.map((id) => this.store.displayName(id, this.guildId));
    let text = '';
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length === 3) text = `${names[0]}, ${names[1]} and ${names[2]} are typing…`;
    else if (names.length > 3) text = 'Several people are typing…';
    const t = $('typing');
    if (t.textContent !== text) t.textContent = text;
  }

  // ---------------------------------------------------------------- read states

  markRead() {
    const ch = this.channelId;
    const log = ch && this.store.logs.get(ch);
    if (!log || !log.loaded || !this.list || !this.list.atBottom || document.hidden) return;
    const newest = log.newest();
    if (!newest || !this.store.read) return;
    if (this.store.read.set(ch, newest)) {
      this.queue('sidebar');
      this.queue('rail');
      this.sendAck(ch, newest);
    }
  }

  sendAck(channelId, messageId) {
    if (this.store.caps.ack === false) return;
    clearTimeout(this.ackTimer);
    this.ackTimer = setTimeout(async () => {
      try {
        await this.api.post(`/channels/${channelId}/messages/${messageId}/ack`, { token: null });
        this.store.caps.ack = true;
      } catch (ex) {
        if (ex instanceof ApiError && ex.unknownRoute) this.store.caps.ack = false; // read states stay in this browser
      }
    }, 1000);
  }

  // ---------------------------------------------------------------- members

  requestMembers(guildId, again = false) {
    const g = this.store.guilds.get(guildId);
    if (!g || g.unavailable || g.large || !this.gw) return;
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
    if (g.large) {
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

  // ---------------------------------------------------------------- guilds, channels, invites

  async createGuild() {
    const res = await formModal('Create a server', {
      intro: 'Your server is where you and your friends hang out.',
      fields: [{ name: 'name', label: 'Server name', maxLength: 100, value: this.store.me ? `${this.store.me.username}'s server` : '', autofocus: true }],
      submitLabel: 'Create',
      submit: async ({ name }) => {
        if (name.trim().length < 2) throw new Error('A server name needs at least 2 characters.');
        return this.api.post('/guilds', { name: name.trim() });
      },
    });
    if (res && res.id) this.goToGuild(res.id);
  }

  goToGuild(guildId, channelId) {
    if (this.store.guilds.get(guildId)?.channelIds.size) this.selectGuild(guildId, channelId);
    else {
      // GUILD_CREATE is on its way over the gateway.
      this.pendingGuild = guildId;
      this.pendingChannel = channelId || null;
    }
  }

  async createChannel() {
    const g = this.store.guilds.get(this.guildId);
    if (!g) return;
    const cats = this.store.channelTree(g.id).filter((x) => x.category).map((x) => [x.category.id, x.category.name]);
    const res = await formModal('Create a channel', {
      fields: [
        { name: 'name', label: 'Channel name', maxLength: 100, placeholder: 'new-channel', autofocus: true },
        { name: 'type', label: 'Type', options: [['0', 'Text channel'], ['4', 'Category']] },
        ...(cats.length ? [{ name: 'parent', label: 'Category', options: [['', 'None'], ...cats] }] : []),
      ],
      submitLabel: 'Create',
      submit: async ({ name, type, parent }) => {
        const body = { name: type === '0' ? name.trim().toLowerCase().replace(/\s+/g, '-') : name.trim(), type: Number(type) };
        if (!body.name) throw new Error('Give the channel a name.');
        if (parent && type === '0') body.parent_id = parent;
        return this.api.post(`/guilds/${g.id}/channels`, body);
      },
    });
    if (res && res.id) {
      this.store.addChannel(res);
      if (res.type !== ChannelType.CATEGORY) this.selectChannel(res.id);
    }
  }

  async invitePeople() {
    const channelId = this.channelId;
    if (!channelId) return;
    let inv;
    try {
      inv = await this.api.post(`/channels/${channelId}/invites`, { max_age: 7 * 24 * 3600 });
    } catch (ex) {
      toast(`Could not create an invite: ${ex.message}`, { error: true });
      return;
    }
    const link = `${location.origin}/invite/${inv.code}`;
    await modal(`Invite friends to ${this.store.guilds.get(this.guildId)?.name || 'this server'}`, (box, close) => {
      const input = el('input', { readonly: true, value: link, 'aria-label': 'Invite link', id: 'invite-link' });
      const copy = el('button', {
        type: 'button', class: 'primary', text: 'Copy',
        onclick: async () => {
          try {
            await navigator.clipboard.writeText(link);
            copy.textContent = 'Copied';
          } catch {
            input.select();
          }
        },
      });
      box.append(el('p', { text: 'Send this link to someone. It expires in 7 days.' }), el('div', { class: 'copy-row' }, input, copy),
        el('div', { class: 'buttons' }, el('button', { type: 'button', class: 'secondary', text: 'Done', onclick: () => close() })));
      setTimeout(() => input.select(), 0);
    });
  }

  async joinGuild() {
    await formModal('Join a server', {
      intro: 'Paste an invite link or code.',
      fields: [{ name: 'invite', label: 'Invite link', placeholder: `${location.origin}/invite/abc123`, autofocus: true }],
      submitLabel: 'Join',
      submit: async ({ invite }) => {
        const code = invite.trim().replace(/\/+$/, '').split('/').pop();
        if (!code) throw new Error('Paste an invite link or code.');
        await this.acceptInvite(code);
        return true;
      },
    });
  }

  async acceptInvite(code) {
    const res = await this.api.post(`/invites/${encodeURIComponent(code)}`, {});
    toast(res.new_member === false ? `You are already in ${res.guild.name}.` : `Joined ${res.guild.name}.`);
    this.goToGuild(res.guild.id, res.channel && res.channel.id);
    return res;
  }

  /** Opens the invite this page was loaded with (/invite/{code}) once the session is ready. */
  async maybeAcceptInvite() {
    const code = sessionStorage.getItem(inviteKey);
    if (!code || this.inviteShown || !this.store.me) return;
    this.inviteShown = true;
    let preview = null;
    try {
      preview = await this.api.get(`/invites/${encodeURIComponent(code)}?with_counts=true`);
      this.store.caps.invitePreview = true;
    } catch (ex) {
      if (ex instanceof ApiError && !ex.unknownRoute) {
        sessionStorage.removeItem(inviteKey);
        history.replaceState(null, '', '/');
        toast(`This invite is not valid: ${ex.message}`, { error: true });
        return;
      }
      this.store.caps.invitePreview = false; // older server: no preview, accepting tells
    }
    const already = preview && this.store.guilds.has(preview.guild.id);
    const intro = preview
      ? `${preview.inviter ? `${preview.inviter.username} invited you` : 'You have been invited'} to join ${preview.guild.name}${preview.approximate_member_count ? ` (${preview.approximate_member_count} members)` : ''}.`
      : `You have been invited to join a server (invite ${code}).`;
    // The invite is in hand: a reload should not offer it again.
    sessionStorage.removeItem(inviteKey);
    if (location.pathname.startsWith('/invite/')) history.replaceState(null, '', '/');
    await formModal(already ? `You are in ${preview.guild.name}` : 'Join a server', {
      intro,
      submitLabel: already ? 'Open' : 'Accept invite',
      submit: async () => (already ? this.goToGuild(preview.guild.id) : this.acceptInvite(code)),
    });
  }

  // ---------------------------------------------------------------- chrome

  applyTheme(theme) {
    this.theme = theme;
    if (theme === 'system') delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = theme;
    const b = $('theme-toggle');
    if (b) {
      const label = { system: 'Theme: system (click for light)', light: 'Theme: light (click for dark)', dark: 'Theme: dark (click for system)' }[theme];
      b.setAttribute('aria-label', label);
      b.title = label;
    }
  }

  cycleTheme() {
    const next = { system: 'light', light: 'dark', dark: 'system' }[this.theme] || 'system';
    localStorage.setItem(themeKey, next);
    this.applyTheme(next);
  }

  toggleNav(open) {
    const shell = $('shell');
    const on = open ?? !shell.classList.contains('nav-open');
    shell.classList.toggle('nav-open', on);
    shell.classList.remove('members-open');
    $('open-nav').setAttribute('aria-expanded', String(on));
    $('scrim').hidden = !on;
    if (on) (document.querySelector('.channel[aria-current="true"]') || document.querySelector('.guild-button'))?.focus();
  }

  toggleMembers() {
    const shell = $('shell');
    if (window.matchMedia('(max-width: 1100px)').matches) {
      const on = !shell.classList.contains('members-open');
      shell.classList.toggle('members-open', on);
      shell.classList.remove('nav-open');
      $('scrim').hidden = !on;
      $('toggle-members').setAttribute('aria-pressed', String(on));
    } else {
      const hidden = shell.classList.toggle('members-hidden');
      $('toggle-members').setAttribute('aria-pressed', String(!hidden));
    }
    $('toggle-members').setAttribute('aria-label', 'Show members');
  }

  closeDrawers(focusComposer) {
    const shell = $('shell');
    const was = shell.classList.contains('nav-open') || shell.classList.contains('members-open');
    shell.classList.remove('nav-open', 'members-open');
    $('open-nav').setAttribute('aria-expanded', 'false');
    $('scrim').hidden = true;
    if (was && focusComposer) $('composer-input').focus();
    return was;
  }

  moveChannel(step) {
    const list = [...document.querySelectorAll('#channel-list .channel:not([disabled])')];
    const i = list.findIndex((b) => b.dataset.channelId === this.channelId);
    const next = list[i + step];
    if (next) this.selectChannel(next.dataset.channelId);
  }

  bindStatic() {
    $('auth-form').addEventListener('submit', (e) => this.submitAuth(e));
    $('auth-switch').addEventListener('click', () => {
      this.setAuthMode(this.authMode === 'login' ? 'register' : 'login');
      $('auth-error').textContent = '';
    });
    $('composer').addEventListener('submit', (e) => { e.preventDefault(); this.submitComposer(); });
    $('composer-input').addEventListener('keydown', (e) => this.onComposerKey(e));
    $('composer-input').addEventListener('input', () => this.onComposerInput());
    // A keydown that sends already stops the new line; a separate character
    // event (some input methods, automation) must not add one either.
    $('composer-input').addEventListener('keypress', (e) => { if (e.key === 'Enter' && !e.shiftKey) e.preventDefault(); });
    $('composer-cancel').addEventListener('click', () => this.cancelContext(true));
    $('messages').addEventListener('keydown', (e) => this.onListKey(e));
    $('jump').addEventListener('click', () => {
      this.list.scrollToBottom();
      this.updateJump();
      $('composer-input').focus();
    });
    $('add-guild').addEventListener('click', () => this.createGuild());
    $('join-guild').addEventListener('click', () => this.joinGuild());
    $('create-channel').addEventListener('click', () => this.createChannel());
    $('invite-people').addEventListener('click', () => this.invitePeople());
    $('logout').addEventListener('click', () => this.logout());
    $('theme-toggle').addEventListener('click', () => this.cycleTheme());
    $('open-nav').addEventListener('click', () => this.toggleNav());
    $('toggle-members').addEventListener('click', () => this.toggleMembers());
    $('scrim').addEventListener('click', () => this.closeDrawers(true));
    document.addEventListener('visibilitychange', () => this.markRead());
    window.addEventListener('focus', () => this.markRead());
    document.addEventListener('keydown', (e) => {
      if (modalOpen()) return;
      if (e.key === 'Escape') {
        if (this.pickerFor) { this.closePicker(); return; }
        if (this.closeDrawers(true)) return;
        if (this.editing || this.replyTo) { this.cancelContext(true); return; }
        if (this.channelId && this.list && !this.list.atBottom) {
          this.list.scrollToBottom();
          this.updateJump();
        }
        return;
      }
      if (e.altKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown') && !$('shell').hidden) {
        e.preventDefault();
        this.moveChannel(e.key === 'ArrowUp' ? -1 : 1);
        return;
      }
      // Typing anywhere goes to the composer, as in other chat applications.
      const t = e.target;
      const typingTarget = t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement || (t && t.isContentEditable);
      if (!typingTarget && !$('shell').hidden && !$('composer').hidden && e.key.length === 1 && !e.ctrlKey && !e.metaKey && !e.altKey) {
        $('composer-input').focus();
      }
    });
    window.addEventListener('popstate', () => {});
    void closeModal;
  }
}
