// Unit tests of the pure parts of mail: ids that sort newest first, address lists, the retry
// schedule, attachment names and Content-Disposition, HTML sanitizing, reply/forward pre-fills.
import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { localUser, parseAddressList } from '../mail/addresses.js';
import { idTime, isMessageId, newMessageId } from '../mail/ids.js';
import { forwardPrefill, replyPrefill } from '../mail/reply.js';
import { sanitizeMailHtml } from '../mail/sanitize.js';
import { nextAttemptAt } from '../mail/sender.js';
import { attachmentName } from '../mail/summary.js';
import { contentDisposition } from '../web/routes/mail.js';

const D = 'penncloud.local';

describe('message ids', () => {
  it('sort newest first, are unique, and keep their time', () => {
    const ids = [newMessageId(1_700_000_000_000), newMessageId(1_700_000_000_000), newMessageId(1_800_000_000_000), newMessageId(1_600_000_000_000)];
    expect(new Set(ids).size).toBe(4);
    expect(ids.every(isMessageId)).toBe(true);
    const sorted = [...ids].sort();
    expect(sorted[0]).toBe(ids[2]); // 1.8e12 is the newest
    expect(sorted[3]).toBe(ids[3]);
    expect(idTime(ids[2]!)).toBe(1_800_000_000_000);
    expect(isMessageId('../../etc/passwd')).toBe(false);
  });
});

describe('address lists', () => {
  it('reads names, bare local names, commas and semicolons; drops duplicates', () => {
    const r = parseAddressList('Ann <ann@example.org>; bob, BOB@penncloud.local,  carol@Example.org', D);
    expect(r).toEqual({ ok: true, addresses: ['ann@example.org', `bob@${D}`, 'carol@Example.org'] });
  });
  it('refuses what is not an address', () => {
    for (const bad of ['a@b', 'x@bad..domain', 'x@-bad.example', '@example.org', 'a"b@example.org']) {
      expect(parseAddressList(bad, D).ok, bad).toBe(false);
    }
    expect(parseAddressList(Array.from({ length: 51 }, (_, i) => `u${i}@example.org`).join(','), D).ok).toBe(false);
  });
  it('knows local users by domain and name rules', () => {
    expect(localUser(`Alice@PENNCLOUD.local`, D)).toBe('alice');
    expect(localUser('alice@example.org', D)).toBeNull();
    expect(localUser(`../x@${D}`, D)).toBeNull();
  });
});

describe('retry schedule', () => {
  it('doubles the gaps from creation, never sooner than the first delay from now', () => {
    const c = 1_000_000;
    expect(nextAttemptAt(c, 60, 1, c)).toBe(c + 60_000);
    expect(nextAttemptAt(c, 60, 2, c + 60_000)).toBe(c + 180_000);
    expect(nextAttemptAt(c, 60, 3, c + 180_000)).toBe(c + 420_000);
    // a slow attempt: not before now + first
    expect(nextAttemptAt(c, 60, 1, c + 500_000)).toBe(c + 560_000);
    // gaps are capped at a day
    expect(nextAttemptAt(0, 86_400, 3, 0)).toBe(3 * 86_400_000);
  });
});

describe('attachment names and downloads', () => {
  it('never yields a path or an empty name', () => {
    expect(attachmentName('../../etc/passwd', 0)).toBe('passwd');
    expect(attachmentName('C:\\Users\\x\\report.pdf', 0)).toBe('report.pdf');
    expect(attachmentName('..', 2)).toBe('attachment-3');
    expect(attachmentName(undefined, 0)).toBe('attachment-1');
    expect(attachmentName('a\u0000b\r\n.txt', 0)).toBe('ab.txt');
  });
  it('writes a Content-Disposition that cannot be broken out of', () => {
    expect(contentDisposition('résumé "final";.pdf')).toBe(`attachment; filename="r_sum_ _final__.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22%3B.pdf`);
  });
});

describe('HTML sanitizing', () => {
  it('keeps formatting and safe links; drops scripts, handlers, javascript: and remote images', () => {
    const out = sanitizeMailHtml(
      '<p style="color:red;background:url(http://t.example/x)">Hi <b>there</b></p><script>x()</script><img src=x onerror=y()><a href="javascript:z()">j</a><a href="https://ok.example/">ok</a><iframe src="https://e.example"></iframe><svg><script>q()</script></svg><style>*{}</style>',
    );
    expect(out).toContain('<p style="color:red">Hi <b>there</b></p>');
    expect(out).toContain('<a href="https://ok.example/" target="_blank" rel="noopener noreferrer">ok</a>');
    expect(out).toContain('[image blocked]');
    expect(out).not.toMatch(/script|onerror|javascript|iframe|url\(|<style|x\(\)/i);
  });
  it('embeds cid: images as data: URLs', () => {
    const png = Buffer.from('89504e470d0a1a0a', 'hex');
    const out = sanitizeMailHtml('<img src="cid:logo@x">', [{ cid: '<logo@x>', contentType: 'image/png', content: png }]);
    expect(out).toBe(`<img src="data:image/png;base64,${png.toString('base64')}" />`);
  });
});

describe('reply and forward', () => {
  it('quotes, prefixes and threads', async () => {
    const parsed = await simpleParser(
      Buffer.from(`From: Ann <ann@example.org>\r\nTo: me@${D}, Cee <cee@example.org>\r\nSubject: Plans\r\nMessage-ID: <m2@x>\r\nReferences: <m1@x>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nline one\r\nline two\r\n`),
    );
    const r = replyPrefill(parsed, `me@${D}`, true);
    expect(r.to).toBe('ann@example.org');
    expect(r.cc).toBe('cee@example.org');
    expect(r.subject).toBe('Re: Plans');
    expect(r.inReplyTo).toBe('<m2@x>');
    expect(r.references).toBe('<m1@x> <m2@x>');
    expect(r.body).toContain('> line one\n> line two');
    expect(replyPrefill(parsed, `me@${D}`, false).cc).toBe('');
    const f = forwardPrefill(parsed, 'abc');
    expect(f.subject).toBe('Fwd: Plans');
    expect(f.body).toContain('From: "Ann" <ann@example.org>');
    expect(f.forward).toBe('abc');
  });
});
