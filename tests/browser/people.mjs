// Issue 15, "pages for people": opens, in headless Chromium on a 320 px
// wide screen, what a person meets outside the happy path: `/`, a
// POST-only protocol URL, the claim link (with a long address), its code,
// a button press over the rate limit, and an expired link. On each page it
// measures how wide the content is and which words (in times, addresses
// and buttons) a line break cut in two, and saves a screenshot. Prints one
// JSON line for tests/it/browser.rs.
//
// usage: node people.mjs BASE_URL LIVE_LINK EXPIRED_LINK SCREENSHOT_PREFIX
import { launch, phonePage } from './common.mjs';

const [base, live, expired, shots] = process.argv.slice(2);
const browser = await launch();

// Every word (a run of non-space characters within one text node, a
// hyphen ending a word: a line may break after it, as after a space) in the
// elements people read times, addresses and button labels from, that
// spans more than one line; and whether each such element fits the
// viewport horizontally.
function measure() {
  const broken = [];
  const outside = [];
  const viewport = document.documentElement.clientWidth;
  const elements = document.querySelectorAll('time, .addr, button, .who, h1, dd, .code');
  for (const element of elements) {
    const box = element.getBoundingClientRect();
    if (box.left < 0 || box.right > viewport + 0.5) outside.push(element.textContent);
    const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const text = node.textContent;
      for (const match of text.matchAll(/[^\s-]+-*|-+/g)) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
        if (tops.size > 1) broken.push(match[0]);
      }
    }
  }
  return {
    width: document.documentElement.scrollWidth,
    broken,
    outside,
    times: [...document.querySelectorAll('time')].map((t) => t.textContent),
    text: document.querySelector('main').innerText,
  };
}

try {
  const { page, errors } = await phonePage(browser);
  const steps = {};
  const visit = async (name, response) => {
    steps[name] = { status: response ? response.status() : null, ...(await page.evaluate(measure)) };
    await page.screenshot({ path: `${shots}-${name}.png`, fullPage: true });
  };

  await visit('home', await page.goto(`${base}/`));
  await visit('postOnly', await page.goto(`${base}/agent/auth/claim`));
  await visit('link', await page.goto(live));
  let [answer] = await Promise.all([
    page.waitForNavigation(),
    page.getByRole('button', { name: 'Show my code' }).click(),
  ]);
  await visit('code', answer);
  await page.goto(live);
  [answer] = await Promise.all([
    page.waitForNavigation(),
    page.getByRole('button', { name: 'Show my code' }).click(),
  ]);
  await visit('limited', answer);
  steps.limited.retryAfter = await answer.headerValue('retry-after');
  await visit('expired', await page.goto(expired));
  console.log(JSON.stringify({ steps, errors }));
} finally {
  await browser.close();
}
