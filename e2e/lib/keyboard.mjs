// Keyboard-only helpers: where the focus is, and moving it with Tab / Shift+Tab.

import assert from 'node:assert/strict';

/** The focused element, described, with whether its focus is visibly drawn. */
export function focused(page) {
  return page.evaluate(() => {
    const e = document.activeElement;
    if (!e || e === document.body) return { tag: 'body' };
    const style = getComputedStyle(e);
    return {
      tag: e.tagName.toLowerCase(),
      id: e.id,
      type: e.getAttribute('type'),
      name: e.getAttribute('name'),
      value: e.value,
      text: (e.innerText ?? '').trim().replace(/\s+/g, ' ').slice(0, 80),
      focusVisible: e.matches(':focus-visible'),
      outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0,
    };
  });
}

/** Presses `key` (Tab, or Shift+Tab) until `match(focused)` holds; fails after `max` presses.
 * Every element passed on the way must show a visible focus indicator. */
export async function tabTo(page, what, match, { key = 'Tab', max = 30 } = {}) {
  const path = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press(key);
    const f = await focused(page);
    path.push(f.id ? `#${f.id}` : `${f.tag}${f.text ? `"${f.text}"` : ''}`);
    if (f.tag !== 'body') {
      assert.ok(f.focusVisible && f.outline, `keyboard focus on ${path.at(-1)} is not visibly drawn`);
    }
    if (match(f)) return f;
  }
  assert.fail(`${key} never reached ${what}; focus went ${path.join(' → ')}`);
}

export const byId = (id) => (f) => f.id === id;
export const byText = (tag, text) => (f) => f.tag === tag && f.text === text;
