// encoding=etf with erlpack, Discord's own ETF library, the way erlpack-based
// clients speak it: every payload is a binary frame holding one term, a client's
// terms have string keys. Once plain, once with zlib-stream (zlib-sync, as
// discord.js inflates). discord.js 14 itself speaks JSON only (@discordjs/ws has
// no ETF), so this is a raw gateway client on ws.
import { createRequire } from 'node:module';
import WebSocket from 'ws';
import { check, env, step } from './harness.mjs';

const require = createRequire(import.meta.url);
const erlpack = require('erlpack');
const zlib = require('zlib-sync');

const { GH_API, GH_TOKEN, GH_USER_ID, GH_GUILD, GH_CHANNEL, GH_POSTER_TOKEN } = env(
  'GH_API', 'GH_TOKEN', 'GH_USER_ID', 'GH_GUILD', 'GH_CHANNEL', 'GH_POSTER_TOKEN');
const timeoutMs = Number(process.env.GH_STEP_TIMEOUT_MS || 15000);

// connect opens an ETF connection and returns next(pred): the next payload that
// matches, decoded with erlpack.
async function connect(compress) {
  const { url } = await (await fetch(`${GH_API}/v10/gateway`)).json();
  const ws = new WebSocket(`${url}/?v=10&encoding=etf${compress ? '&compress=zlib-stream' : ''}`);
  ws.binaryType = 'nodebuffer';
  const queue = [];
  const waiters = [];
  const inflate = compress ? new zlib.Inflate({ chunkSize: 65535 }) : null;
  const deliver = (p) => {
    const i = waiters.findIndex((w) => w.pred(p));
    if (i >= 0) waiters.splice(i, 1)[0].resolve(p);
    else queue.push(p);
  };
  ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      deliver({ error: `a text frame on an etf connection: ${data}` });
      return;
    }
    if (inflate) {
      const n = data.length;
      const flush = n >= 4 && data[n - 4] === 0 && data[n - 3] === 0 && data[n - 2] === 0xff && data[n - 1] === 0xff;
      inflate.push(data, flush ? zlib.Z_SYNC_FLUSH : zlib.Z_NO_FLUSH);
      if (!flush) return;
      if (inflate.err) {
        deliver({ error: `inflate: ${inflate.msg}` });
        return;
      }
      data = Buffer.from(inflate.result);
    }
    deliver(erlpack.unpack(data));
  });
  let closed = null;
  ws.on('close', (code) => { closed = code; });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const next = (what, pred) => {
    const i = queue.findIndex((p) => p.error || pred(p));
    if (i >= 0) return Promise.resolve(queue.splice(i, 1)[0]).then((p) => { check(!p.error, p.error); return p; });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms (closed: ${closed})`)), timeoutMs);
      waiters.push({ pred: (p) => p.error || pred(p), resolve: (p) => { clearTimeout(timer); p.error ? reject(new Error(p.error)) : resolve(p); } });
    });
  };
  const send = (op, d) => ws.send(erlpack.pack({ op, d }));
  return { ws, next, send };
}

for (const compress of [false, true]) {
  const how = compress ? 'etf with zlib-stream' : 'etf';
  await step(`${how}: HELLO, IDENTIFY, READY, GUILD_CREATE, heartbeat, a message`, async () => {
    const c = await connect(compress);
    try {
      const hello = await c.next('HELLO', (p) => p.op === 10);
      check(hello.d.heartbeat_interval > 0, `HELLO ${JSON.stringify(hello)}`);
      c.send(2, { token: GH_TOKEN, intents: 513 | 32768, properties: { os: 'linux', browser: 'erlpack', device: 'erlpack' } });
      const ready = await c.next('READY', (p) => p.op === 0 && p.t === 'READY');
      check(ready.d.user.id === GH_USER_ID, `READY user ${JSON.stringify(ready.d.user)}`);
      check(ready.d.guilds.some((g) => g.id === GH_GUILD && g.unavailable === true), 'READY lists the guild, unavailable');
      const gc = await c.next('GUILD_CREATE', (p) => p.t === 'GUILD_CREATE');
      check(gc.d.id === GH_GUILD && gc.s > ready.s, `GUILD_CREATE ${gc.d.id} s ${gc.s} after READY's ${ready.s}`);
      check(gc.d.channels.some((ch) => ch.id === GH_CHANNEL), 'GUILD_CREATE has the channel');
      c.send(1, gc.s);
      await c.next('HEARTBEAT_ACK', (p) => p.op === 11);
      const content = `over ${how}: é ✓ "quoted"`;
      const res = await fetch(`${GH_API}/v10/channels/${GH_CHANNEL}/messages`, {
        method: 'POST', headers: { Authorization: `Bot ${GH_POSTER_TOKEN}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ content }),
      });
      const posted = await res.json();
      check(res.status === 200, `POST a message: ${res.status} ${JSON.stringify(posted)}`);
      const m = await c.next('MESSAGE_CREATE', (p) => p.t === 'MESSAGE_CREATE');
      check(m.d.id === posted.id && m.d.content === content && m.d.author.id === posted.author.id, `MESSAGE_CREATE ${JSON.stringify(m.d)}`);
      check(m.d.edited_timestamp === null && m.d.tts === false && Array.isArray(m.d.embeds), 'null, false and [] as erlpack reads them');
    } finally {
      c.ws.close(1000);
    }
  });
}

await step('etf: a payload with atom keys is refused with 4002, as Discord does', async () => {
  const { url } = await (await fetch(`${GH_API}/v10/gateway`)).json();
  const ws = new WebSocket(`${url}/?v=10&encoding=etf`);
  const code = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('not closed')), timeoutMs);
    ws.on('open', () => {
      // {op: 1, d: nil} with the atom op as its key: 131, map of 2, atom op, 1, atom d, atom nil.
      ws.send(Buffer.from([131, 116, 0, 0, 0, 2, 115, 2, 111, 112, 97, 1, 115, 1, 100, 115, 3, 110, 105, 108]));
    });
    ws.on('close', (c) => { clearTimeout(timer); resolve(c); });
  });
  check(code === 4002, `closed with ${code}`);
});
