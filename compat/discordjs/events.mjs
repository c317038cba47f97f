// A bot and a member on discord.js: what the bot sees of the member's messages,
// edits, deletes, typing and presence, the member list it fetches (op 8, with
// presences), and its automatic resume after the server closes its connection
// (close 4000), with the message posted meanwhile delivered once.
import { ActivityType, Client, Events, GatewayIntentBits } from 'discord.js';
import { closeControl, hear, tell } from './control.mjs';
import { check, env, login, once, step } from './harness.mjs';

const { GH_API, GH_BOT_TOKEN, GH_MEMBER_TOKEN, GH_MEMBER_ID, GH_GUILD, GH_CHANNEL } = env(
  'GH_API', 'GH_BOT_TOKEN', 'GH_MEMBER_TOKEN', 'GH_MEMBER_ID', 'GH_GUILD', 'GH_CHANNEL');

const intents = [
  GatewayIntentBits.Guilds, GatewayIntentBits.GuildMembers, GatewayIntentBits.GuildPresences,
  GatewayIntentBits.GuildMessages, GatewayIntentBits.GuildMessageTyping, GatewayIntentBits.MessageContent,
];
const bot = new Client({ intents, rest: { api: GH_API } });
const member = new Client({ intents, rest: { api: GH_API } });
const seen = new Map(); // message id -> times the bot saw MESSAGE_CREATE
bot.on(Events.MessageCreate, (m) => seen.set(m.id, (seen.get(m.id) || 0) + 1));

try {
  await step('both log in', async () => {
    await login(bot, GH_BOT_TOKEN);
    await login(member, GH_MEMBER_TOKEN);
    check(bot.user.bot, 'the bot is a bot');
    check(bot.guilds.cache.has(GH_GUILD), 'the bot has the guild');
  });
  const channel = await member.channels.fetch(GH_CHANNEL);

  const msg = await step('a message', async () => {
    const got = once(bot, Events.MessageCreate, (m) => m.content === 'hello from discord.js');
    const sent = await channel.send('hello from discord.js');
    const m = await got;
    check(m.id === sent.id && m.author.id === GH_MEMBER_ID && m.guildId === GH_GUILD, 'the bot got it, from the member, in the guild');
    return sent;
  });

  await step('an edit', async () => {
    const got = once(bot, Events.MessageUpdate, (_old, m) => m.id === msg.id);
    await msg.edit('edited by discord.js');
    const [, m] = await got;
    check(m.content === 'edited by discord.js' && m.editedTimestamp !== null, `MESSAGE_UPDATE content ${m.content}`);
  });

  await step('a delete', async () => {
    const got = once(bot, Events.MessageDelete, (m) => m.id === msg.id);
    await msg.delete();
    await got;
  });

  await step('typing', async () => {
    const got = once(bot, Events.TypingStart, (t) => t.user.id === GH_MEMBER_ID && t.channel.id === GH_CHANNEL);
    await channel.sendTyping();
    const t = await got;
    check(t.startedAt instanceof Date && !Number.isNaN(t.startedAt.getTime()), 'typing has its time');
  });

  await step('a presence with an activity', async () => {
    const got = once(bot, Events.PresenceUpdate, (_old, p) => p.userId === GH_MEMBER_ID && p.status === 'idle');
    member.user.setPresence({ status: 'idle', activities: [{ name: 'chess', type: ActivityType.Playing }] });
    const [, p] = await got;
    const a = p.activities[0];
    check(p.activities.length === 1 && a.name === 'chess' && a.type === ActivityType.Playing, `activities ${JSON.stringify(p.activities)}`);
    check(a.createdAt instanceof Date && Math.abs(Date.now() - a.createdTimestamp) < 60000, `created_at ${a.createdTimestamp}`);
  });

  await step('member chunks with presences', async () => {
    const guild = bot.guilds.cache.get(GH_GUILD);
    const members = await guild.members.fetch({ withPresences: true });
    check(members.size === 3, `${members.size} members; want 3 (owner, member, bot)`);
    check(members.has(GH_MEMBER_ID) && members.has(bot.user.id), 'the member and the bot are listed');
    const p = guild.presences.cache.get(GH_MEMBER_ID);
    check(p && p.status === 'idle' && p.activities[0]?.name === 'chess', `the member's presence from the chunk: ${JSON.stringify(p)}`);
    // By id over the gateway (op 8 user_ids): an array makes discord.js ask the gateway.
    const some = await guild.members.fetch({ user: [GH_MEMBER_ID], force: true });
    check(some.size === 1 && some.has(GH_MEMBER_ID), `members by id: ${[...some.keys()]}`);
  });

  await step('resume after the server closes the connection', async () => {
    const shard = bot.ws.shards.first();
    const sessionId = shard.sessionInfo?.sessionId;
    check(sessionId, 'the bot has a session');
    const resumed = once(bot, Events.ShardResume);
    const readies = [];
    bot.on(Events.ShardReady, (id) => readies.push(id));
    // The test closes the session (4000), holds the reconnection, posts, lets it
    // through, and names the message.
    tell(`KICK ${sessionId}`);
    const answer = await hear();
    const [word, id] = answer.split(' ');
    check(word === 'POSTED' && id, `the test answered ${answer}`);
    const [, replayed] = await resumed;
    check(replayed >= 1, `RESUMED after ${replayed} replayed events`);
    const deadline = Date.now() + 10000;
    while (!seen.has(id) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    check(seen.get(id) === 1, `the message posted while away arrived ${seen.get(id) || 0} times; want once`);
    check(readies.length === 0, 'the bot resumed rather than identified again');
    check(bot.ws.shards.first().sessionInfo?.sessionId === sessionId, 'the same session');
    // Live again.
    const got = once(bot, Events.MessageCreate, (m) => m.content === 'after the resume');
    await channel.send('after the resume');
    await got;
    await new Promise((r) => setTimeout(r, 300));
    check(seen.get(id) === 1, 'still once');
  });
} finally {
  closeControl();
  await bot.destroy();
  await member.destroy();
}
