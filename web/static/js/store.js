// The client's state, built from REST answers and gateway dispatches: guilds,
// channels, members and presences, typing, read states, and per channel the
// loaded messages, kept sorted by snowflake and deduplicated by id, so a message
// that arrives twice (the POST's answer and MESSAGE_CREATE, a replay after a
// resume, a page of history overlapping a live event) is shown once.

import { compareIds, maxId, searchById } from './snowflake.js';

export const ChannelType = { TEXT: 0, DM: 1, GROUP_DM: 3, CATEGORY: 4, ANNOUNCEMENT: 5 };
const typingMs = 10000;
const maxReadEntries = 2000;
// Live messages kept aside while a log's newest pages are not loaded (see
// ChannelLog.hasNewer); past this the paging that closes the gap fetches them.
const maxHeldLive = 500;

/** The messages of one channel that this client holds. */
export class ChannelLog {
  constructor(channelId) {
    this.channelId = channelId;
    this.items = []; // ascending by id
    this.byId = new Map();
    this.pending = []; // sent by this client, not yet confirmed
    this.loaded = false; // the newest page is here, so live messages append
    this.hasOlder = true;
    this.loading = false; // the newest page is being fetched: live messages are kept meanwhile
    this.loadingOlder = null;
    // The log was opened at the first unread message and the newest pages are
    // not loaded yet: live messages are held aside (appending them would skip
    // what lies between), and paging down with after= closes the gap.
    this.hasNewer = false;
    this.loadingNewer = null;
    this.heldLive = [];
    this.version = 0;
  }

  /** Keeps a live message that arrived while the newest pages are not loaded. */
  hold(m) {
    this.heldLive.push(m);
    if (this.heldLive.length > maxHeldLive) this.heldLive.shift();
  }

  /** The newest pages are here now: the held live messages the pages did not bring join the log. */
  closeGap() {
    this.hasNewer = false;
    const held = this.heldLive.filter((m) => !this.byId.has(m.id)); // a page's copy is as new or newer
    this.heldLive = [];
    if (held.length) this.merge(held);
  }

  /** An edit or a delete of a held message (see hold). */
  updateHeld(m, deleted) {
    const i = this.heldLive.findIndex((x) => x.id === m.id);
    if (i < 0) return;
    if (deleted) this.heldLive.splice(i, 1);
    else this.heldLive[i] = { ...this.heldLive[i], ...m };
  }

  /** Adds or replaces m; reports whether the log changed. */
  upsert(m) {
    const old = this.byId.get(m.id);
    if (old) {
      Object.assign(old, m);
      this.version++;
      return true;
    }
    const i = searchById(this.items, m.id);
    this.items.splice(i < 0 ? -i - 1 : i, 0, m);
    this.byId.set(m.id, m);
    if (m.nonce != null) this.pending = this.pending.filter((p) => p.nonce !== String(m.nonce));
    this.version++;
    return true;
  }

  /** Merges a page of history (any order). */
  merge(page) {
    if (!page.length) return;
    const fresh = page.filter((m) => !this.byId.has(m.id));
    for (const m of page) if (this.byId.has(m.id)) Object.assign(this.byId.get(m.id), m);
    if (fresh.length) {
      fresh.sort((a, b) => compareIds(a.id, b.id));
      for (const m of fresh) this.byId.set(m.id, m);
      // Most pages are entirely older or newer than what is held: no full sort.
      if (!this.items.length || compareIds(fresh[fresh.length - 1].id, this.items[0].id) < 0) {
        this.items = fresh.concat(this.items);
      } else if (compareIds(fresh[0].id, this.items[this.items.length - 1].id) > 0) {
        this.items = this.items.concat(fresh);
      } else {
        this.items = this.items.concat(fresh).sort((a, b) => compareIds(a.id, b.id));
      }
    }
    this.version++;
  }

  remove(id) {
    if (!this.byId.has(id)) return false;
    this.byId.delete(id);
    const i = searchById(this.items, id);
    if (i >= 0) this.items.splice(i, 1);
    this.version++;
    return true;
  }

