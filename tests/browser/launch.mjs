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
    ],
  });
  const context = await browser.newContext({ viewport });
  return { browser, page: await context.newPage() };
}
