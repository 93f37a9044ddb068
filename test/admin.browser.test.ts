// The admin console in a real browser (Debian Chromium via playwright-core): an admin stops the storage
// node that leads the most tablets and watches it go down and the primaries move, live, without a
// reload, while a user's file (drive) and mail (webmail) stay readable; restarts it and watches it come back
// in sync; pages through raw data; and is asked to confirm before stopping the last in-sync replica.
// Screenshots go to test/artifacts/admin/.
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { tabletOf } from '../transport/partition.js';
import { signUpInBrowser, snap, useBrowser } from './support/browser.js';
import { useCluster } from './support/cluster.js';

const TABLETS = 8;
const SUITE = 'admin';

describe('admin console in a real browser', () => {
  const env = useCluster({
    basePort: 27000,
    storageNodes: 3,
    replication: 3,
    tablets: TABLETS,
    frontends: 1,
    balancer: true,
    extraToml: '[web]\nheartbeat_ms = 300\nadmins = ["boss"]\n',
  });
  const b = useBrowser();

  const signUp = (page: Page, name: string): Promise<void> => signUpInBrowser(page, env.cluster.url(), name, 'correct horse');

  /** A fresh browser context, logged in as the admin (signed up by the first test). */
  async function logInAsAdmin(): Promise<Page> {
    const page = await (await b.browser.newContext()).newPage();
    await page.goto(env.cluster.url() + '/');
    await page.fill('#name', 'boss');
    await page.fill('#password', 'correct horse');
    await page.click('button:has-text("Log in")');
    await page.waitForSelector('text=Hello, boss');
    return page;
  }

  /** The node's state as the live nodes table shows it. */
  const stateOf = (page: Page, node: string): Promise<string | null> => page.getAttribute(`#live-nodes tr[data-node="${node}"]`, 'data-state');
  /** Tablet -> primary, from the live tablet map. */
  const primaries = (page: Page): Promise<Record<string, string>> =>
    page.$$eval('#live-tablets tr[data-tablet]', (rows) => Object.fromEntries(rows.map((r) => [r.getAttribute('data-tablet')!, r.getAttribute('data-primary')!])));

  it('stops a primary node, shows the failover live, keeps user data readable, and brings it back in sync', async () => {
    const admin = await (await b.browser.newContext()).newPage();
    const errors: string[] = [];
    admin.on('pageerror', (e) => errors.push(e.message));
    const dialogs: string[] = [];
    admin.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.accept();
    });
    await signUp(admin, 'boss');
    await admin.click('header nav a[href="/admin"]');
    await admin.waitForSelector('#live-nodes tr[data-node="web1"][data-state="alive"]');
    await snap(admin, SUITE, '01-console');

    // A user with data in every tablet, logged in in another browser.
    const user = await (await b.browser.newContext()).newPage();
    await signUp(user, 'dora');
    const url = env.cluster.url();
    // A file in her drive and a mail in her inbox, through their pages.
    const notes = Buffer.from('dora’s notes\n'.repeat(3000));
    await user.goto(url + '/drive');
    await user.setInputFiles('#upload-files', [{ name: 'notes.txt', mimeType: 'text/plain', buffer: notes }]);
    const uploaded = user.waitForEvent('load');
    await user.click('#upload-form button[type=submit]');
    await uploaded;
    await user.waitForSelector('td.name a:text-is("notes.txt")');
    await user.goto(url + '/mail');
    await user.click('a.compose');
    await user.fill('#to', 'dora');
    await user.fill('#subject', 'Failover drill');
    await user.fill('#body', 'This mail must stay readable while a storage node is down.');
    await user.click('button:has-text("Send")');
    await user.waitForSelector('text=Your message was sent.');
    const store = env.client;
    const rows: string[] = [];
    for (let i = 0; rows.length < TABLETS; i++) {
      const row = `dora-file-${i}`;
      if (!rows.some((r) => tabletOf(r, TABLETS) === tabletOf(row, TABLETS))) rows.push(row);
    }
    for (const r of rows) await store.put(r, 'content', `the contents of ${r}`);

    // Stop the node that leads the most tablets, once every replica is in sync again (under load a
    // slow replica can briefly drop out of sync; stopping then would rightly ask for confirmation).
    for (const deadline = Date.now() + 30_000; ; ) {
      const st = await store.status();
      if (st.map.assignments.every((a) => a.primary !== null && a.inSync.length === a.replicas.length)) break;
      if (Date.now() > deadline) throw new Error('replicas did not get back in sync within 30 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    await admin.bringToFront();
    const before = await primaries(admin);
    const counts = new Map<string, number>();
    for (const p of Object.values(before)) counts.set(p, (counts.get(p) ?? 0) + 1);
    const victim = [...counts].sort((a, b) => b[1] - a[1])[0]![0];
    const led = Object.keys(before).filter((t) => before[t] === victim);
    expect(led.length).toBeGreaterThan(0);
    // The page's own (polled) view must agree that nothing would be stranded.
    await admin.waitForSelector(`#live-nodes tr[data-node="${victim}"] form[data-stranded=""]`, { timeout: 20_000 });
    await admin.click(`#live-nodes tr[data-node="${victim}"] button:has-text("Stop")`);
    await admin.waitForURL(/\/admin\?done=stop/);
    await admin.waitForSelector(`text=${victim} stopped`);
    expect(dialogs).toEqual([]); // two other in-sync replicas: no confirmation needed

    // From here on the page must update itself: a reload would lose this marker.
    await admin.evaluate(() => ((window as unknown as { marker: number }).marker = 1));
    await admin.waitForFunction(
      ({ victim, led }) => {
        const row = document.querySelector(`#live-nodes tr[data-node="${victim}"]`);
        const moved = led.every((t) => {
          const p = document.querySelector(`#live-tablets tr[data-tablet="${t}"]`)?.getAttribute('data-primary');
          return p && p !== victim;
        });
        return row?.getAttribute('data-state') === 'stopped' && moved;
      },
      { victim, led },
      { timeout: 20_000 },
    );
    expect(await admin.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(1);
    const after = await primaries(admin);
    for (const t of led) expect(after[t]).not.toBe(victim);
    expect(await admin.locator(`#live-tablets .replica.down:has-text("${victim}")`).count()).toBe(TABLETS);
    await snap(admin, SUITE, '02-stopped-failed-over');

    // Meanwhile the user's pages and data keep working: her file and her mail read back intact.
    await user.goto(url + '/');
    await user.waitForSelector('text=Hello, dora');
    await user.goto(url + '/drive');
    const href = await user.getAttribute('td.name a:text-is("notes.txt")', 'href');
    const download = await user.request.get(new URL(href!, user.url()).toString());
    expect(download.status()).toBe(200);
    expect(Buffer.from(await download.body()).equals(notes)).toBe(true);
    await user.goto(url + '/mail/inbox');
    await user.click('td.subject a:has-text("Failover drill")');
    await user.waitForSelector('h1.subject:has-text("Failover drill")');
    expect(await user.textContent('pre.mail-text')).toContain('must stay readable while a storage node is down');
    for (const r of rows) expect(Buffer.from((await store.get(r, 'content'))!).toString()).toBe(`the contents of ${r}`);
    await snap(user, SUITE, '03-user-during-failover');

    // Restart: recovering (if the page catches it), then alive with every replica in sync.
    await user.context().close();
    await admin.bringToFront(); // background tabs neither poll nor show confirm()
    await admin.click(`#live-nodes tr[data-node="${victim}"] button:has-text("Restart")`);
    await admin.waitForURL(/\/admin\?done=restart/);
    const seen: string[] = [];
    const deadline = Date.now() + 30_000;
    for (;;) {
      const state = (await stateOf(admin, victim)) ?? '';
      if (seen[seen.length - 1] !== state) {
        seen.push(state);
        if (state === 'recovering') await snap(admin, SUITE, '04-recovering');
      }
      const catching = await admin.locator('#live-tablets .replica.catching_up, #live-tablets .replica.down').count();
      if (state === 'alive' && catching === 0) break;
      if (Date.now() > deadline) throw new Error(`${victim} not alive and in sync; states seen: ${seen.join(' -> ')}`);
      await admin.waitForTimeout(100);
    }
    expect(seen[seen.length - 1]).toBe('alive');
    expect(seen.every((s) => ['stopped', 'dead', 'recovering', 'alive'].includes(s))).toBe(true);
    await snap(admin, SUITE, '05-back-in-sync');
    expect(errors).toEqual([]);
    await admin.context().close();
  });

  it('pages through a tablet’s raw data with next and previous', async () => {
    const admin = await logInAsAdmin();
    const tablet = 3;
    for (let i = 0, n = 0; n < 25; i++) if (tabletOf(`raw-${i}`, TABLETS) === tablet && ++n) await env.client.put(`raw-${i}`, 'v', i % 2 ? `text ${i}` : Buffer.from([0, 255, i]));
    await admin.goto(env.cluster.url() + '/admin');
    await admin.click('a:has-text("Raw data")');
    await admin.selectOption('select[name=node]', 's2');
    await admin.selectOption('select[name=tablet]', String(tablet));
    await admin.click('button:has-text("Show")');
    await admin.waitForSelector(`h2:has-text("s2, tablet ${tablet}: page 1")`);
    expect(await admin.locator('table.raw-cells tbody tr').count()).toBe(10);
    await snap(admin, SUITE, '06-raw-data-page-1');
    await admin.click('a[rel=next]');
    await admin.waitForSelector(`h2:has-text("page 2")`);
    const firstOnPage2 = await admin.locator('table.raw-cells tbody tr td').first().textContent();
    expect(firstOnPage2).toBe('11');
    await snap(admin, SUITE, '07-raw-data-page-2');
    await admin.click('a[rel=prev]');
    await admin.waitForSelector(`h2:has-text("page 1")`);
    await admin.context().close();
  });

  it('asks before stopping the last live in-sync replica, and a No leaves it running', async () => {
    const admin = await logInAsAdmin();
    await admin.goto(env.cluster.url() + '/admin');
    await admin.bringToFront();
    const dialogs: string[] = [];
    admin.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    for (const n of ['s1', 's2']) {
      await admin.click(`#live-nodes tr[data-node="${n}"] button:has-text("Stop")`);
      await admin.waitForURL(/\/admin\?done=stop/);
      await admin.waitForSelector(`#live-nodes tr[data-node="${n}"][data-state="stopped"]`, { timeout: 20_000 });
    }
    await admin.waitForSelector(`#live-nodes tr[data-node="s3"] form[data-stranded="0,1,2,3,4,5,6,7"]`, { timeout: 20_000 });
    await admin.click('#live-nodes tr[data-node="s3"] button:has-text("Stop")');
    expect(dialogs).toHaveLength(1); // the click returns once the dialog was answered
    expect(dialogs[0]).toContain('s3 is the last live in-sync replica of tablet(s) 0,1,2,3,4,5,6,7');
    expect(admin.url()).toMatch(/\/admin\?done=stop&node=s2$/); // no navigation: the stop was not sent
    expect(await stateOf(admin, 's3')).toBe('alive');
    await snap(admin, SUITE, '08-last-replica-kept');
    for (const n of ['s1', 's2']) {
      await admin.click(`#live-nodes tr[data-node="${n}"] button:has-text("Restart")`);
      await admin.waitForURL(new RegExp(`done=restart&node=${n}`));
    }
    await admin.waitForFunction(() => [...document.querySelectorAll('#live-nodes tr[data-node^="s"]')].every((r) => r.getAttribute('data-state') === 'alive'), undefined, { timeout: 30_000 });
  });
});
