// A real browser (Debian Chromium, headless, driven by playwright-core) through the balancer URL:
// sign up, see the menu, change the password, log out, log back in with the new one.
// Screenshots of every page go to test/artifacts/accounts/.
import { describe, expect, it } from 'vitest';
import { snap, useBrowser } from './support/browser.js';
import { useCluster } from './support/cluster.js';

describe('accounts in a real browser', () => {
  const env = useCluster({ basePort: 24400, storageNodes: 3, replication: 3, tablets: 8, frontends: 2, balancer: true, extraToml: '[web]\nheartbeat_ms = 300\n' });
  const b = useBrowser();

  it('signs up, changes the password, logs out and back in', async () => {
    const page = await b.browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    // The balancer sends the browser on to a frontend.
    await page.goto(env.cluster.url() + '/');
    expect([env.cluster.url('web1') + '/', env.cluster.url('web2') + '/']).toContain(page.url());
    expect(page.url()).not.toBe(env.cluster.url() + '/');
    await expect(page.locator('h1').textContent()).resolves.toBe('Log in');
    await snap(page, 'accounts', '01-login');

    await page.click('text=Sign up');
    await page.fill('#name', 'Browser.User');
    await page.fill('#password', 'first password');
    await page.fill('#password2', 'first password');
    await snap(page, 'accounts', '02-signup');
    await page.click('button[type=submit]');
    // Names are lowercased: the account is browser.user.
    await page.waitForSelector('text=Hello, browser.user');
    expect(await page.locator('#menu-mail').count()).toBe(1);
    expect(await page.locator('#menu-drive').count()).toBe(1);
    await snap(page, 'accounts', '03-menu');

    await page.click('#menu-account');
    await page.fill('#old', 'first password');
    await page.fill('#new', 'second password');
    await page.fill('#new2', 'second password');
    await page.click('button:has-text("Change password")');
    await page.waitForSelector('text=Your password was changed.');
    await snap(page, 'accounts', '04-password-changed');

    await page.click('button:has-text("Log out")');
    await page.waitForSelector('h1:has-text("Log in")');
    await page.fill('#name', 'browser.user');
    await page.fill('#password', 'first password');
    await page.click('button:has-text("Log in")');
    await page.waitForSelector('text=Wrong username or password.');
    await snap(page, 'accounts', '05-wrong-password');

    await page.fill('#password', 'second password');
    await page.click('button:has-text("Log in")');
    await page.waitForSelector('text=Hello, browser.user');
    await snap(page, 'accounts', '06-back-in');
    // The session cookie is not readable by scripts.
    expect(await page.evaluate(() => document.cookie)).not.toContain('pc_sid');
    const cookie = (await page.context().cookies()).find((c) => c.name === 'pc_sid')!;
    expect(cookie.httpOnly).toBe(true);
    expect(cookie.sameSite).toBe('Lax');
    expect(errors).toEqual([]);
  });
});
