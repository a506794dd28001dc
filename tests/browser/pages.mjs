// Every page of the Control UI in a real browser against ringgate: open the dashboard with the
// token, then visit each page a dashboard user visits. Per page the report (JSON on stdout)
// lists the methods the UI called with their results, unknown methods, failed calls, error
// banners shown (`.callout.danger`, `[role=alert]`), console and page errors and failed HTTP
// responses, and the page's text; a screenshot of each page goes to OUTDIR.
//
// Usage: node pages.mjs <port> <token> <outdir>
import { openPage, watchFrames } from "./launch.mjs";

const [port, token, outdir] = process.argv.slice(2);
const base = `http://127.0.0.1:${port}`;

const PAGES = [
  ["sessions", "/sessions"],
  ["devices", "/settings/devices"],
  ["agents", "/settings/agents"],
  ["channels", "/settings/channels"],
  ["skills", "/settings/skills"],
  ["automations", "/automations"],
  ["usage", "/usage"],
  ["logs", "/logs"],
  ["advanced-config", "/settings/advanced"],
  ["approvals", "/settings/approvals"],
  ["model-providers", "/settings/model-providers"],
  ["debug", "/debug"],
  ["about", "/settings/about"],
  ["activity", "/activity"],
];

const report = { pages: [], errors: [] };
let current = null;
const fresh = (name, path) => ({
  name,
  path,
  calls: [],
  unknownMethods: [],
  failedCalls: [],
  banners: [],
  consoleErrors: [],
  httpFailures: [],
});

const { browser, page } = await openPage({ width: 1280, height: 900 });

page.on("console", (m) => {
  if (m.type() === "error" && current) current.consoleErrors.push(m.text());
});
page.on("pageerror", (e) => current && current.consoleErrors.push(`pageerror: ${e.message}`));
page.on("response", (r) => {
  if (r.status() >= 400 && current) {
    current.httpFailures.push(`${r.status()} ${r.request().method()} ${r.url()}`);
  }
});
watchFrames(page, {
  onResponse(method, d) {
    if (!current) return;
    current.calls.push(method);
    if (!d.ok) {
      current.failedCalls.push(`${method}: ${d.error?.code} ${d.error?.message}`);
      if (String(d.error?.message ?? "").startsWith("unknown method")) {
        current.unknownMethods.push(method);
      }
    }
  },
});

async function banners() {
  return page
    .locator(".callout.danger:visible, [role=alert]:visible")
    .allInnerTexts()
    .then((t) => t.map((x) => x.trim()).filter((x) => x.length > 0))
    .catch(() => []);
}

try {
  current = fresh("load", "/");
  report.pages.push(current);
  await page.goto(`${base}/#token=${encodeURIComponent(token)}`);
  await page.waitForTimeout(3000);
  for (const [name, path] of PAGES) {
    current = fresh(name, path);
    report.pages.push(current);
    await page.goto(`${base}${path}`);
    await page.waitForLoadState("networkidle", { timeout: 8000 }).catch(() => {});
    await page.waitForTimeout(1500);
    current.banners = await banners();
    current.text = await page
      .locator("body")
      .innerText()
      .then((t) => t.slice(0, 4000))
      .catch(() => "");
    current.calls = [...new Set(current.calls)].sort();
    await page.screenshot({ path: `${outdir}/page-${name}.png` }).catch(() => {});
  }
} catch (e) {
  report.errors.push(String(e?.stack ?? e));
  await page.screenshot({ path: `${outdir}/pages-failure.png` }).catch(() => {});
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(report) + "\n");