  newest() {
    return this.items.length ? this.items[this.items.length - 1].id : null;
  }

  oldest() {
    return this.items.length ? this.items[0].id : null;
  }
}

/**
 * Read states: per channel the last message read and how many messages since
 * mention this user. The server keeps them (READY's read_state, MESSAGE_ACK from
 * the user's other sessions, POST …/ack from this one), so a new browser shows
 * the same unread marks as the old one.
 */
export class ReadStates {
  constructor() {
    this.map = new Map(); // channel id -> last read message id
    this.mentions = new Map(); // channel id -> mentions since
    this.acked = new Map(); // channel id -> what the server knows is read
  }

  /** Records that the server has channelId read up to id; reports whether that is news to it. */
  noteAcked(channelId, id) {
    const cur = this.acked.get(channelId);
    if (cur && compareIds(cur, id) >= 0) return false;
    this.acked.set(channelId, id);
    return true;
  }

  get(channelId) {
    return this.map.get(channelId) || null;
  }

  has(channelId) {
    return this.map.has(channelId);
  }

  /** Moves the read mark forward (never back), clearing the mentions before it; reports whether it moved. */
  set(channelId, id) {
    const cur = this.map.get(channelId);
    if (cur && compareIds(cur, id) >= 0) return false;
    this.map.set(channelId, id);
    this.mentions.delete(channelId);
    return true;
  }

  mentionCount(channelId) {
    return this.mentions.get(channelId) || 0;
  }

  /** Counts a new message that mentions this user, unless it is already read. */
  mention(channelId, messageId) {
    const cur = this.map.get(channelId);
    if (cur && compareIds(cur, messageId) >= 0) return false;
    this.mentions.set(channelId, Math.min(this.mentionCount(channelId) + 1, 999));
    return true;
  }
}

export class Store extends EventTarget {
  constructor() {
    super();
    this.reset();
  }

  reset() {
    this.me = null;
    this.guilds = new Map();
    this.guildOrder = [];
    this.channels = new Map();
    this.logs = new Map();
    this.presences = new Map(); // user id -> status
    this.users = new Map(); // user id -> user, as seen anywhere
    this.typing = new Map(); // channel id -> Map(user id -> expiry ms)
    this.lastMessage = new Map(); // channel id -> newest known message id
    this.read = new ReadStates();
  }

  emit(kind, detail = {}) {
    this.dispatchEvent(new CustomEvent('change', { detail: { kind, ...detail } }));
  }

  log(channelId) {
    let l = this.logs.get(channelId);
    if (!l) {
      l = new ChannelLog(channelId);
      this.logs.set(channelId, l);
    }
    return l;
  }

  rememberUser(u) {
    if (u && u.id) this.users.set(u.id, { ...this.users.get(u.id), ...u });
  }

  displayName(userId, guildId) {
    const g = guildId && this.guilds.get(guildId);
    const m = g && g.members.get(userId);
    if (m && m.nick) return m.nick;
    const u = (m && m.user) || this.users.get(userId);
    return u ? u.global_name || u.username : 'Unknown user';
  }

  // ---- gateway dispatches

  ready(d) {
    this.me = d.user;
    this.rememberUser(d.user);
    if (this.read.userId !== d.user.id) {
      this.read = new ReadStates();
      this.read.userId = d.user.id;
    }
    const known = new Set(d.guilds.map((g) => g.id));
    for (const id of [...this.guilds.keys()]) if (!known.has(id)) this.removeGuild(id);
    for (const g of d.guilds) {
      if (!this.guilds.has(g.id)) this.guilds.set(g.id, newGuild(g));
      if (!this.guildOrder.includes(g.id)) this.guildOrder.push(g.id);
    }
    // Read states (Discord's READY read_state: {entries: [{id, last_message_id, mention_count}]}).
    const rs = d.read_state;
    const entries = Array.isArray(rs) ? rs : (rs && Array.isArray(rs.entries) ? rs.entries : []);
    for (const e of entries) {
      if (!e.id) continue;
      if (e.last_message_id) {
        this.read.set(e.id, e.last_message_id);
        this.read.noteAcked(e.id, e.last_message_id);
      }
      if (e.mention_count > 0) this.read.mentions.set(e.id, e.mention_count);
    }
    for (const ch of d.private_channels || []) this.addChannel(ch);
    this.emit('guilds');
  }

