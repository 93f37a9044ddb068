// Headless Debian Chromium driven by playwright-core, for browser tests. Screenshots go to
// test/artifacts/ (not committed) so a person can look at every page a test saw.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import { ROOT } from './cluster.js';

export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
export const ARTIFACTS = join(ROOT, 'test', 'artifacts');

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

/** Saves a full-page screenshot as test/artifacts/<suite>/<name>.png. */
export async function snap(page: Page, suite: string, name: string): Promise<void> {
  const dir = join(ARTIFACTS, suite);
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
}

/** Launches Chromium before the tests of the enclosing describe and closes it after them. */
export function useBrowser(): { readonly browser: Browser } {
  let browser: Browser | null = null;
  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
  });
  return {
    get browser(): Browser {
      if (!browser) throw new Error('the browser is not launched yet');
      return browser;
    },
  };
}

/** Signs up through the sign-up form at `base` and waits for the menu. */
export async function signUpInBrowser(page: Page, base: string, name: string, password: string): Promise<void> {
  await page.goto(base + '/signup');
  await page.fill('#name', name);
  await page.fill('#password', password);
  await page.fill('#password2', password);
  await page.click('button[type=submit]');
  await page.waitForSelector(`text=Hello, ${name}`);
}
