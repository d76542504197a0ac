// What the browser scripts share: headless Chromium as the tests launch it,
// and the sign-in code from the mail the file: outbox wrote.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

function codeIn(outbox, email) {
  let names = [];
  try { names = readdirSync(outbox).filter((n) => n.endsWith('.eml')); } catch { return null; }
  for (const name of names) {
    const text = readFileSync(join(outbox, name), 'utf8');
    const found = /Your code: (\d{6})/.exec(text);
    if (found && text.includes(email)) return found[1];
  }
  return null;
}

// Waits (up to 10 s) for the sign-in code mailed to `email`.
export async function mailedCode(outbox, email) {
  for (let i = 0; i < 100; i++) {
    const code = codeIn(outbox, email);
    if (code) return code;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('no sign-in code arrived in the outbox');
}
