// Walks the dashboards in Debian's headless Chromium (driven by playwright-core) as their users
// would: signs in through the form, opens every page, changes a filter, searches a customer and
// opens the profile, and checks that a viewer cannot open the admin page. Run by
// tests/dashboards.rs against a running `tributary serve`; prints one JSON report on its last line
// and exits non-zero with every failure listed.
//
// Environment: TRIBUTARY_URL, PLAYWRIGHT_CORE (the package's directory), CHROMIUM (the browser),
// SCREENSHOTS (a directory), ADMIN and VIEWER ("user:password").
"use strict";

const path = require("node:path");
const fs = require("node:fs");
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const base = process.env.TRIBUTARY_URL;
const shots = process.env.SCREENSHOTS;
const [adminUser, adminPassword] = process.env.ADMIN.split(":");
const [viewerUser, viewerPassword] = process.env.VIEWER.split(":");
const PAGES = ["overview", "customers", "products", "campaigns", "pipeline", "operations"];
const failures = [];
const report = { pages: {}, checks: [] };

function check(ok, message) {
  report.checks.push({ ok: Boolean(ok), message });
  if (!ok) failures.push(message);
}

async function newPage(browser, label) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  page.consoleErrors = [];
  page.on("console", (m) => {
    if (m.type() === "error") page.consoleErrors.push(`${label}: ${m.text()} (${page.url()})`);
  });
  page.on("pageerror", (e) => page.consoleErrors.push(`${label}: uncaught ${e.message} (${page.url()})`));
  return page;
}

async function signIn(page, user, password, next) {
  await page.goto(base + next);
  await page.waitForSelector("form#login");
  check(page.url().includes("/login"), `${user}: an unsigned visit to ${next} asks for a sign-in (at ${page.url()})`);
  await page.fill("input[name=user]", user);
  await page.fill("input[name=password]", password);
  await page.click("form#login button");
  await page.waitForSelector("body[data-ready]:not([data-ready=login])", { timeout: 60000 });
}

/** Wait until the page says every panel settled, then read its state. */
async function settled(page) {
  await page.waitForSelector("body[data-ready]:not([data-ready=login])", { timeout: 60000 });
  return page.evaluate(() => ({
    timing: (window.__timings || []).slice(-1)[0],
    panels: [...document.querySelectorAll(".panel[data-panel]")].map((p) => ({
      name: p.dataset.panel,
      state: p.dataset.state,
      rows: Number(p.dataset.rows || 0),
      text: p.dataset.state === "error" ? p.innerText.slice(0, 300) : "",
    })),
    charts: [...document.querySelectorAll(".chart")].map((c) => ({
      panel: c.closest("[data-panel]").dataset.panel,
      points: Number(c.dataset.points || 0),
      canvas: Boolean(c.querySelector("canvas")),
    })),
  }));
}

/** A CRM webhook pushes an account whose employee count is not a number: one quarantined row. */
async function pushBadRow() {
  const response = await fetch(`${base}/api/v1/ingest/crm_accounts`, {
    method: "POST",
    headers: {
      Authorization: "Basic " + Buffer.from(`${adminUser}:${adminPassword}`).toString("base64"),
      "Content-Type": "application/x-ndjson",
    },
    body: JSON.stringify({ Id: "ACC-BROWSER-1", Name: "Browser Test Ltd", NumberOfEmployees: "many" }) + "\n",
  });
  const body = await response.json();
  check(response.status === 200 && JSON.stringify(body).includes("quarantine"), `a pushed bad row is quarantined: ${response.status} ${JSON.stringify(body).slice(0, 300)}`);
}

