// Exploration: open the dashboard served by ringgate, record every WS frame, report
// unknown methods and errors. Usage: node explore.mjs <port> <token> <outdir>
import { chromium } from "playwright-core";
import fs from "node:fs";
const [port, token, outdir] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage();
const frames = [];
const consoleErrors = [];
page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
page.on("pageerror", (e) => consoleErrors.push("PAGEERROR " + e.message));
page.on("websocket", (ws) => {
  ws.on("framesent", (f) => frames.push({ dir: "c2s", t: Date.now(), data: String(f.payload) }));
  ws.on("framereceived", (f) => frames.push({ dir: "s2c", t: Date.now(), data: String(f.payload) }));
});
await page.goto(`http://127.0.0.1:${port}/#token=${token}`);
await page.waitForTimeout(6000);
await page.screenshot({ path: `${outdir}/load.png` });
await page.goto(`http://127.0.0.1:${port}/chat/main#token=${token}`);
await page.waitForTimeout(5000);
await page.screenshot({ path: `${outdir}/chat.png` });
fs.writeFileSync(`${outdir}/frames.jsonl`, frames.map((f) => JSON.stringify(f)).join("\n"));
fs.writeFileSync(`${outdir}/console.txt`, consoleErrors.join("\n"));
// summary
const reqs = new Map();
const out = [];
for (const f of frames) {
  let d; try { d = JSON.parse(f.data); } catch { continue; }
  if (d.type === "req") reqs.set(d.id, d.method);
  if (d.type === "res") out.push(`${reqs.get(d.id)} ${d.ok ? "ok" : "ERR " + (d.error?.message ?? "")}`);
}
console.log(out.join("\n"));
console.log("console errors:", consoleErrors.length);
await browser.close();
