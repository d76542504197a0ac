// What the browser scripts share: headless Chromium as the tests launch it,
// the sign-in code from the mail the server sent, and signing in with it.
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// A 320 px wide page that collects console errors, each with the URL it
// is about (a CSP violation shows there), and can say how wide its
// content is.
export async function phonePage(browser) {
  const context = await browser.newContext({ viewport: { width: 320, height: 640 } });
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`${m.text()} at ${m.location().url}`); });
  const width = () => page.evaluate(() => document.documentElement.scrollWidth);
  return { page, errors, width };
}

let stdinLines;

// The sign-in code mailed to `email`. The mail is read where it was
// delivered, by the test that runs this script (tests/it/browser.rs): it
// prints a request on stdout and the code comes back on stdin.
export async function mailedCode(email) {
  console.log(JSON.stringify({ codeFor: email }));
  stdinLines ??= createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const { value, done } = await stdinLines.next();
  if (done) throw new Error(`no sign-in code for ${email} came on stdin`);
  return value.trim();
}

// On the sign-in form (its address filled in already): asks for a code,
// types the mailed one, signs in.
export async function signIn(page, email) {
  await page.getByRole('button', { name: 'Send me a code' }).click();
  await page.getByRole('heading', { name: 'Check your email' }).waitFor();
  await page.getByLabel('Code').fill(await mailedCode(email));
  await page.getByRole('button', { name: 'Sign in' }).click();
}
