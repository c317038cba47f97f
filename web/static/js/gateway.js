// The gateway client: Discord's protocol (v10, JSON). It heartbeats at the
// interval HELLO gives (the first beat jittered, as Discord asks), treats a beat
// without an ACK as a dead connection, RESUMEs after any drop with session_id and
// seq at resume_gateway_url, answers op 7 RECONNECT by resuming at once, and
// IDENTIFYs again after INVALID_SESSION (d false) on the same connection.
//
// It reports its state through onState(state, detail):
//   connecting    before the first READY
//   connected     READY after IDENTIFY (detail.how: "identified" or "re-identified")
//   resumed       RESUMED after a drop: every missed event was replayed before it
//   reconnecting  the socket is gone; it will resume (or identify) after a backoff
//   failed        the server refused for good (bad token, bad intents)
// and every dispatch through onDispatch(type, data, seq).

export const Intents = {
  GUILDS: 1 << 0,
  GUILD_MEMBERS: 1 << 1,
  GUILD_PRESENCES: 1 << 8,
  GUILD_MESSAGES: 1 << 9,
  GUILD_MESSAGE_REACTIONS: 1 << 10,
  GUILD_MESSAGE_TYPING: 1 << 11,
  DIRECT_MESSAGES: 1 << 12,
  DIRECT_MESSAGE_REACTIONS: 1 << 13,
  DIRECT_MESSAGE_TYPING: 1 << 14,
  MESSAGE_CONTENT: 1 << 15,
};

export const clientIntents = Object.values(Intents).reduce((a, b) => a | b, 0);

const Op = {
  DISPATCH: 0, HEARTBEAT: 1, IDENTIFY: 2, PRESENCE_UPDATE: 3, RESUME: 6, RECONNECT: 7,
  REQUEST_GUILD_MEMBERS: 8, INVALID_SESSION: 9, HELLO: 10, HEARTBEAT_ACK: 11,
};

// Close codes after which resuming or identifying again cannot help.
const fatalCloses = new Map([
  [4004, 'The server did not accept your token.'],
  [4010, 'Invalid shard.'],
  [4011, 'Sharding required.'],
  [4012, 'Invalid API version.'],
  [4013, 'Invalid intents.'],
  [4014, 'Disallowed intents.'],
]);
// Close codes after which the session is gone but a new one may start.
const sessionEndingCloses = new Set([4007, 4009]);

const query = '/?v=10&encoding=json';

export class GatewayClient {
  /**
   * @param {object} o
   * @param {() => Promise<string>} o.gatewayURL  where to connect when not resuming
   * @param {string} o.token
   * @param {(type: string, data: any, seq: number|null) => void} o.onDispatch
   * @param {(state: string, detail?: object) => void} o.onState
   */
  constructor({ gatewayURL, token, onDispatch, onState }) {
    this.gatewayURL = gatewayURL;
    this.token = token;
    this.onDispatch = onDispatch;
    this.onState = onState;
    this.ws = null;
    this.sessionId = null;
    this.seq = null;
    this.resumeURL = null;
    this.identifiedOnce = false;
    this.heartbeatTimer = null;
    this.awaitingAck = false;
    this.failures = 0; // consecutive connections that ended before READY/RESUMED
    this.reconnectTimer = null;
    this.identifyTimer = null;
    this.stopped = false;
    this.state = 'idle';
    this.onlineHandler = () => { if (this.state === 'reconnecting') this.reconnectNow(); };
    window.addEventListener('online', this.onlineHandler);
  }

  start() {
    this.setState('connecting');
    this.open();
  }

