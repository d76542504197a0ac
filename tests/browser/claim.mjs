// Opens an emailed claim link in headless Chromium as a person would: checks
// the page loaded without a code, presses the button, reads the code off the
// page, and saves a screenshot. Prints one JSON line for tests/browser.rs.
//
// usage: node claim.mjs LINK SCREENSHOT.png
import { launch } from './common.mjs';

const [link, screenshot] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 390, height: 760 } });
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  const first = await page.goto(link);
  const before = {
    status: first.status(),
    hasButton: await page.getByRole('button', { name: 'Show my code' }).count(),
    hasCode: await page.locator('#otp').count(),
    title: await page.title(),
  };
  await page.screenshot({ path: screenshot.replace(/\.png$/, '-link.png'), fullPage: true });
  await page.getByRole('button', { name: 'Show my code' }).click();
  await page.waitForSelector('#otp');
  const code = (await page.locator('#otp').textContent()).trim();
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ before, code, errors }));
} finally {
  await browser.close();
}