async function main() {
  fs.mkdirSync(shots, { recursive: true });
  await pushBadRow();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    // Every page as the admin: loads with no console error, every panel filled, every chart drawn.
    const admin = await newPage(browser, "admin");
    await signIn(admin, adminUser, adminPassword, "/overview");
    // The first rendering after signing in runs every query cold (the visit in the loop below
    // may answer from the result cache): timed from the sign-in's click, catalogue included.
    const first = await settled(admin);
    report.pages["overview (first, at sign-in)"] = { interactive_ms: Math.round(first.timing.ms), route_ms: Math.round(first.timing.ms) };
    admin.consoleErrors.length = 0; // the refused unsigned visit is not an error of a page
    for (const name of PAGES) {
      const started = Date.now();
      await admin.goto(`${base}/${name}`);
      const seen = await settled(admin);
      const wall = Date.now() - started;
      // Interactive: every panel filled and every chart drawn, timed from the navigation's start.
      report.pages[name] = { interactive_ms: Math.round(seen.timing.at), route_ms: Math.round(seen.timing.ms), wall_ms: wall };
      check(seen.panels.length > 0, `${name}: has panels`);
      for (const p of seen.panels) check(p.state === "ready" && p.rows > 0, `${name}/${p.name}: filled with data (state ${p.state}, rows ${p.rows}) ${p.text}`);
      check(seen.charts.length > 0 || name === "operations", `${name}: has charts`);
      for (const c of seen.charts) check(c.canvas && c.points > 0, `${name}/${c.panel}: chart drawn with ${c.points} points`);
      await admin.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
    }
    check(admin.consoleErrors.length === 0, `no console errors on the pages: ${admin.consoleErrors.join(" | ")}`);

    // A filter changes the numbers and the URL; the numbers agree with SQL on the order lines.
    await admin.goto(`${base}/overview`);
    await settled(admin);
    const before = await admin.getAttribute("[data-panel=kpi-revenue] .value", "data-value");
    const regions = await admin.$$eval("form#filters select[name=region] option", (os) => os.map((o) => o.value).filter(Boolean));
    check(regions.length > 1, `the region filter offers regions: ${regions}`);
    await admin.selectOption("form#filters select[name=region]", regions[0]);
    await admin.waitForFunction((r) => location.search.includes("region=" + encodeURIComponent(r)) && document.body.dataset.ready === "overview", regions[0]);
    const after = await admin.getAttribute("[data-panel=kpi-revenue] .value", "data-value");
    const range = await admin.evaluate(() => ({ from: document.querySelector("input[name=from]").value, to: document.querySelector("input[name=to]").value }));
    check(Number(after) > 0 && Number(after) < Number(before), `the region filter lowers revenue: ${before} -> ${after}`);
    const url = admin.url();
    report.filter = { region: regions[0], revenue_before: Number(before), revenue_after: Number(after), url };
    const answer = await admin.evaluate(
      async ({ region, range, auth }) => {
        const r = await fetch("/api/v1/sql", {
          method: "POST",
          headers: { Authorization: "Basic " + auth, "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify({
            sql: `SELECT CAST(SUM(net_amount) AS DOUBLE) AS revenue FROM core.order_line WHERE status <> 'cancelled' AND region = '${region}' AND order_date BETWEEN DATE '${range.from}' AND DATE '${range.to}'`,
          }),
        });
        return (await r.json()).rows[0].revenue;
      },
      { region: regions[0], range, auth: Buffer.from(`${adminUser}:${adminPassword}`).toString("base64") },
    ).catch((e) => `failed: ${e}`);
    check(Math.abs(Number(answer) - Number(after)) < 0.01 * Math.max(1, Math.abs(Number(after))) / 100, `the dashboard's revenue ${after} equals SQL's ${answer}`);
    await admin.screenshot({ path: path.join(shots, "overview-filtered.png"), fullPage: true });
    // Back and forward go through the filter history.
    await admin.goBack();
    await admin.waitForFunction(() => !location.search.includes("region=") && document.body.dataset.ready === "overview");
    const back = await admin.getAttribute("[data-panel=kpi-revenue] .value", "data-value");
    check(back === before, `going back restores the unfiltered revenue (${back})`);

    // The customer search opens a 7P profile.
    await admin.goto(`${base}/customers`);
    await settled(admin);
    const someone = await admin.getAttribute("[data-panel=churn-risks] tbody tr:first-child a", "href");
    const name = await admin.textContent("[data-panel=churn-risks] tbody tr:first-child a");
    const fragment = name.trim().split(/\s+/)[0].slice(0, 6);
    await admin.fill("[data-panel=customer-search] input[type=search]", fragment);
    await admin.press("[data-panel=customer-search] input[type=search]", "Enter");
    await admin.waitForSelector("[data-panel=customer-search] ul.results li a");
    const hits = await admin.$$eval("[data-panel=customer-search] ul.results li a", (as) => as.map((a) => a.textContent));
    check(hits.length > 0 && hits.every((h) => h.toLowerCase().includes(fragment.toLowerCase())), `searching ${fragment} finds matching customers: ${hits.slice(0, 5)}`);
    await admin.click("[data-panel=customer-search] ul.results li:first-child a");
    await admin.waitForFunction(() => /^\/customers\/\d+$/.test(location.pathname) && document.body.dataset.ready === "customers");
    const profile = await settled(admin);
    const sections = await admin.$$eval("[data-section]", (s) => s.map((x) => x.dataset.section));
    check(["profiling", "persistency", "profitability", "performance", "prospecting", "product", "promotion"].every((s) => sections.includes(s)), `the profile shows all seven P's: ${sections}`);
    for (const p of profile.panels) check(p.state === "ready" && p.rows > 0, `profile/${p.name}: filled (state ${p.state}) ${p.text}`);
    // Opened from the search results, within the page: no full load.
    report.pages.profile = { interactive_ms: Math.round(profile.timing.ms), route_ms: Math.round(profile.timing.ms) };
    report.profile = { opened: admin.url(), first_churn_risk: someone };
    await admin.screenshot({ path: path.join(shots, "customer-profile.png"), fullPage: true });
    check(admin.consoleErrors.length === 0, `no console errors after filtering and searching: ${admin.consoleErrors.join(" | ")}`);

    // A viewer cannot open the admin page, nor read what it shows through the API.
    const viewer = await newPage(browser, "viewer");
    await signIn(viewer, viewerUser, viewerPassword, "/operations");
    await viewer.waitForSelector("[data-denied=operations]");
    check(!(await viewer.isVisible("nav a[data-page=operations]")), "a viewer's menu has no Operations page");
    const refused = await viewer.evaluate(async (auth) => {
      const headers = { Authorization: "Basic " + auth, "Content-Type": "application/json" };
      const jobs = await fetch("/api/v1/jobs", { headers });
      const log = await fetch("/api/v1/sql", { method: "POST", headers, body: JSON.stringify({ sql: "SELECT * FROM system.query_log" }) });
      return [jobs.status, log.status, (await log.json()).error.code];
    }, Buffer.from(`${viewerUser}:${viewerPassword}`).toString("base64"));
    check(refused[0] === 403 && refused[1] === 403, `the API refuses the viewer the admin data: ${refused}`);
    await viewer.screenshot({ path: path.join(shots, "operations-as-viewer.png"), fullPage: true });
    await viewer.goto(`${base}/customers`);
    const viewerCustomers = await settled(viewer);
    const denied = viewerCustomers.panels.filter((p) => p.state !== "ready").map((p) => p.name);
    check(denied.length === 0, `a viewer's Customers page is filled (marts and ml only): ${denied}`);
  } finally {
    await browser.close();
  }
}

main()
  .catch((error) => failures.push(`the browser run failed: ${error.stack || error}`))
  .finally(() => {
    report.failures = failures;
    try {
      fs.writeFileSync(path.join(shots, "report.json"), JSON.stringify(report, null, 2));
    } catch {
      // the report still goes to standard output
    }
    console.log(JSON.stringify(report));
    process.exit(failures.length ? 1 : 0);
  });
