// discord.js against Guildhall: two clients in one guild reply, react, upload a
// file and open a DM, each checking what the other receives. Run by
// cmd/guildhall's TestDiscordJSConversations with the server's address and two
// users' tokens in the environment; exits non-zero on the first failure.
import { createHash, randomBytes } from 'node:crypto';
import { ChannelType, Client, Events, GatewayIntentBits, Partials } from 'discord.js';
import { check, env, login, once, step } from './harness.mjs';

const { GH_CHANNEL: channelId } = env('GH_API', 'GH_TOKEN_A', 'GH_TOKEN_B', 'GH_CHANNEL');

const intents = [
  GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessages, GatewayIntentBits.GuildMessageReactions,
  GatewayIntentBits.MessageContent, GatewayIntentBits.DirectMessages, GatewayIntentBits.DirectMessageReactions,
];
const partials = [Partials.Channel, Partials.Message, Partials.Reaction];

const a = await login(new Client({ intents, partials, rest: { api: process.env.GH_API } }), process.env.GH_TOKEN_A);
const b = await login(new Client({ intents, partials, rest: { api: process.env.GH_API } }), process.env.GH_TOKEN_B);

try {
  const channelA = await a.channels.fetch(channelId);
  check(channelA?.isTextBased(), `channel ${channelId} is a text channel for A`);

  const original = await step('A sends, B receives', async () => {
    const received = once(b, Events.MessageCreate, (m) => m.content === 'hello from discord.js');
    const sent = await channelA.send('hello from discord.js');
    const got = await received;
    check(got.id === sent.id && got.author.id === a.user.id, 'B got A\'s message');
    return got;
  });

  const reply = await step('B replies, A receives the reply with its reference', async () => {
    const received = once(a, Events.MessageCreate, (m) => m.content === 'a reply');
    const sent = await original.reply({ content: 'a reply', allowedMentions: { repliedUser: true } });
    check(sent.reference?.messageId === original.id, `reply references ${original.id}: ${JSON.stringify(sent.reference)}`);
    const got = await received;
    check(got.reference?.messageId === original.id, 'A sees the reference');
    check(got.mentions.repliedUser?.id === a.user.id, 'A is pinged as the replied-to author');
    check(got.mentions.users.has(a.user.id), 'A is in mentions');
    const ref = await got.fetchReference();
    check(ref.content === 'hello from discord.js', `fetchReference: ${ref.content}`);
    return got;
  });

  await step('A reacts, B sees the reaction event and the count', async () => {
    const received = once(b, Events.MessageReactionAdd, (r, u) => r.message.id === reply.id && u.id === a.user.id);
    await reply.react('🔥');
    const [reaction] = await received;
    check(reaction.emoji.name === '🔥', `emoji ${reaction.emoji.name}`);
    const fetched = await (await b.channels.fetch(channelId)).messages.fetch({ message: reply.id, force: true });
    const r = fetched.reactions.cache.get('🔥');
    check(r?.count === 1 && r.me === false, `B sees 🔥×${r?.count} (me ${r?.me})`);
    const users = await r.users.fetch();
    check(users.has(a.user.id) && users.size === 1, 'the reaction\'s users are A');
    const removed = once(b, Events.MessageReactionRemove, (rr, u) => rr.message.id === reply.id && u.id === a.user.id);
    await reply.reactions.resolve('🔥').users.remove(a.user.id);
    await removed;
  });

  await step('A uploads a file; the attachment downloads with the same checksum', async () => {
    const data = randomBytes(700 * 1024 + 3);
    const received = once(b, Events.MessageCreate, (m) => m.content === 'a file');
    const sent = await channelA.send({ content: 'a file', files: [{ attachment: data, name: 'blob.bin' }] });
    const att = sent.attachments.first();
    check(att && att.size === data.length && att.name === 'blob.bin', `attachment ${JSON.stringify(att)}`);
    const got = await received;
    check(got.attachments.first()?.url === att.url, 'B got the attachment');
    const res = await fetch(att.url);
    check(res.ok, `GET ${att.url}: ${res.status}`);
    const body = Buffer.from(await res.arrayBuffer());
    const sum = (buf) => createHash('sha256').update(buf).digest('hex');
    check(sum(body) === sum(data), 'downloaded file has the uploaded checksum');
  });

  await step('A opens a DM with B and sends; B receives it in a DM channel', async () => {
    const received = once(b, Events.MessageCreate, (m) => m.content === 'psst');
    const dm = await a.users.createDM(b.user.id);
    check(dm.type === ChannelType.DM && dm.recipientId === b.user.id, `DM channel ${dm.type} with ${dm.recipientId}`);
    await dm.send('psst');
    const got = await received;
    check(got.channel.type === ChannelType.DM && got.channelId === dm.id && got.author.id === a.user.id, 'B got the DM');
    const again = await b.users.createDM(a.user.id);
    check(again.id === dm.id, 'the same pair has one DM');
  });
  console.log('discord.js conversations: all steps passed');
} finally {
  await a.destroy();
  await b.destroy();
}