  guildCreate(g) {
    const cur = this.guilds.get(g.id) || newGuild(g);
    Object.assign(cur, {
      id: g.id, name: g.name, icon: g.icon, owner_id: g.owner_id,
      member_count: g.member_count ?? cur.member_count, large: !!g.large,
      approximate_presence_count: g.approximate_presence_count ?? cur.approximate_presence_count,
      roles: g.roles || [], unavailable: false,
    });
    this.guilds.set(g.id, cur);
    if (!this.guildOrder.includes(g.id)) this.guildOrder.push(g.id);
    const seen = new Set();
    for (const ch of g.channels || []) {
      ch.guild_id = g.id;
      this.addChannel(ch);
      seen.add(ch.id);
    }
    for (const id of [...cur.channelIds]) if (!seen.has(id)) this.removeChannel(id);
    for (const m of g.members || []) this.addMember(g.id, m);
    for (const p of g.presences || []) this.presences.set(p.user.id, p.status);
    this.emit('guilds');
    this.emit('guild', { guildId: g.id });
  }

  removeGuild(id) {
    const g = this.guilds.get(id);
    if (!g) return;
    for (const ch of [...g.channelIds]) this.removeChannel(ch);
    this.guilds.delete(id);
    this.guildOrder = this.guildOrder.filter((x) => x !== id);
    this.emit('guilds');
  }

  addChannel(ch) {
    for (const u of ch.recipients || []) this.rememberUser(u);
    this.channels.set(ch.id, ch);
    if (ch.last_message_id) this.noteLast(ch.id, ch.last_message_id);
    const g = ch.guild_id && this.guilds.get(ch.guild_id);
    if (g) g.channelIds.add(ch.id);
    this.emit('channels', { guildId: ch.guild_id });
  }

  removeChannel(id) {
    const ch = this.channels.get(id);
    if (!ch) return;
    this.channels.delete(id);
    this.logs.delete(id);
    const g = ch.guild_id && this.guilds.get(ch.guild_id);
    if (g) g.channelIds.delete(id);
    this.emit('channels', { guildId: ch.guild_id });
  }

  addMember(guildId, m) {
    const g = this.guilds.get(guildId);
    if (!g || !m.user) return;
    this.rememberUser(m.user);
    g.members.set(m.user.id, m);
  }

  noteLast(channelId, id) {
    const cur = this.lastMessage.get(channelId);
    const next = maxId(cur, id);
    if (next !== cur) this.lastMessage.set(channelId, next);
  }

  messageCreate(m) {
    this.rememberUser(m.author);
    if (m.member && m.guild_id) this.addMember(m.guild_id, { ...m.member, user: m.author });
    this.noteLast(m.channel_id, m.id);
    this.stopTyping(m.channel_id, m.author.id);
    const l = this.logs.get(m.channel_id);
    if (l && l.hasNewer && !l.byId.has(m.id)) l.hold(m);
    else if (l && (l.loaded || l.loading)) l.upsert(m);
    if (this.me && m.author.id === this.me.id) this.read.set(m.channel_id, m.id);
    else if (this.me && this.mentionsMe(m)) this.read.mention(m.channel_id, m.id);
    this.emit('messages', { channelId: m.channel_id, message: m, created: true });
  }

  messageUpdate(m) {
    const l = this.logs.get(m.channel_id);
    if (l) l.updateHeld(m, false);
    if (l && l.byId.has(m.id)) {
      l.upsert(m);
      this.emit('messages', { channelId: m.channel_id });
    }
  }

  messageDelete(d) {
    const l = this.logs.get(d.channel_id);
    if (l) l.updateHeld(d, true);
    if (l && l.remove(d.id)) this.emit('messages', { channelId: d.channel_id });
  }

