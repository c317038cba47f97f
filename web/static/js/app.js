// The application: the session (log in, register, log out), the gateway
// connection and its state, what the store's changes redraw, which guild and
// channel are open, history paging and read states. The views, the message
// rows, the composer, the dialogs and the page chrome are in their own files
// and join App as mixins.

import { Api, ApiError } from './api.js';
import { GatewayClient } from './gateway.js';
import { Store, isTextChannel, isLarge } from './store.js';
import { VirtualList } from './messagelist.js';
import { toast } from './modal.js';
import { $, el, mixin } from './dom.js';
import { Views } from './views.js';
import { Rows } from './rows.js';
import { Composer } from './composer.js';
import { Dialogs, inviteKey } from './dialogs.js';
import { Chrome, themeKey } from './chrome.js';

const pageSize = 50;
const olderPageSize = 100;
const maxGapPages = 10;
const tokenKey = 'guildhall.token';

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
    // A deep link (/channels/{guild}/{channel}) opens that channel once its guild arrives.
    const link = location.pathname.match(/^\/channels\/(\d{1,20})(?:\/(\d{1,20}))?\/?$/);
    if (link) {
      this.pendingGuild = link[1];
      this.pendingChannel = link[2] || null;
    }
    const token = localStorage.getItem(tokenKey);
    if (token) this.startSession(token);
    else this.showAuth();
    setInterval(() => {
      this.queue('typing'); // indicators expire
      if (isLarge(this.store.guilds.get(this.guildId))) this.queue('members'); // online counts refresh
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
    if (location.pathname.startsWith('/channels/')) history.replaceState(null, '', '/');
    this.authMode = 'login'; // whoever logged out logs in next
    this.setConn('signed-out');
    $('guild-name').textContent = '';
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
        // A deep link to a guild this user is not in opens whatever comes first.
        if (this.pendingGuild && !d.guilds.some((g) => g.id === this.pendingGuild)) this.pendingGuild = null;
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
        if (d.guild_id === this.guildId && this.gw && !isLarge(s.guilds.get(d.guild_id))) {
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
    if (ch && ch.guild_id && !location.pathname.startsWith('/invite/')) {
      history.replaceState(null, '', `/channels/${ch.guild_id}/${ch.id}`); // a reload comes back here
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
}

mixin(App, Views, Rows, Composer, Dialogs, Chrome);
