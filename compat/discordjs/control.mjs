// The script's side of a conversation with the Go test that runs it: `tell`
// prints a line the test acts on (KICK <session>), `hear` waits for the test's
// answer on standard input (POSTED <id>).
import readline from 'node:readline';

const lines = [];
const waiters = [];
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const w = waiters.shift();
  if (w) w(line);
  else lines.push(line);
});

export function tell(line) {
  process.stdout.write(`${line}\n`);
}

export function hear(timeoutMs = 30000) {
  if (lines.length) return Promise.resolve(lines.shift());
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer from the test within ${timeoutMs} ms`)), timeoutMs);
    waiters.push((line) => {
      clearTimeout(timer);
      resolve(line);
    });
  });
}

// closeControl stops listening, so that standard input no longer keeps the
// script alive.
export function closeControl() {
  rl.close();
  process.stdin.destroy();
}
