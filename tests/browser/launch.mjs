// The headless Chromium every browser test uses (Debian's, or $CHROMIUM), and a page in it.
import { chromium } from "playwright-core";

export async function openPage(viewport) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // Service-worker scripts are refused on an untrusted certificate even where the
      // context accepts it (a gateway on TLS with its self-signed certificate).
      ...(process.env.RINGGATE_SCHEME === "https" ? ["--ignore-certificate-errors"] : []),
    ],
  });
  // A gateway on TLS serves its self-signed certificate; the page and its wss:// socket
  // accept it (RINGGATE_SCHEME=https).
  const context = await browser.newContext({
    viewport,
    ignoreHTTPSErrors: process.env.RINGGATE_SCHEME === "https",
  });
  // Every HTTP request the context makes (the page's and its service worker's), so a
  // navigation that times out can say which requests were still open.
  const open = new Map();
  const started = Date.now();
  context.on("request", (r) => open.set(r, Date.now() - started));
  const done = (r) => open.delete(r);
  context.on("requestfinished", done);
  context.on("requestfailed", done);
  const pendingRequests = () =>
    [...open].map(([r, at]) => `${r.method()} ${r.url()} (${r.resourceType()}, open since ${at} ms)`);
  return { browser, context, page: await context.newPage(), pendingRequests };
}

// Watches the page's WebSocket frames as the gateway protocol: `onRequest(frame)` for each
// request sent, `onResponse(method, frame)` for each response (paired with its request's
// method by id, "?" when unseen), `onEvent(frame)` for each event. Non-JSON frames are skipped.
export function watchFrames(page, { onRequest = () => {}, onResponse = () => {}, onEvent = () => {} }) {
  const pending = new Map();
  const parse = (f) => {
    try {
      return JSON.parse(String(f.payload));
    } catch {
      return null;
    }
  };
  page.on("websocket", (ws) => {
    ws.on("framesent", (f) => {
      const d = parse(f);
      if (d?.type !== "req") return;
      pending.set(d.id, d.method);
      onRequest(d);
    });
    ws.on("framereceived", (f) => {
      const d = parse(f);
      if (d?.type === "res") onResponse(pending.get(d.id) ?? "?", d);
      else if (d?.type === "event") onEvent(d);
    });
  });
}
