// What every discord.js script run against Guildhall shares: its environment,
// logging in, waiting for an event with a deadline, and named steps whose failure
// ends the run with a non-zero exit.
import { Events } from 'discord.js';

const timeoutMs = Number(process.env.GH_STEP_TIMEOUT_MS || 15000);

// env returns the named environment variables, failing when one is missing.
export function env(...names) {
  const out = {};
  for (const n of names) {
    if (!process.env[n]) throw new Error(`environment variable ${n} is required`);
    out[n] = process.env[n];
  }
  return out;
}

export function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

// once resolves with the arguments of the first event that matches (the
// first argument alone when there is one), or rejects after the step timeout.
export function once(client, event, match = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off(event, listener);
      reject(new Error(`no ${event} within ${timeoutMs} ms`));
    }, timeoutMs);
    function listener(...args) {
      let ok = false;
      try { ok = match(...args); } catch { ok = false; }
      if (!ok) return;
      clearTimeout(timer);
      client.off(event, listener);
      resolve(args.length === 1 ? args[0] : args);
    }
    client.on(event, listener);
  });
}

// login logs a client in and waits for it to be ready.
export async function login(client, token) {
  const ready = once(client, Events.ClientReady);
  await client.login(token);
  await ready;
  return client;
}

// step runs one named part of a script and reports it; a failure exits 1.
export async function step(name, fn) {
  const start = Date.now();
  try {
    const out = await fn();
    console.log(`ok   ${name} (${Date.now() - start} ms)`);
    return out;
  } catch (err) {
    console.log(`FAIL ${name}: ${err?.stack || err}`);
    process.exit(1);
  }
}
