// The drive in a real browser (Debian Chromium, headless, playwright-core): nested folders, two files
// uploaded with the file picker (progress bars), rename, move into a subfolder, download and compare,
// delete after the confirmation. Screenshots of every step go to test/artifacts/drive/.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { sha256 } from './drive-helpers.js';
import { signUpInBrowser, snap, useBrowser } from './support/browser.js';
import { useCluster } from './support/cluster.js';

const row = (page: Page, name: string) => page.locator('tr', { has: page.locator(`td.name a:text-is("${name}")`) });

describe('drive in a real browser', () => {
  const env = useCluster({ basePort: 25200, storageNodes: 3, replication: 3, tablets: 8, frontends: 1 });
  const b = useBrowser();

  it('makes folders, uploads with the picker, renames, moves, downloads and deletes', async () => {
    const context = await b.browser.newContext({ acceptDownloads: true, viewport: { width: 1200, height: 800 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('dialog', (d) => void d.accept()); // the delete confirmation

    await signUpInBrowser(page, env.cluster.url('web1'), 'carol', 'drive in a browser');
    await page.click('header nav a:text("Drive")');
    await page.waitForSelector('text=This folder is empty');
    await snap(page, 'drive', '01-empty');

    // Nested folders: Projects / 2025
    await page.fill('input[name=name]', 'Projects');
    await page.click('button:text("New folder")');
    await page.click('td.name a:text-is("Projects")');
    await page.waitForSelector('.crumbs strong:text("Projects")');
    await page.fill('input[name=name]', '2025');
    await page.click('button:text("New folder")');
    await page.waitForSelector('td.name a:text-is("2025")');
    await snap(page, 'drive', '02-nested-folder');

    // A clash gets a clear message.
    await page.fill('input[name=name]', '2025');
    await page.click('button:text("New folder")');
    await page.waitForSelector('.flash.error');
    expect(await page.locator('.flash.error').textContent()).toContain('There is already a file or folder named “2025”');
    await snap(page, 'drive', '03-name-clash');

    // Two files at once through the file picker; the folder is shown again when both are stored.
    const report = Buffer.from('Quarterly report\n'.repeat(1000));
    const photo = randomBytes(3 * 1024 * 1024 + 17);
    await page.setInputFiles('#upload-files', [
      { name: 'report.txt', mimeType: 'text/plain', buffer: report },
      { name: 'photo ✓.jpg', mimeType: 'image/jpeg', buffer: photo },
    ]);
    const reloaded = page.waitForEvent('load');
    await page.click('#upload-form button[type=submit]');
    await page.waitForSelector('#upload-progress li progress');
    await snap(page, 'drive', '04-uploading');
    await reloaded;
    await page.waitForSelector('td.name a:text-is("report.txt")');
    await page.waitForSelector('td.name a:text-is("photo ✓.jpg")');
    expect(await page.locator('.flash.error').count()).toBe(0);
    expect(await row(page, 'report.txt').locator('td.size').textContent()).toBe('17.0 kB');
    expect(await row(page, 'photo ✓.jpg').locator('td.type').textContent()).toBe('JPG image');
    await snap(page, 'drive', '05-uploaded');

    // Rename report.txt
    await row(page, 'report.txt').locator('a:text("Rename")').click();
    await page.waitForSelector('h1:text("Rename file")');
    await page.fill('#name', 'Q1 report.txt');
    await snap(page, 'drive', '06-rename');
    await page.click('button:text("Rename")');
    await page.waitForSelector('td.name a:text-is("Q1 report.txt")');
    expect(await page.locator('td.name a:text-is("report.txt")').count()).toBe(0);

    // Move it into 2025
    await row(page, 'Q1 report.txt').locator('a:text("Move")').click();
    await page.waitForSelector('h1:has-text("Move")');
    const target = page.locator('#dest option', { hasText: '2025' });
    await page.selectOption('#dest', (await target.getAttribute('value'))!);
    await snap(page, 'drive', '07-move');
    await page.click('button:text("Move")');
    await page.waitForSelector('td.name a:text-is("2025")');
    expect(await page.locator('td.name a:text-is("Q1 report.txt")').count()).toBe(0);
    await page.click('td.name a:text-is("2025")');
    await page.waitForSelector('td.name a:text-is("Q1 report.txt")');
    await snap(page, 'drive', '08-moved');

    // Download it and compare the bytes
    const download = page.waitForEvent('download');
    await page.click('td.name a:text-is("Q1 report.txt")');
    const d = await download;
    expect(d.suggestedFilename()).toBe('Q1 report.txt');
    expect(sha256(readFileSync((await d.path())!))).toBe(sha256(report));

    // And the photo from the folder above, through the path bar
    await page.click('.crumbs a:text("Projects")');
    const download2 = page.waitForEvent('download');
    await page.click('td.name a:text-is("photo ✓.jpg")');
    const d2 = await download2;
    expect(d2.suggestedFilename()).toBe('photo ✓.jpg');
    expect(sha256(readFileSync((await d2.path())!))).toBe(sha256(photo));

    // Delete the folder 2025 with the file in it (after the confirmation dialog)
    await row(page, '2025').locator('button:text("Delete")').click();
    await page.waitForFunction(() => !document.querySelector('td.name a[href*="/drive/f/"]'));
    expect(await page.locator('td.name a:text-is("2025")').count()).toBe(0);
    expect(await page.locator('td.name a:text-is("photo ✓.jpg")').count()).toBe(1);
    await snap(page, 'drive', '09-deleted');

    // Without script, delete shows a confirmation page first
    await page.goto(page.url().replace(/\/drive\/f\/.*/, '/drive'));
    await page.click('td.name a:text-is("Projects")');
    const id = await row(page, 'photo ✓.jpg').getAttribute('data-id');
    await page.goto(env.cluster.url('web1') + `/drive/delete/${id}`);
    await page.waitForSelector('h1:text("Delete file")');
    await snap(page, 'drive', '10-confirm-delete');
    await page.click('button:text("Delete")');
    await page.waitForSelector('text=This folder is empty');
    await snap(page, 'drive', '11-empty-again');
    expect(errors).toEqual([]);
    await context.close();
  });
});
