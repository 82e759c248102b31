// axe-core in the page under test, with the page's strict CSP left on.
//
// How axe gets in: the pages send `script-src 'self'`, so `page.addScriptTag({ content })`
// (an inline <script>) is refused by the browser ("Executing inline script violates the
// following Content Security Policy directive 'script-src 'self''"), and it would also show
// up as a CSP violation in the console, which test (e) forbids. `bypassCSP: true` would work,
// but it turns CSP off for the whole context, so the CSP checks would then prove nothing.
// Instead the source of axe.min.js goes through `page.evaluate(source)`: Playwright evaluates
// it with the DevTools protocol (Runtime.evaluate), which a page's CSP does not govern, and
// the script defines `window.axe` in the page as a <script> would. axe itself needs no eval.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const BLOCKING = new Set(['serious', 'critical']);

/**
 * Runs axe on the page as it is now (WCAG 2.x A and AA rules plus axe's best practices) and
 * returns `{ blocking, lesser }`: violations of impact serious/critical, and the rest.
 */
export async function runAxe(page) {
  const loaded = await page.evaluate(() => typeof window.axe?.run === 'function');
  if (!loaded) await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
      resultTypes: ['violations'],
    });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      helpUrl: v.helpUrl,
      nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary, html: n.html })),
    }));
  });
  return {
    blocking: violations.filter((v) => BLOCKING.has(v.impact)),
    lesser: violations.filter((v) => !BLOCKING.has(v.impact)),
  };
}

/** One line per violation and node: `[impact] rule: help — selector`. */
export function describeViolations(violations) {
  return violations
    .flatMap((v) => v.nodes.map((n) => `[${v.impact}] ${v.id}: ${v.help} — ${n.target}\n      ${n.summary?.replace(/\n/g, ' ')}`))
    .join('\n');
}
