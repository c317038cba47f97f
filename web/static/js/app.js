// The application: the session (log in, register, log out), the gateway
// connection and its state, what the store's changes redraw, which guild and
// channel are open, history paging and read states. The views, the message
// rows, the composer, the dialogs and the page chrome are in their own files
// and join App as mixins.

import { Api, ApiError } from './api.js';
import { GatewayClient } from './gateway.js';
import { Store, isLarge, isPrivate, dmHome, ChannelType } from './store.js';
import { VirtualList } from './messagelist.js';
import { toast } from './modal.js';
import { $, el, mixin } from './dom.js';
import { compareIds, searchById } from './snowflake.js';
import { Views } from './views.js';
import { Rows } from './rows.js';
import { Composer } from './composer.js';
import { Dialogs, inviteKey } from './dialogs.js';
import { Chrome, themeKey } from './chrome.js';

const pageSize = 50;
const olderPageSize = 100;
const maxGapPages = 10;
const maxJumpPages = 20; // how far back a reply's quote pages for its message (100 each)
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
    this.acks = new Map(); // channel id -> message id, sent together after a pause
    this.ackTimer = 0;
    this.bannerTimer = 0;
    this.pickerFor = null;
    this.highlight = null; // the message a reply's quote jumped to, shown for a moment
    // Where the "new messages" divider of the open channel sits: {channelId,
    // after} (the last message read when it was opened). It stays until another
    // channel opens, as reading moves the read mark on.
    this.unread = null;
    this.uploads = []; // files chosen for the next message: {file, key, url}
    this.uploadDrafts = new Map(); // channel id -> uploads left there
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
    const link = location.pathname.match(/^\/channels\/(\d{1,20}|@me)(?:\/(\d{1,20}))?\/?$/);
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
    // What was read goes to the server before the token is revoked.
    if (token && !message) this.flushAcks();
    this.acks.clear();
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
    for (const u of this.uploads) if (u.url) URL.revokeObjectURL(u.url);
    this.uploads = [];
    this.uploadDrafts.clear();
    this.drafts.clear();
    this.renderUploads();
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
        if (this.pendingGuild && this.pendingGuild !== dmHome && !d.guilds.some((g) => g.id === this.pendingGuild)) this.pendingGuild = null;
        this.renderMe();
        if (this.pendingGuild === dmHome) {
          // DMs come with READY: a link to one opens now.
          const ch = this.pendingChannel;
          this.pendingGuild = null;
          this.pendingChannel = null;
          this.selectGuild(dmHome, ch);
        } else if (!d.guilds.length && this.guildId !== dmHome) this.selectGuild(null); // the welcome screen
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
      case 'CHANNEL_RECIPIENT_REMOVE': { // someone left a group DM
        const ch = s.channels.get(d.channel_id);
        if (ch) s.addChannel({ ...ch, recipients: (ch.recipients || []).filter((u) => u.id !== d.user?.id) });
        break;
      }
      case 'CHANNEL_DELETE':
        s.removeChannel(d.id);
        if (this.channelId === d.id) this.selectGuild(this.guildId);
        break;
      case 'MESSAGE_CREATE':
        s.messageCreate(d);
        // A DM this client has not seen announced (its CHANNEL_CREATE came before this session).
        if (!d.guild_id && !s.channels.has(d.channel_id)) this.fetchChannel(d.channel_id);
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
      if (!log.loaded || log.hasNewer) continue; // paging down fetches what it missed
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
  }

  async fetchChannel(channelId) {
    try {
      const ch = await this.api.get(`/channels/${channelId}`);
      if (ch && isPrivate(ch)) this.store.addChannel(ch);
    } catch { /* not ours to see */ }
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
    if (!ch) ch = guildId === dmHome ? (this.store.dmOrder()[0]?.id || null) : this.store.firstTextChannel(guildId);
    this.selectChannel(ch);
    this.requestMembers(guildId);
    this.queue('rail');
    this.queue('members');
  }

  selectChannel(channelId) {
    if (this.channelId) {
      this.drafts.set(this.channelId, this.editing ? this.draftBeforeEdit || '' : $('composer-input').value);
      this.uploadDrafts.set(this.channelId, this.uploads);
    }
    this.cancelContext(false);
    this.channelId = channelId;
    this.uploads = (channelId && this.uploadDrafts.get(channelId)) || [];
    this.uploadDrafts.delete(channelId);
    this.renderUploads();
    const ch = channelId && this.store.channels.get(channelId);
    const home = ch ? ch.guild_id || dmHome : null;
    if (home) {
      if (home !== this.guildId) {
        this.guildId = home;
        this.queue('rail');
        this.queue('members');
      }
      localStorage.setItem(`guildhall.channel.${home}`, channelId);
      if (!location.pathname.startsWith('/invite/')) history.replaceState(null, '', `/channels/${home}/${ch.id}`); // a reload comes back here
    }
    this.unread = null;
    const dm = ch && isPrivate(ch);
    const label = this.store.channelLabel(ch);
    const group = !!ch && ch.type === ChannelType.GROUP_DM;
    const shown = ch ? `${group ? '' : dm ? '@' : '#'}${label}` : '';
    $('channel-name').textContent = label;
    $('channel-name').classList.toggle('dm', !!dm);
    $('channel-name').classList.toggle('group', group);
    $('leave-group').hidden = !group;
    $('channel-topic').textContent = (ch && ch.topic) || '';
    document.title = ch ? `${shown} · ${dm ? 'Direct messages' : this.store.guilds.get(ch.guild_id)?.name || 'Guildhall'}` : 'Guildhall';
    const input = $('composer-input');
    input.value = (channelId && this.drafts.get(channelId)) || '';
    input.placeholder = ch ? `Message ${shown}` : 'Message';
    this.autosize();
    $('composer').hidden = !ch;
    $('messages').setAttribute('aria-label', ch ? `Messages in ${shown}` : 'Messages');
    this.renderEmpty();
    this.ensureList();
    if (ch) {
      const after = this.firstUnreadMark(channelId);
      this.unread = after ? { channelId, after } : null;
      let log = this.store.log(channelId);
      const holdsIt = !!after && log.loaded && !log.loading && (!log.hasOlder || (!!log.oldest() && compareIds(log.oldest(), after) <= 0));
      if (after && !holdsIt && !log.loading) {
        // The first unread message is older than what is loaded (or nothing
        // is): start there, not at the newest page.
        this.store.logs.delete(channelId);
        log = this.store.log(channelId);
        this.loadAround(channelId, after);
      } else if (!after && log.hasNewer) {
        // Opened at an unread message before and left in the middle: start at the newest.
        this.store.logs.delete(channelId);
        log = this.store.log(channelId);
        this.loadLatest(channelId);
      } else if (!log.loaded && !log.loading) this.loadLatest(channelId);
      this.list.setItems(this.rows(), { reset: true });
      if (after && log.loaded) this.scrollToUnread();
      else this.markRead();
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
    } else if (this.guildId === dmHome) {
      empty.append(el('div', {}, el('h2', { text: 'No direct messages yet' }),
        el('p', { text: 'Open one from a server\'s member list (the message button beside a name), or start a group with the New group message button.' })));
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
        if (it.kind === 'loading' || it.kind === 'loading-newer') return 48;
        if (it.kind === 'unread') return 32;
        const { head, day } = this.grouping(it, i, items);
        return (head ? 58 : 22) + (day ? 40 : 0) + (it.message_reference ? 20 : 0) + this.attachmentsHeight(it);
      },
      onNearTop: () => this.loadOlder(),
      onNearBottom: () => this.loadNewer(),
      onScroll: () => {
        // New messages scroll the list too: an open picker closes only once its
        // message is out of view.
        if (this.pickerFor && !this.pickerInView()) this.closePicker();
        if (this.list.atBottom) this.markRead();
        this.updateJump();
      },
    });
  }

  rows() {
    const log = this.channelId && this.store.logs.get(this.channelId);
    if (!log) return [];
    const head = log.loaded && !log.hasOlder ? [{ kind: 'start', key: 'start' }] : [{ kind: 'loading', key: 'loading' }];
    let items = log.items;
    const u = this.unread;
    if (u && u.channelId === this.channelId && log.loaded) {
      // The divider goes above the first message newer than the read mark,
      // once the message before it is loaded too (or there is none).
      const found = searchById(items, u.after);
      const i = found < 0 ? -found - 1 : found + 1;
      if (i < items.length && (i > 0 || !log.hasOlder)) items = items.slice(0, i).concat([{ kind: 'unread', key: 'unread' }], items.slice(i));
    }
    const tail = log.loaded && log.hasNewer ? [{ kind: 'loading-newer', key: 'loading-newer' }] : [];
    return head.concat(items, tail, log.pending);
  }

  /** The last message read in a channel that has unread messages since, or null (nothing unread, or never read). */
  firstUnreadMark(channelId) {
    const read = this.store.read.get(channelId);
    return read && this.store.isUnread(channelId) ? read : null;
  }

  /** Scrolls the "new messages" divider of the open channel to the top of the view. */
  scrollToUnread() {
    const u = this.unread;
    if (u && u.channelId === this.channelId && this.list.keyIndex.has('unread')) this.list.scrollToKey('unread', 'start');
    this.markRead();
    this.updateJump();
  }

  renderMessages() {
    if (!this.list || !this.channelId) return;
    this.list.setItems(this.rows());
    this.markRead();
    this.updateJump();
  }

  /**
   * Shows "jump to present" while the reader is away from the newest messages:
   * scrolled up, or in a log whose newest pages are not loaded.
   */
  updateJump() {
    const j = $('jump');
    const log = this.channelId && this.store.logs.get(this.channelId);
    const away = !!this.channelId && !!this.list && (!this.list.atBottom || !!(log && log.hasNewer));
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

  /**
   * Opens a channel at its first unread message: a page around the last read
   * one (Discord's around=), then older pages as the reader scrolls up and newer
   * ones (after=) as they scroll down, until the newest is loaded.
   */
  async loadAround(channelId, readId) {
    const log = this.store.log(channelId);
    log.loading = true;
    log.hasNewer = true; // live messages are held until the newest page is here
    const half = Math.floor(pageSize / 2);
    try {
      const page = await this.api.get(`/channels/${channelId}/messages?around=${readId}&limit=${pageSize}`);
      const older = page.filter((m) => compareIds(m.id, readId) < 0).length;
      log.merge(page);
      log.loaded = true;
      log.hasOlder = older >= half;
      for (const m of page) this.store.rememberUser(m.author);
      if (page.length - older < pageSize - half) log.closeGap(); // the newest is in this page
      if (log.newest()) this.store.noteLast(channelId, log.newest());
    } catch (ex) {
      log.loaded = false;
      log.hasNewer = false;
      log.heldLive = [];
      if (this.channelId === channelId) toast(`Could not load messages: ${ex.message}`, { error: true });
    } finally {
      log.loading = false;
    }
    if (this.channelId === channelId && this.store.logs.get(channelId) === log) {
      this.list.setItems(this.rows(), { reset: true });
      this.scrollToUnread();
    }
    this.queue('sidebar');
  }

  /** The next page below what is loaded, while the newest pages are not (see loadAround). */
  loadNewer() {
    const channelId = this.channelId;
    const log = channelId && this.store.logs.get(channelId);
    if (!log || !log.loaded || !log.hasNewer || log.loadingNewer) return;
    const after = log.newest();
    if (!after) return;
    log.loadingNewer = (async () => {
      try {
        const page = await this.api.get(`/channels/${channelId}/messages?after=${after}&limit=${olderPageSize}`);
        log.merge(page);
        for (const m of page) this.store.rememberUser(m.author);
        if (page.length < olderPageSize) log.closeGap();
      } catch (ex) {
        toast(`Could not load newer messages: ${ex.message}`, { error: true });
        await new Promise((r) => setTimeout(r, 2000));
      } finally {
        log.loadingNewer = null;
      }
      if (this.channelId === channelId && this.store.logs.get(channelId) === log) {
        this.list.setItems(this.rows(), { keepTop: true });
        this.markRead();
        this.updateJump();
      }
    })();
  }

  /**
   * "Jump to present": the newest messages. A log opened at the first unread
   * whose newest pages are not loaded starts again from the newest page.
   */
  jumpToPresent() {
    const channelId = this.channelId;
    if (!channelId || !this.list) return;
    const log = this.store.logs.get(channelId);
    if (log && log.hasNewer) {
      this.store.logs.delete(channelId);
      this.store.log(channelId).pending = log.pending;
      this.list.setItems(this.rows(), { reset: true });
      this.loadLatest(channelId);
    } else {
      this.list.scrollToBottom();
    }
    this.updateJump();
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

  /**
   * Shows message id of the open channel: pages back with before= until it is
   * loaded (at most maxJumpPages), scrolls it to the middle and marks it for a
   * moment. A reply's quote uses it.
   */
  async jumpTo(messageId) {
    const channelId = this.channelId;
    const log = channelId && this.store.logs.get(channelId);
    if (!log || !log.loaded) return;
    for (let i = 0; !log.byId.has(messageId) && i < maxJumpPages; i++) {
      if (!log.hasOlder || (log.oldest() && compareIds(log.oldest(), messageId) < 0)) break;
      if (!log.loadingOlder) this.loadOlder();
      await log.loadingOlder;
      if (this.channelId !== channelId) return;
    }
    if (!log.byId.has(messageId)) {
      toast('The original message is not in this channel any more, or too far back.');
      return;
    }
    this.highlight = messageId;
    this.list.setItems(this.rows());
    this.list.scrollToKey(messageId, 'center');
    this.list.rowEl(messageId)?.querySelector('.msg')?.focus({ preventScroll: true });
    clearTimeout(this.highlightTimer);
    this.highlightTimer = setTimeout(() => {
      this.highlight = null;
      if (this.list) this.list.setItems(this.rows());
    }, 2000);
  }

  // ---------------------------------------------------------------- read states

  markRead() {
    const ch = this.channelId;
    const log = ch && this.store.logs.get(ch);
    if (!log || !log.loaded || !this.list || !this.list.atBottom || document.hidden) return;
    const newest = log.newest();
    if (!newest) return;
    const read = this.store.read;
    // Read to the bottom of what is loaded; with newer pages still to load, the
    // mentions below are not read yet.
    const mentioned = !log.hasNewer && read.mentionCount(ch) > 0;
    if (!log.hasNewer) read.mentions.delete(ch);
    if (read.set(ch, newest) || mentioned) {
      this.queue('sidebar');
      this.queue('rail');
    }
    // Own messages move the mark here without the server knowing: ack them too.
    if (read.noteAcked(ch, newest)) this.sendAck(ch, newest);
  }

  /** Tells the server (Discord's POST …/ack) after a pause, so reading a busy channel is not a request per message. */
  sendAck(channelId, messageId) {
    this.acks.set(channelId, messageId);
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(() => this.flushAcks(), 1000);
  }

  /**
   * Sends the acks waiting for their pause now. Leaving the page does too
   * (keepalive outlives it), or a reload would open the channel at a divider
   * above messages already read.
   */
  flushAcks(keepalive = false) {
    clearTimeout(this.ackTimer);
    this.ackTimer = 0;
    const acks = [...this.acks];
    this.acks.clear();
    for (const [ch, id] of acks) {
      this.api.post(`/channels/${ch}/messages/${id}/ack`, { token: null }, { keepalive }).catch(() => { /* the next read acks again */ });
    }
  }
}

mixin(App, Views, Rows, Composer, Dialogs, Chrome);
