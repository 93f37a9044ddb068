// The webmail in a real browser (Debian Chromium via playwright-core): one user composes with an
// attachment, the other sees it in the inbox, opens it, replies; the first forwards it back; the second
// deletes it. A hostile HTML mail (script, onerror, javascript: link, svg onload) delivered over SMTP is
// shown with nothing executed. Screenshots go to test/artifacts/mail/.
import type { Dialog, Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { signUpInBrowser, snap, useBrowser } from './support/browser.js';
import { MAIL_BASE_PORT, MAIL_DOMAIN, swaks, useMailCluster, waitSmtp } from './mail-helpers.js';

const SUITE = 'mail';
const SMTP = MAIL_BASE_PORT + 701;

describe('webmail in a real browser', () => {
  const env = useMailCluster(1, 'retry_first_s = 3600');
  const b = useBrowser();
  const dialogs: string[] = [];
  const pageErrors: string[] = [];

  beforeAll(async () => {
    await waitSmtp(SMTP);
  });

  async function userPage(name: string): Promise<Page> {
    const page = await (await b.browser.newContext()).newPage();
    page.on('dialog', (d: Dialog) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await signUpInBrowser(page, env.cluster.url('web1'), name, 'correct horse');
    return page;
  }

  async function compose(page: Page, to: string, subject: string, body: string): Promise<void> {
    if (to) await page.fill('#to', to);
    if (subject) await page.fill('#subject', subject);
    await page.fill('#body', body);
    await page.click('button:has-text("Send")');
    await page.waitForSelector('text=Your message was sent.');
  }

  it('compose, read, reply, forward and delete between two users', async () => {
    const gil = await userPage('gil');
    const hal = await userPage('hal');

    await gil.click('header nav a[href="/mail"]');
    await gil.click('a.compose');
    await gil.fill('#to', 'hal');
    await gil.fill('#subject', 'Project plan');
    await gil.setInputFiles('#files', { name: 'plan.txt', mimeType: 'text/plain', buffer: Buffer.from('step 1\nstep 2\n') });
    await gil.fill('#body', 'Hi Hal,\nthe plan is attached.');
    await snap(gil, SUITE, '01-compose');
    await gil.click('button:has-text("Send")');
    await gil.waitForSelector('text=Your message was sent.');

    await hal.goto(env.cluster.url('web1') + '/mail');
    const row = hal.locator('tr.unread', { hasText: 'Project plan' });
    await row.waitFor();
    await snap(hal, SUITE, '02-inbox');
    await row.locator('td.subject a').click();
    await hal.waitForSelector('h1.subject:has-text("Project plan")');
    expect(await hal.textContent('pre.mail-text')).toContain('the plan is attached.');
    const download = hal.waitForEvent('download');
    await hal.click('a:has-text("plan.txt")');
    const file = await download;
    expect(file.suggestedFilename()).toBe('plan.txt');
    await snap(hal, SUITE, '03-message');

    await hal.click('a.button:has-text("Reply")');
    expect(await hal.inputValue('#to')).toBe(`gil@${MAIL_DOMAIN}`);
    expect(await hal.inputValue('#subject')).toBe('Re: Project plan');
    expect(await hal.inputValue('#body')).toContain('> the plan is attached.');
    await hal.fill('#body', 'Looks good.\n' + (await hal.inputValue('#body')));
    await snap(hal, SUITE, '04-reply');
    await hal.click('button:has-text("Send")');
    await hal.waitForSelector('text=Your message was sent.');

    await gil.goto(env.cluster.url('web1') + '/mail/inbox');
    await gil.click('tr.unread td.subject a:has-text("Re: Project plan")');
    expect(await gil.textContent('pre.mail-text')).toContain('Looks good.');
    await gil.click('a.button:has-text("Forward")');
    expect(await gil.inputValue('#subject')).toBe('Fwd: Re: Project plan');
    await compose(gil, 'hal', '', 'FYI, see below.\n' + (await gil.inputValue('#body')));

    await hal.goto(env.cluster.url('web1') + '/mail/inbox');
    await hal.click('td.subject a:has-text("Fwd: Re: Project plan")');
    expect(await hal.textContent('pre.mail-text')).toContain('---------- Forwarded message ----------');
    await hal.click('button.danger:has-text("Delete")');
    await hal.waitForSelector('text=The message was deleted.');
    expect(await hal.locator('td.subject', { hasText: 'Fwd: Re: Project plan' }).count()).toBe(0);
    expect(await hal.locator('td.subject', { hasText: 'Project plan' }).count()).toBe(1);
    await snap(hal, SUITE, '05-after-delete');
    expect(pageErrors).toEqual([]);
  });

  it('shows a hostile HTML mail with nothing executed', async () => {
    const ivy = await userPage('ivy');
    const hostile = [
      '<p id="greeting">Hello <b>Ivy</b></p>',
      '<script>alert("script ran"); document.title = "pwned";</script>',
      '<img src="x" onerror="alert(\'onerror ran\')">',
      '<img src="https://tracker.example/pixel.gif">',
      '<a id="js" href="javascript:alert(\'link ran\')">click me</a>',
      '<svg onload="alert(\'svg ran\')"></svg>',
      '<iframe src="javascript:alert(\'iframe ran\')"></iframe>',
      '<form action="https://evil.example/"><input name="password"></form>',
      '<div style="background:url(https://tracker.example/bg.png)">styled</div>',
    ].join('\n');
    const r = await swaks(SMTP, ['--to', `ivy@${MAIL_DOMAIN}`, '--from', 'mallory@evil.example', '--h-Subject', 'Totally harmless', '--attach-type', 'text/html', '--attach-body', hostile]);
    expect(r.code, r.out).toBe(0);
    const requests: string[] = [];
    ivy.on('request', (req) => requests.push(req.url()));
    await ivy.goto(env.cluster.url('web1') + '/mail/inbox');
    await ivy.click('td.subject a:has-text("Totally harmless")');
    const frameEl = await ivy.waitForSelector('iframe.mail-html');
    const frame = await frameEl.contentFrame();
    expect(frame).not.toBeNull();
    const greeting = frame!.locator('p', { hasText: 'Hello' });
    await greeting.waitFor();
    expect(await greeting.textContent()).toBe('Hello Ivy');
    // Click the (neutralised) link too: nothing may run.
    await frame!.click('text=click me').catch(() => {});
    await ivy.waitForTimeout(500);
    await snap(ivy, SUITE, '06-hostile-html');
    expect(dialogs).toEqual([]);
    expect(await ivy.title()).not.toBe('pwned');
    expect(await frame!.locator('script, iframe, form, svg, [onerror], [onload]').count()).toBe(0);
    expect(await frame!.locator('a', { hasText: 'click me' }).getAttribute('href')).toBeNull();
    expect(await frame!.textContent('body')).toContain('[image blocked]');
    expect(requests.filter((u) => u.includes('tracker.example') || u.includes('evil.example'))).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
