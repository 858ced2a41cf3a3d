// The browser scenario of styrlogg's web interface, run by
// tests/it/browser.rs against a server it started on loopback:
//   node scenario.cjs BASE_URL OUT_DIR AXE_JS USER_DATA_DIR CHROMIUM PASSWORD
// Logs in, starts an instance, records a step and finds it in the timeline,
// corrects it and waives a deadline through their forms,
// sees a rejection next to its field, watches the overview update live,
// downloads a report, and runs axe-core on every page (no serious or
// critical WCAG 2.1 A/AA violations). Screenshots and results.json go to
// OUT_DIR. Exits non-zero at the first failed expectation.
"use strict";
const { chromium } = require("playwright-core");
const fs = require("fs");
const path = require("path");

const [base, out, axePath, userDataDir, executablePath, password] = process.argv.slice(2);
const results = { pages: [], downloads: [], checks: [] };

function check(cond, what) {
  results.checks.push(what);
  if (!cond) throw new Error("expected: " + what);
}

async function main() {
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    locale: "sv-SE",
    acceptDownloads: true,
    // axe-core is injected into the page; the server's CSP allows no inline script.
    bypassCSP: true,
    viewport: { width: 1280, height: 900 },
    timeout: 60000,
  });
  try {
    await run(context);
  } finally {
    await context.close();
  }
}

