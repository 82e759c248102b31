// (h) The public status page in a real browser, at phone and desktop sizes and in both
// colour schemes: readable without signing in, every part listed, axe clean (no serious or
// critical violation), with screenshots.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { describeViolations, runAxe } from '../lib/axe.mjs';
import { openSession, VIEWPORTS } from '../lib/browser.mjs';
import { heading } from '../lib/flows.mjs';

for (const vp of VIEWPORTS) {
  test(`h. status page: every part, no serious axe violations [${vp.name}]`, async (t) => {
    const s = await openSession(t, vp, { firstShot: 98 });
    const { page } = s;
    const res = await page.goto(s.url('/status'));
    assert.equal(res.status(), 200);
    assert.equal(await heading(page), 'Service status');
    const text = await page.locator('main').innerText();
    for (const part of ['Sign-in', 'Registration', 'Recovery', 'Email', 'Text messages', 'Database']) {
      assert.match(text, new RegExp(part, 'i'), `${part} is listed`);
    }
    for (const scheme of ['light', 'dark']) {
      await page.emulateMedia({ colorScheme: scheme });
      const { blocking } = await runAxe(page);
      assert.deepEqual(blocking, [], `status (${scheme}): ${describeViolations(blocking)}`);
      await s.shot(`h-status-${scheme}`);
    }
    // The JSON answer says the same.
    const json = await (await fetch(s.url('/api/v1/status'))).json();
    assert.ok(['operational', 'degraded', 'outage'].includes(json.overall), JSON.stringify(json));
    assert.ok(json.components.length >= 6);
  });
}