  /** Whether m counts as a mention of this user: a DM, or a mention by id, role or everyone (as the server counts). */
  mentionsMe(m) {
    const ch = this.channels.get(m.channel_id);
    if (ch && isPrivate(ch)) return true;
    if ((m.mentions || []).some((u) => u.id === this.me.id) || m.mention_everyone) return true;
    const g = m.guild_id && this.guilds.get(m.guild_id);
    const mine = g && g.members.get(this.me.id);
    return !!(mine && mine.roles && (m.mention_roles || []).some((r) => mine.roles.includes(r)));
  }

  reaction(kind, d) {
    const l = this.logs.get(d.channel_id);
    const m = l && l.byId.get(d.message_id);
    if (!m) return;
    const mine = this.me && d.user_id === this.me.id;
    const key = (e) => (e.id ? `${e.name}:${e.id}` : e.name);
    let rs = m.reactions ? [...m.reactions] : [];
    if (kind === 'MESSAGE_REACTION_REMOVE_ALL') rs = [];
    else if (kind === 'MESSAGE_REACTION_REMOVE_EMOJI') rs = rs.filter((r) => key(r.emoji) !== key(d.emoji));
    else {
      const i = rs.findIndex((r) => key(r.emoji) === key(d.emoji));
      const add = kind === 'MESSAGE_REACTION_ADD';
      if (i < 0 && add) rs.push({ emoji: d.emoji, count: 1, me: mine });
      else if (i >= 0) {
        const r = { ...rs[i], count: rs[i].count + (add ? 1 : -1) };
        if (mine) r.me = add;
        if (r.count <= 0) rs.splice(i, 1);
        else rs[i] = r;
      }
    }
    l.upsert({ ...m, reactions: rs });
    this.emit('messages', { channelId: d.channel_id });
  }

  typingStart(d) {
    if (this.me && d.user_id === this.me.id) return;
    if (d.member && d.guild_id) this.addMember(d.guild_id, d.member);
    let t = this.typing.get(d.channel_id);
    if (!t) {
      t = new Map();
      this.typing.set(d.channel_id, t);
    }
    t.set(d.user_id, Date.now() + typingMs);
    this.emit('typing', { channelId: d.channel_id });
  }

  stopTyping(channelId, userId) {
    const t = this.typing.get(channelId);
    if (t && t.delete(userId)) this.emit('typing', { channelId });
  }

  typers(channelId) {
    const t = this.typing.get(channelId);
    if (!t) return [];
    const now = Date.now();
    for (const [u, exp] of t) if (exp <= now) t.delete(u);
    return [...t.keys()];
  }

  presenceUpdate(p) {
    if (!p.user) return;
    this.rememberUser(p.user.username ? p.user : null);
    this.presences.set(p.user.id, p.status);
    this.emit('members', { guildId: p.guild_id });
  }

  membersChunk(d) {
    const g = this.guilds.get(d.guild_id);
    if (!g) return;
    for (const m of d.members || []) this.addMember(d.guild_id, m);
    for (const p of d.presences || []) this.presences.set(p.user.id, p.status);
    if (d.chunk_index === d.chunk_count - 1) g.membersLoaded = true;
    this.emit('members', { guildId: d.guild_id });
  }

  memberAdd(d) {
    this.addMember(d.guild_id, d);
    const g = this.guilds.get(d.guild_id);
    if (g && g.member_count != null) g.member_count++;
    this.emit('members', { guildId: d.guild_id });
  }

  memberRemove(d) {
    const g = this.guilds.get(d.guild_id);
    if (!g) return;
    g.members.delete(d.user.id);
    if (g.member_count) g.member_count--;
    this.emit('members', { guildId: d.guild_id });
  }

  memberUpdate(d) {
    const g = this.guilds.get(d.guild_id);
    if (!g) return;
    g.members.set(d.user.id, { ...g.members.get(d.user.id), ...d });
    this.emit('members', { guildId: d.guild_id });
  }