  /** Ends the session for good: it cannot be resumed (close 1000). */
  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onlineHandler);
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.identifyTimer);
    this.stopHeartbeat();
    if (this.ws) {
      this.ws.onclose = null;
      try { this.ws.close(1000, 'logout'); } catch { /* already closed */ }
      this.ws = null;
    }
  }

  send(op, d) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify({ op, d }));
    return true;
  }

  requestGuildMembers(guildId, { query: q = '', limit = 0, presences = true, userIds, nonce } = {}) {
    const d = { guild_id: guildId, limit, presences };
    if (userIds) d.user_ids = userIds; else d.query = q;
    if (nonce) d.nonce = nonce;
    return this.send(Op.REQUEST_GUILD_MEMBERS, d);
  }

  updatePresence(status) {
    return this.send(Op.PRESENCE_UPDATE, { since: null, activities: [], status, afk: false });
  }

  setState(state, detail = {}) {
    this.state = state;
    this.onState(state, detail);
  }

  async open() {
    clearTimeout(this.reconnectTimer);
    // One connection at a time: a timer and an "online" event may both ask.
    if (this.stopped || this.opening || this.ws) return;
    this.opening = true;
    try {
      await this.connect();
    } finally {
      this.opening = false;
    }
  }

  async connect() {
    let base = this.sessionId && this.resumeURL ? this.resumeURL : null;
    // A resume URL that did not answer twice in a row: ask where the gateway is.
    if (base && this.failures >= 2) base = null;
    if (!base) {
      try {
        base = await this.gatewayURL();
      } catch {
        this.failures++;
        this.scheduleReconnect();
        return;
      }
    }
    if (this.stopped) return;
    let ws;
    try {
      ws = new WebSocket(base.replace(/\/+$/, '') + query);
    } catch {
      this.failures++;
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev) => this.handle(ws, ev.data);
    ws.onclose = (ev) => this.closed(ws, ev.code);
  }

  handle(ws, raw) {
    if (ws !== this.ws) return;
    let p;
    try {
      p = JSON.parse(raw);
    } catch {
      return;
    }
    if (p.s != null) this.seq = p.s;
    switch (p.op) {
      case Op.HELLO:
        this.startHeartbeat(p.d.heartbeat_interval);
        if (this.sessionId) {
          this.send(Op.RESUME, { token: this.token, session_id: this.sessionId, seq: this.seq ?? 0 });
        } else {
          this.identify();
        }
        break;
      case Op.HEARTBEAT_ACK:
        this.awaitingAck = false;
        break;
      case Op.HEARTBEAT:
        this.beat();
        break;
      case Op.RECONNECT:
        // The server asks us to go elsewhere: resume at once, no backoff.
        this.drop(ws, 4000, 0);
        break;
      case Op.INVALID_SESSION:
        if (p.d === true && this.sessionId) {
          this.drop(ws, 4000, jitter(1000, 5000));
        } else {
          // The session is gone: identify again on this connection after 1–5 s.
          this.sessionId = null;
          this.seq = null;
          this.resumeURL = null;
          clearTimeout(this.identifyTimer);
          this.identifyTimer = setTimeout(() => { if (ws === this.ws) this.identify(); }, jitter(1000, 5000));
        }
        break;
      case Op.DISPATCH:
        this.dispatch(p.t, p.d, p.s);
        break;
      default:
    }
  }

  identify() {
    this.send(Op.IDENTIFY, {
      token: this.token,
      intents: clientIntents,
      properties: { os: navigator.platform || 'web', browser: 'Guildhall Web', device: 'Guildhall Web' },
      presence: { status: 'online', since: null, activities: [], afk: false },
      large_threshold: 250,
    });
  }

  dispatch(type, data, seq) {
    if (type === 'READY') {
      this.sessionId = data.session_id;
      this.resumeURL = data.resume_gateway_url || null;
      this.failures = 0;
      const how = this.identifiedOnce ? 're-identified' : 'identified';
      this.identifiedOnce = true;
      // The store learns the new session before the state changes, so a
      // re-identified client can look for what it missed.
      this.onDispatch(type, data, seq);
      this.setState('connected', { how });
      return;
    }
    if (type === 'RESUMED') {
      this.failures = 0;
      this.onDispatch(type, data, seq);
      this.setState('resumed');
      return;
    }
    this.onDispatch(type, data, seq);
  }

  startHeartbeat(interval) {
    this.stopHeartbeat();
    this.awaitingAck = false;
    const ws = this.ws;
    const tick = () => {
      if (ws !== this.ws) return;
      if (this.awaitingAck) {
        // No ACK for the last beat: the connection is a zombie. Resume elsewhere.
        this.drop(ws, 4000, 0);
        return;
      }
      this.beat();
      this.heartbeatTimer = setTimeout(tick, interval);
    };
    this.heartbeatTimer = setTimeout(tick, Math.floor(interval * Math.random()));
  }

  beat() {
    this.awaitingAck = true;
    this.send(Op.HEARTBEAT, this.seq);
  }

  stopHeartbeat() {
    clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  /** Closes ws from this side and reconnects after delay ms, keeping the session. */
  drop(ws, code, delay) {
    if (ws !== this.ws) return;
    ws.onclose = null;
    try { ws.close(code); } catch { /* closed */ }
    this.ws = null;
    this.stopHeartbeat();
    this.setState('reconnecting', { code });
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.open(), delay);
  }

  closed(ws, code) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.stopHeartbeat();
    clearTimeout(this.identifyTimer);
    if (this.stopped) return;
    if (fatalCloses.has(code)) {
      this.stopped = true;
      this.setState('failed', { code, reason: fatalCloses.get(code) });
      return;
    }
    if (sessionEndingCloses.has(code)) {
      this.sessionId = null;
      this.seq = null;
    }
    this.failures++;
    this.scheduleReconnect(code);
  }

  scheduleReconnect(code) {
    if (this.stopped) return;
    this.setState('reconnecting', { code });
    // 1 s, 2 s, 4 s … up to 30 s, each with jitter so a restarted server is
    // not met by every client in the same instant.
    const base = Math.min(30000, 1000 * 2 ** Math.min(Math.max(this.failures - 1, 0), 5));
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.open(), jitter(base, base * 1.5));
  }

  reconnectNow() {
    clearTimeout(this.reconnectTimer);
    this.open();
  }
}

function jitter(min, max) {
  return Math.floor(min + Math.random() * (max - min));
}
