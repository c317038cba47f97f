// Logging in as a user with guilds: ClientReady must come with client.user set
// and every guild available, login after login (discord.js handles the frames
// of one read concurrently: a GUILD_CREATE that overtook READY once made
// ClientReady fire with client.user null).
import { Client, Events, GatewayIntentBits } from 'discord.js';
import { check, env, once, step } from './harness.mjs';

const { GH_API, GH_TOKEN, GH_USER_ID, GH_GUILDS } = env('GH_API', 'GH_TOKEN', 'GH_USER_ID', 'GH_GUILDS');
const guilds = GH_GUILDS.split(',');
const logins = Number(process.env.GH_LOGINS || 20);

for (let i = 1; i <= logins; i++) {
  await step(`login ${i} of ${logins}`, async () => {
    const client = new Client({ intents: [GatewayIntentBits.Guilds], rest: { api: GH_API } });
    let compression = '';
    client.on(Events.Debug, (m) => {
      if (m.includes('compression: ')) compression = m;
    });
    try {
      const ready = once(client, Events.ClientReady);
      await client.login(GH_TOKEN);
      const c = await ready;
      check(c.user !== null, 'ClientReady has client.user');
      check(c.user.id === GH_USER_ID, `client.user.id ${c.user.id} is ${GH_USER_ID}`);
      const ids = [...c.guilds.cache.keys()].sort();
      check(JSON.stringify(ids) === JSON.stringify([...guilds].sort()), `guilds ${ids} are ${guilds}`);
      for (const g of c.guilds.cache.values()) {
        check(g.available && g.channels.cache.size > 0, `guild ${g.id} is available with its channels`);
      }
      if (i === 1) check(compression.includes('zlib-stream'), `discord.js uses zlib-stream (${compression.trim()})`);
    } finally {
      await client.destroy();
    }
  });
}