  ack(channelId, messageId) {
    this.read.noteAcked(channelId, messageId);
    if (this.read.set(channelId, messageId)) this.emit('read', { channelId });
  }

  // ---- queries

  isUnread(channelId) {
    const last = this.lastMessage.get(channelId);
    if (!last) return false;
    const r = this.read.get(channelId);
    return !r || compareIds(last, r) > 0;
  }

  /** The channel ids of a guild, or of the DMs for guildId '@me'. */
  channelIdsOf(guildId) {
    if (guildId === dmHome) return this.dmOrder().map((c) => c.id);
    const g = this.guilds.get(guildId);
    return g ? [...g.channelIds] : [];
  }

  guildUnread(guildId) {
    return this.channelIdsOf(guildId).some((id) => this.isUnread(id));
  }

  guildMentions(guildId) {
    return this.channelIdsOf(guildId).reduce((n, id) => n + this.read.mentionCount(id), 0);
  }

  /** The DM channels, the most recently active first. */
  dmOrder() {
    const out = [];
    for (const c of this.channels.values()) if (isPrivate(c)) out.push(c);
    const last = (c) => this.lastMessage.get(c.id) || c.id;
    return out.sort((a, b) => compareIds(last(b), last(a)));
  }

  /** The open DM with exactly this user, if any. */
  dmWith(userId) {
    for (const c of this.channels.values()) {
      if (c.type === ChannelType.DM && c.recipients && c.recipients.length === 1 && c.recipients[0].id === userId) return c;
    }
    return null;
  }

  /** What a channel is called: #name in a guild, the other people's names in a DM. */
  channelLabel(c) {
    if (!c) return '';
    if (!isPrivate(c)) return c.name || '';
    if (c.name) return c.name;
    const names = (c.recipients || []).map((u) => this.displayName(u.id));
    return names.join(', ') || 'Direct message';
  }

  /** The guild's channels as Discord lists them: uncategorised first, then each category with its children. */
  channelTree(guildId) {
    const g = this.guilds.get(guildId);
    if (!g) return [];
    const chs = [...g.channelIds].map((id) => this.channels.get(id)).filter(Boolean);
    const byPos = (a, b) => (a.position ?? 0) - (b.position ?? 0) || compareIds(a.id, b.id);
    const cats = chs.filter((c) => c.type === ChannelType.CATEGORY).sort(byPos);
    const catIds = new Set(cats.map((c) => c.id));
    const leaves = chs.filter((c) => c.type !== ChannelType.CATEGORY);
    const top = leaves.filter((c) => !c.parent_id || !catIds.has(c.parent_id)).sort(byPos);
    const out = [{ category: null, channels: top }];
    for (const c of cats) out.push({ category: c, channels: leaves.filter((x) => x.parent_id === c.id).sort(byPos) });
    return out;
  }

  firstTextChannel(guildId) {
    for (const group of this.channelTree(guildId)) {
      for (const c of group.channels) if (isTextChannel(c)) return c.id;
    }
    return null;
  }
}

/** Discord's large_threshold: a larger guild gets online counts, not presences. */
export const largeThreshold = 250;

/** Whether the guild is large now (GUILD_CREATE said so, or members joined since). */
export function isLarge(g) {
  return !!g && (g.large || (g.member_count ?? 0) > largeThreshold);
}

/** The rail's "guild" id of the direct messages. */
export const dmHome = '@me';

export function isPrivate(c) {
  return c.type === ChannelType.DM || c.type === ChannelType.GROUP_DM;
}

export function isTextChannel(c) {
  return c.type === ChannelType.TEXT || c.type === ChannelType.ANNOUNCEMENT || c.type === ChannelType.DM || c.type === ChannelType.GROUP_DM;
}

function newGuild(g) {
  return {
    id: g.id, name: g.name || '', unavailable: !!g.unavailable, channelIds: new Set(), members: new Map(),
    roles: [], large: false, member_count: null, approximate_presence_count: null, membersLoaded: false,
  };
}
