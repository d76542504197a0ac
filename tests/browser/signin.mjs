// Signs in at authmd as a person would, in headless Chromium on a 320 px
// wide screen: the form, the mailed code (read from the file: outbox), the
// signed-in page. Checks nothing overflows sideways and no script error or
// CSP violation shows; saves a screenshot of each step. Prints one JSON
// line for tests/browser.rs.
//
// usage: node signin.mjs BASE_URL OUTBOX_DIR EMAIL SCREENSHOT_PREFIX
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [base, outbox, email, shots] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

function mailedCode() {
  let names = [];
  try { names = readdirSync(outbox).filter((n) => n.endsWith('.eml')); } catch { return null; }
  for (const name of names) {
    const text = readFileSync(join(outbox, name), 'utf8');
    const found = /Your code: (\d{6})/.exec(text);
    if (found && text.includes(email)) return found[1];
  }
  return null;
}

try {
  const page = await browser.newPage({ viewport: { width: 320, height: 640 } });
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  const wide = () => page.evaluate(() => document.documentElement.scrollWidth);
  const form = await page.goto(`${base}/login?return_to=%2F`);
  const steps = { form: { status: form.status(), width: await wide() } };
  await page.screenshot({ path: `${shots}-form.png`, fullPage: true });
  await page.getByLabel('Email address').fill(email);
  await page.getByRole('button', { name: 'Send me a code' }).click();
  await page.getByRole('heading', { name: 'Check your email' }).waitFor();
  steps.sent = { width: await wide() };
  await page.screenshot({ path: `${shots}-code.png`, fullPage: true });
  let code = null;
  for (let i = 0; i < 100 && !code; i++) {
    code = mailedCode();
    if (!code) await new Promise((r) => setTimeout(r, 100));
  }
  if (!code) throw new Error('no code arrived in the outbox');
  await page.getByLabel('Code').fill(code);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Signed in' }).waitFor();
  steps.signedIn = { url: page.url(), text: await page.locator('main').innerText(), width: await wide() };
  await page.screenshot({ path: `${shots}-signed-in.png`, fullPage: true });
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  steps.signedOut = { url: page.url() };
  console.log(JSON.stringify({ steps, errors }));
} finally {
  await browser.close();
}
