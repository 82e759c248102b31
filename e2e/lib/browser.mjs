// Debian's Chromium driven by playwright-core, and the per-test fixture every test uses:
// its own server, its own browser, one page at one viewport, screenshots, and a record of
// every response and console message the page saw.

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';

import { repoRoot, startServer } from './server.mjs';

export const VIEWPORTS = [
  { name: 'phone', viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
  { name: 'desktop', viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1, isMobile: false, hasTouch: false },
];

export const SCREENSHOT_DIR = path.join(repoRoot, 'e2e', 'screenshots');

// Debian's browser, never one a test tool downloads. The flags are the ones this closed
// network needs: without the background-networking ones Chromium keeps trying to reach
// Google's hosts, and those connections are refused. There is no sandbox because CI runs
// as root (Chromium refuses to start sandboxed as root) and containers rarely allow it.
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    chromiumSandbox: false,
    timeout: 30_000,
    args: [
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}

/**
 * Everything one test needs, cleaned up by `t.after`: `server`, `browser`, `context`, `page`,
 * `shot(name)` for a full-page screenshot at `e2e/screenshots/<viewport>/<nn>-<name>.png`
 * (`nn` counts up from `firstShot`, so each test owns a block of numbers), and `seen`, the
 * responses, console messages and CSP violations the page met.
 */
export async function openSession(t, vp, { firstShot }) {
  const server = await startServer();
  const browser = await launchChromium().catch(async (e) => {
    await server.stop();
    throw e;
  });
  const context = await browser.newContext({
    viewport: vp.viewport,
    deviceScaleFactor: vp.deviceScaleFactor,
    isMobile: vp.isMobile,
    hasTouch: vp.hasTouch,
    locale: 'en-US',
    colorScheme: 'light',
  });
  context.setDefaultTimeout(10_000);
  context.setDefaultNavigationTimeout(15_000);

  const seen = { responses: [], console: [], pageErrors: [], violations: [] };
  // A second, independent witness of CSP violations besides the console: the
  // securitypolicyviolation DOM event, reported through a binding. Init scripts and bindings
  // go through the DevTools protocol, so the page's own CSP does not apply to them.
  await context.exposeBinding('__portcullisCspViolation', ({ frame }, v) => {
    seen.violations.push({ page: frame.url(), ...v });
  });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__portcullisCspViolation({
        directive: e.effectiveDirective,
        blocked: e.blockedURI,
        sample: e.sample,
      });
    });
  });
  const page = await context.newPage();
  page.on('response', (r) => {
    seen.responses.push({
      url: r.url(),
      status: r.status(),
      method: r.request().method(),
      csp: r.headers()['content-security-policy'],
    });
  });
  page.on('console', (m) => seen.console.push({ type: m.type(), text: m.text(), page: page.url() }));
  page.on('pageerror', (e) => seen.pageErrors.push(String(e)));

  const dir = path.join(SCREENSHOT_DIR, vp.name);
  await mkdir(dir, { recursive: true });
  let n = firstShot;
  const shot = async (name) => {
    const file = path.join(dir, `${String(n++).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    const overflow = await findOverflow(page);
    if (overflow.length) t.diagnostic(`layout warning [${vp.name}] ${pathOf(page)} (${path.basename(file)}):\n  ${overflow.join('\n  ')}`);
    return file;
  };

  t.after(async () => {
    await context.close().catch(() => {});
    await browser.close().catch(() => {});
    const exit = await server.stop();
    // The server is stopped with SIGTERM and should shut down cleanly, not be killed.
    assert.deepEqual(exit, { code: 0, signal: null }, `the server did not exit cleanly on SIGTERM\n${server.logs().slice(-4000)}`);
  });

  return { server, browser, context, page, shot, seen, url: (p) => server.url + p };
}

function pathOf(page) {
  const u = new URL(page.url());
  return u.pathname + u.search;
}

/** What does not fit across the viewport: the page wider than the window, and text that
 * runs out of its own box (so it overlaps what is beside it). A warning, not a failure:
 * the screenshots show how it looks. */
function findOverflow(page) {
  return page.evaluate(() => {
    const found = [];
    const doc = document.documentElement;
    if (doc.scrollWidth > window.innerWidth) {
      found.push(`the page is ${doc.scrollWidth}px wide in a ${window.innerWidth}px window`);
    }
    for (const el of document.body.querySelectorAll('*')) {
      if (el.children.length || ['INPUT', 'SELECT', 'OPTION', 'TEXTAREA', 'BUTTON'].includes(el.tagName)) continue;
      const style = getComputedStyle(el);
      if (style.display === 'inline' || style.display === 'none' || style.overflowX !== 'visible') continue;
      if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1) {
        const text = el.textContent.trim().replace(/\s+/g, ' ').slice(0, 50);
        found.push(`${el.tagName.toLowerCase()}${el.className ? '.' + el.className : ''} "${text}" needs ${el.scrollWidth}px, has ${el.clientWidth}px`);
      }
    }
    return found;
  });
}
