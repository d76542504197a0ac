// "This wasn't me" on the confirm page, in headless Chromium on a 320 px
// screen: sign in through the link, press the reject control, see the
// question asked a second time, go back (the page still offers to
// authorize), press it again and confirm, then open the link again.
// Saves a screenshot of each page. Prints one JSON line for
// tests/it/browser.rs.
//
// usage: node reject.mjs LINK EMAIL SCREENSHOT_PREFIX
import { launch, phonePage, signIn } from './common.mjs';

const [link, email, shots] = process.argv.slice(2);
const browser = await launch();

try {
  const { page, errors, width } = await phonePage(browser);
  const main = () => page.locator('main').innerText();
  const offersAuthorize = (p) => p.getByRole('button', { name: 'Authorize' }).count();
  await page.goto(link);
  await signIn(page, email);
  await page.getByRole('heading', { name: 'An AI agent asks to act for you' }).waitFor();
  const pressReject = async () => {
    await page.getByRole('button', { name: "This wasn't me" }).click();
    await page.getByRole('heading', { name: 'Turn this agent away?' }).waitFor();
  };
  await pressReject();
  const steps = { ask: { text: await main(), width: await width() } };
  await page.screenshot({ path: `${shots}-ask.png`, fullPage: true });
  await page.getByRole('link', { name: 'Go back' }).click();
  await page.getByRole('heading', { name: 'An AI agent asks to act for you' }).waitFor();
  steps.back = { url: page.url(), offersAuthorize: await offersAuthorize(page) };
  await pressReject();
  await page.getByRole('button', { name: "Yes, this wasn't me" }).click();
  await page.getByRole('heading', { name: 'The agent was turned away' }).waitFor();
  steps.rejected = { text: await main(), width: await width() };
  await page.screenshot({ path: `${shots}-rejected.png`, fullPage: true });
  const after = await page.goto(link);
  steps.after = { status: after.status(), text: await main(), width: await width(),
    offersAuthorize: await offersAuthorize(page) };
  await page.screenshot({ path: `${shots}-after.png`, fullPage: true });
  console.log(JSON.stringify({ steps, errors }));
} finally {
  await browser.close();
}