async function run(context) {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(30000);
  const axeSource = fs.readFileSync(axePath, "utf8");

  async function audit(name) {
    await page.evaluate(axeSource);
    const r = await page.evaluate(() =>
      // eslint-disable-next-line no-undef
      axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } })
    );
    const violations = r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5),
    }));
    await page.screenshot({ path: path.join(out, name + ".png"), fullPage: true });
    results.pages.push({ name, url: page.url(), violations, passes: r.passes.length });
  }

  // The public overview: no login, Swedish by default.
  await page.goto(base + "/");
  check((await page.textContent("h1")) === "Översikt", "the overview's heading is Swedish");
  check((await page.locator("table tbody tr").count()) >= 7, "the overview lists the demo's instances");
  await audit("01-overview-public");

  await page.goto(base + "/instances/ljl-2012-styrsystem");
  const publicText = await page.textContent("main");
  check(!publicText.includes("Tommy Bernevång Forsberg"), "the public timeline shows no person");
  check(publicText.includes("Avvikelse"), "the public timeline flags the deviation");
  await audit("02-instance-public");

  // Log in.
  await page.goto(base + "/login");
  await audit("03-login");
  await page.fill("#f-login", "eva");
  await page.fill("#f-password", "wrong password");
  await page.click("form button[type=submit]");
  check((await page.textContent(".error-summary")).includes("Fel användarnamn eller lösenord"), "a wrong password is refused");
  await page.fill("#f-password", password);
  await Promise.all([page.waitForURL(base + "/"), page.click("form button[type=submit]")]);
  check((await page.textContent("header")).includes("Eva Sekreterare"), "logged in as Eva");

  // Start an instance.
  await page.goto(base + "/start");
  await page.selectOption("#f-workflow", "skl-styrsystem-2012-2014");
  await page.fill("#f-instance", "webb-2012");
  await page.fill("#f-organisation", "Tyresö kommun");
  await page.fill("#f-on", "2012-01-15");
  await page.selectOption("#f-role", "registrator");
  await audit("04-start-form");
  await Promise.all([page.waitForURL(/\/instances\/webb-2012$/), page.click("main form button[type=submit]")]);

  // Record a step and see it in the timeline.
  await page.click("text=Registrera ett steg");
  await page.selectOption("#f-step", "intresseanmalan");
  await Promise.all([page.waitForURL(/step=intresseanmalan/), page.click("text=Välj steg")]);
  await page.fill("#f-on", "2012-01-20");
  await page.selectOption("#f-role", "registrator");
  await page.fill("#f-fact-kontaktperson", "Anita Brynje|kontaktperson|official");
  await page.fill("#f-fact-organisation", "Tyresö kommun");
  await audit("05-record-form");
  await Promise.all([page.waitForURL(/\/instances\/webb-2012#e\d+$/), page.click("main form[method=post] button[type=submit]")]);
  const timeline = await page.textContent("ol.timeline");
  check(timeline.includes("Intresseanmälan till SKL"), "the recorded step is in the timeline");
  check(timeline.includes("Eva Sekreterare (registrator)"), "the timeline names the logged-in user and role");
  check(timeline.includes("Anita Brynje"), "the timeline shows the step's facts to a logged-in user");
  await audit("06-timeline");

  // Correct the step through its form: the original stays, the correction points at it.
  await Promise.all([page.waitForURL(/\/correct\?event=/), page.click("ol.timeline a:has-text('Rätta')")]);
  await page.fill("#f-reason", "Fel datum");
  await page.fill("#f-date", "2012-01-21");
  await audit("06b-correct-form");
  await Promise.all([page.waitForURL(/\/instances\/webb-2012#e\d+$/), page.click("main form[method=post] button[type=submit]")]);
  check((await page.textContent("ol.timeline")).includes("Rättelse av"), "the correction is in the timeline");
  // Waive a pending deadline through its form.
  await Promise.all([page.waitForURL(/\/deadline\?step=/), page.click("table a:has-text('Förläng eller efterge')")]);
  await page.check("#f-waive");
  await page.fill("#f-reason", "Utgår enligt SKL");
  await audit("06c-deadline-form");
  await Promise.all([page.waitForURL(/\/instances\/webb-2012#e\d+$/), page.click("main form[method=post] button[type=submit]")]);
  check((await page.textContent("ol.timeline")).includes("Utgår enligt SKL"), "the waiver and its reason are in the timeline");

  // A rejected step: the message stands next to the field concerned.
  await page.goto(base + "/instances/webb-2012/record?step=styrelsebeslut");
  await page.fill("#f-on", "2012-09-03");
  await page.selectOption("#f-role", "sekreterare");
  await page.fill("#f-fact-organ", "Kommunstyrelsen");
  await page.click("main form[method=post] button[type=submit]");
  const fieldError = page.locator("#f-fact-protokoll-error");
  check(await fieldError.isVisible(), "the rejection is shown next to the protokoll field");
  check((await fieldError.textContent()).includes("protokoll"), "the field's message names the fact");
  check((await page.getAttribute("#f-fact-protokoll", "aria-invalid")) === "true", "the field is marked invalid");
  check(
    (await page.getAttribute("#f-fact-protokoll", "aria-describedby")).includes("f-fact-protokoll-error"),
    "the field is described by its error"
  );
  check((await page.textContent(".error-summary")).includes("missing-fact"), "the summary names the rule");
  check((await page.inputValue("#f-fact-organ")) === "Kommunstyrelsen", "what was typed is kept");
  await audit("07-rejection");

  // Live: the overview in a second tab updates when an event arrives.
  const overview = await context.newPage();
  await overview.goto(base + "/");
  await page.goto(base + "/instances/webb-2012/record?step=beredning");
  await page.fill("#f-on", "2012-08-14");
  await page.selectOption("#f-role", "sekreterare");
  await page.fill("#f-fact-organ", "Kommunstyrelsens arbetsutskott");
  await page.fill("#f-fact-behandling", "Föreslår deltagande");
  await Promise.all([page.waitForURL(/#e\d+$/), page.click("main form[method=post] button[type=submit]")]);
  await overview.waitForFunction(() => (document.getElementById("live-status").textContent || "").includes("Uppdaterad"));
  check((await overview.textContent("#live")).includes("webb-2012"), "the live overview shows the new instance");
  await overview.close();

  // Reports: view, and download.
  for (const [name, url] of [
    ["08-overview", "/"],
    ["09-deadlines", "/deadlines"],
    ["10-dialogues", "/dialogues"],
    ["11-reports", "/reports"],
    ["12-compliance", "/reports/compliance?instance=webb-2012"],
    ["13-audit", "/reports/audit?instance=webb-2012"],
    ["14-annual", "/reports/annual?org=H%C3%A4rryda+kommun&year=2012"],
  ]) {
    await page.goto(base + url);
    await audit(name);
  }
  await page.goto(base + "/reports/compliance?instance=webb-2012");
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("ul.downloads a:has-text('CSV')")]);
  const saved = path.join(out, "compliance.csv");
  await download.saveAs(saved);
  const csv = fs.readFileSync(saved, "utf8");
  check(csv.split("\n").length > 3 && csv.includes("Intresseanmälan till SKL"), "the downloaded CSV holds the obligations");
  results.downloads.push({ name: download.suggestedFilename(), bytes: csv.length });

  // English on request.
  await page.goto(base + "/?lang=en");
  check((await page.textContent("h1")) === "Overview", "English with ?lang=en");
  await audit("15-overview-en");
}

main()
  .then(() => {
    fs.writeFileSync(path.join(out, "results.json"), JSON.stringify(results, null, 1));
  })
  .catch((e) => {
    results.error = String(e && e.stack ? e.stack : e);
    fs.writeFileSync(path.join(out, "results.json"), JSON.stringify(results, null, 1));
    console.error(results.error);
    process.exit(1);
  });
