// The Control UI in a real browser against ringgate: open the dashboard with the token, pair
// silently, send a message on the chat page, see the echo agent's reply stream in, reload and
// see it again. Every WebSocket frame is recorded; the report (JSON on stdout) lists every
// method the UI called with its result, unknown methods, console and page errors, and failed
// HTTP responses. Screenshots go to OUTDIR.
//
// Usage: node chat.mjs <port> <token> <outdir>
import { openPage, watchFrames } from "./launch.mjs";

const [port, token, outdir] = process.argv.slice(2);
// RINGGATE_SCHEME=https: the gateway serves TLS (gateway.tls; its self-signed certificate).
const base = `${process.env.RINGGATE_SCHEME || "http"}://127.0.0.1:${port}`;
// The echo agent by default; CHAT_MESSAGE / CHAT_REPLY / CHAT_TOOL_TEXT for another agent
// (CHAT_TOOL_TEXT: text of a tool call the page must show, e.g. its argument).
const MESSAGE = process.env.CHAT_MESSAGE || "hello from playwright";
const REPLY = process.env.CHAT_REPLY || `echo: ${MESSAGE}`;
const TOOL_TEXT = process.env.CHAT_TOOL_TEXT || "";

const report = {
  steps: [],
  calls: [],
  unknownMethods: [],
  errors: [],
  consoleErrors: [],
  httpFailures: [],
  sawDelta: false,
  sawFinal: false,
  replyShown: false,
  replyAfterReload: false,
  chatSendCalled: false,
  toolShown: null,
  reloadTimedOut: null,
  toolEvents: 0,
};
const step = (s) => report.steps.push(`${new Date().toISOString()} ${s}`);

const { browser, page, pendingRequests } = await openPage({ width: 1280, height: 800 });

page.on("console", (m) => {
  if (m.type() === "error") report.consoleErrors.push(m.text());
});
page.on("pageerror", (e) => report.consoleErrors.push(`pageerror: ${e.message}`));
page.on("response", (r) => {
  if (r.status() >= 400) report.httpFailures.push(`${r.status()} ${r.request().method()} ${r.url()}`);
});
watchFrames(page, {
  onRequest(d) {
    if (d.method === "chat.send") report.chatSendCalled = true;
  },
  onResponse(method, d) {
    const result = d.ok ? "ok" : `error ${d.error?.code}: ${d.error?.message}`;
    report.calls.push({ method, result });
    if (!d.ok && String(d.error?.message ?? "").startsWith("unknown method")) {
      report.unknownMethods.push(method);
    }
  },
  onEvent(d) {
    if (d.event === "agent" && d.payload?.stream === "tool") report.toolEvents += 1;
    if (d.event !== "chat") return;
    if (d.payload?.state === "delta") report.sawDelta = true;
    if (d.payload?.state === "final") report.sawFinal = true;
  },
});

async function shot(name) {
  await page.screenshot({ path: `${outdir}/${name}.png` }).catch(() => {});
}

async function textShown(text, timeoutMs) {
  try {
    await page.getByText(text, { exact: false }).first().waitFor({ state: "visible", timeout: timeoutMs });
    return true;
  } catch {
    return false;
  }
}

try {
  step("open the dashboard with the token");
  await page.goto(`${base}/#token=${encodeURIComponent(token)}`);
  await page.waitForTimeout(3000);
  await shot("01-load");

  step("open the chat page");
  await page.goto(`${base}/chat/main`);
  const composer = page.locator("textarea:visible").first();
  await composer.waitFor({ state: "visible", timeout: 15000 });
  await page.waitForTimeout(1500);
  await shot("02-chat");

  step("send a message");
  await composer.click();
  await composer.fill(MESSAGE);
  await composer.press("Enter");
  report.replyShown = await textShown(REPLY, 60000);
  if (TOOL_TEXT) report.toolShown = await textShown(TOOL_TEXT, 5000);
  await shot("03-reply");

  step("reload");
  // A reload has occasionally hung (no DOM for 60 s) while other browsers ran on this 2-core
  // machine; then the chat page is opened afresh, which is what a user does, and the
  // report says so (reloadTimedOut).
  try {
    await page.reload({ waitUntil: "domcontentloaded", timeout: 30000 });
  } catch (e) {
    report.reloadTimedOut = String(e?.message ?? e).split("\n")[0];
    report.pendingAtReloadTimeout = pendingRequests();
    await page.goto(`${base}/chat/main`, { waitUntil: "domcontentloaded", timeout: 30000 });
  }
  await page.locator("textarea:visible").first().waitFor({ state: "visible", timeout: 15000 });
  report.replyAfterReload = await textShown(REPLY, 15000);
  await shot("04-reload");
} catch (e) {
  report.errors.push(String(e?.stack ?? e));
  report.pendingAtError = pendingRequests();
  await shot("failure");
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(report) + "\n");
