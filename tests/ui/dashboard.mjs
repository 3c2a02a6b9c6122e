// Drives a real headless browser (Debian's chromium, through puppeteer-core)
// through an agent's dashboard the way a user would: open /ui, be asked for
// the token, give a wrong one, then the right one, wait for the page to
// show the agent's functions, calls and usage, take a screenshot, and sign
// out.
//
//   node dashboard.mjs CHROMIUM DASHBOARD_URL TOKEN_FILE SCREENSHOT.png
//
// Prints one JSON object: what the browser saw at each step (the test,
// tests/dashboard_test.cc, asserts on it). Exits non-zero only when the
// browser itself could not be driven.

import { readFileSync } from "node:fs";
import puppeteer from "puppeteer-core";

const [chromium, url, tokenFile, screenshot] = process.argv.slice(2);
const token = readFileSync(tokenFile, "utf8").trim();
const report = { page_errors: [] };

const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  // As root (CI) chromium needs --no-sandbox; /dev/shm may be small in a container.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.on("pageerror", (error) => report.page_errors.push(String(error)));

  async function signIn(secret) {
    await page.$eval("#token", (input) => { input.value = ""; });
    await page.type("#token", secret);
    const [response] = await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
    return response;
  }

  // 1. Without a session: the sign-in form, and nothing of the agent's.
  let response = await page.goto(url + "/ui");
  report.anonymous = {
    status: response.status(),
    form: (await page.$("form[action='/ui/login'] input[name=token][type=password]")) !== null,
    dashboard: (await page.$("#functions")) !== null,
  };

  // 2. A wrong token: the form again, with its error.
  response = await signIn("not-the-token");
  report.wrong_token = {
    status: response.status(),
    error: await page.$eval("#error", (node) => node.textContent).catch(() => ""),
    dashboard: (await page.$("#functions")) !== null,
  };

  // 3. The right token: redirected to the dashboard, which loads its data.
  response = await signIn(token);
  report.signed_in = { status: response.status(), url: page.url() };
  await page.waitForSelector("body[data-loaded=true]", { timeout: 30000 });
  // The usage of the calls the test made shows as bars with a cost.
  await page.waitForFunction(
    () => [...document.querySelectorAll("#usage-chart rect.bar")].some((bar) => Number(bar.dataset.cost) > 0),
    { timeout: 30000 }).catch(() => {});

  report.dashboard = await page.evaluate(() => ({
    functions: [...document.querySelectorAll("#functions tbody tr[data-function]")].map((row) => ({
      function: row.dataset.function,
      cells: [...row.cells].map((cell) => cell.textContent),
    })),
    budgets: [...document.querySelectorAll("#budgets tbody tr[data-app]")].map((row) => ({
      app: row.dataset.app,
      cells: [...row.cells].map((cell) => cell.textContent),
    })),
    containers: [...document.querySelectorAll("#containers tbody tr[data-container]")].map((row) => ({
      id: row.dataset.container,
      cells: [...row.cells].map((cell) => cell.textContent),
    })),
    calls: [...document.querySelectorAll("#calls tbody tr[data-call]")].map((row) => ({
      id: row.dataset.call,
      cells: [...row.cells].map((cell) => cell.textContent),
    })),
    bars: document.querySelectorAll("#usage-chart rect.bar").length,
    bars_with_cost: [...document.querySelectorAll("#usage-chart rect.bar")].filter((bar) => Number(bar.dataset.cost) > 0).length,
    cost: document.getElementById("cost").textContent,
    generation: document.getElementById("generation").textContent,
    banner: document.getElementById("banner").textContent,
    // The session cookie is HttpOnly: the page's own scripts cannot read it.
    script_cookies: document.cookie,
  }));

  // 4. The session reads but never writes: a PUT from the page is refused.
  report.write_with_session = await page.evaluate(async () => {
    const answer = await fetch("/ui/v1/desired", { method: "PUT", body: "{}", headers: { "Content-Type": "application/json" } });
    return answer.status;
  });

  // 5. The range buttons redraw the chart at another step.
  await page.click("#ranges button[data-range='86400000']");
  await page.waitForFunction(() => document.querySelectorAll("#usage-chart rect.bar").length === 24, { timeout: 15000 })
    .catch(() => {});
  report.day_bars = await page.$$eval("#usage-chart rect.bar", (bars) => bars.length);
  await page.click("#ranges button[data-range='3600000']");
  await page.waitForFunction(() => document.querySelectorAll("#usage-chart rect.bar").length === 60, { timeout: 15000 })
    .catch(() => {});

  await page.screenshot({ path: screenshot, fullPage: true });
  report.screenshot = screenshot;

  // 6. Sign out: back to the form, and the page's reads are refused.
  response = (await Promise.all([page.waitForNavigation(), page.click("#sign-out button")]))[0];
  report.signed_out = {
    status: response.status(),
    form: (await page.$("form[action='/ui/login']")) !== null,
    read: await page.evaluate(async () => (await fetch("/ui/v1/status")).status),
  };
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
