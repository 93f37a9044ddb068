// The webmail over HTTP: two users write to each other (compose, reply with In-Reply-To/References,
// forward keeping attachments), Sent folder, delete, paging newest first, bad input refused with the
// draft kept, CSRF and login required, other users' messages out of reach.
import { randomBytes } from 'node:crypto';
import { simpleParser } from 'mailparser';
import { beforeAll, describe, expect, it } from 'vitest';
import { deleteMessage, findMessage, INLINE_MAX_BYTES, markRead, readRaw, storeMessage } from '../mail/mailbox.js';
import type { WebClient } from './support/web-client.js';
import { fieldValue, hiddenFields, MAIL_DOMAIN, messageIds, newUser, sendViaWeb, useMailCluster } from './mail-helpers.js';

const DOMAIN = MAIL_DOMAIN;

describe('webmail', () => {
  // 1 MiB messages: attachments up to 70 % of that (716 KiB) in the web form
  const c = useMailCluster(0, 'retry_first_s = 3600\nmax_message_mb = 1');
  let amy: WebClient;
  let ben: WebClient;

  beforeAll(async () => {
    amy = await newUser(c.cluster.url('web1'), 'amy');
    ben = await newUser(c.cluster.url('web1'), 'ben');
  });

  /** The raw message behind a message page (its "Show original" link). */
  async function rawOf(web: WebClient, id: string) {
    const res = await web.get(`/mail/m/${id}/raw`);
    expect(res.status).toBe(200);
    return simpleParser(Buffer.from(res.text));
  }

  it('two users write to each other: compose, reply, forward with attachments', async () => {
    const pdf = randomBytes(30_000);
    const sent = await sendViaWeb(amy, { to: 'ben', subject: 'Lunch?', body: 'Shall we have lunch\non Friday?', files: [{ name: 'menu.pdf', type: 'application/pdf', data: pdf }] });
    expect(sent.text).toContain('Your message was sent.');
    // Ben sees it, unread, with sender, subject and a preview
    const inbox = await ben.get('/mail/inbox');
    expect(inbox.text).toMatch(/class="unread"[\s\S]*amy[\s\S]*Lunch\?[\s\S]*Shall we have lunch on Friday\?/);
    const id = messageIds(inbox.text)[0]!;
    const msg = await ben.get(`/mail/m/${id}`);
    expect(msg.text).toContain('Shall we have lunch\non Friday?');
    expect(msg.text).toContain('menu.pdf');
    const original = await rawOf(ben, id);
    // Amy's Sent folder has it
    expect((await amy.get('/mail/sent')).text).toContain('To: ben@penncloud.local');

    // Ben replies: recipients, subject, quote and thread headers are filled in
    const form = await ben.get(`/mail/compose?reply=${id}`);
    expect(fieldValue(form.text, 'to')).toBe(`amy@${DOMAIN}`);
    expect(fieldValue(form.text, 'subject')).toBe('Re: Lunch?');
    expect(fieldValue(form.text, 'body')).toContain('> Shall we have lunch\n> on Friday?');
    const hidden = hiddenFields(form.text);
    expect(hidden['in_reply_to']).toBe(original.messageId);
    await sendViaWeb(ben, { to: fieldValue(form.text, 'to'), subject: fieldValue(form.text, 'subject'), body: `Yes!\n${fieldValue(form.text, 'body')}`, extra: hidden });
    const amyInbox = await amy.get('/mail/inbox');
    expect(amyInbox.text).toContain('Re: Lunch?');
    const replyId = messageIds(amyInbox.text)[0]!;
    const reply = await rawOf(amy, replyId);
    expect(reply.inReplyTo).toBe(original.messageId);
    expect(reply.references).toBe(original.messageId);
    expect(reply.text).toContain('> Shall we have lunch');

    // Amy forwards Ben's reply... and Ben forwards Amy's original (with its attachment) back to Amy
    const fwdForm = await ben.get(`/mail/compose?forward=${id}`);
    expect(fieldValue(fwdForm.text, 'subject')).toBe('Fwd: Lunch?');
    expect(fwdForm.text).toContain('menu.pdf');
    await sendViaWeb(ben, { to: 'amy', subject: 'Fwd: Lunch?', body: fieldValue(fwdForm.text, 'body'), extra: hiddenFields(fwdForm.text) });
    const fwdId = messageIds((await amy.get('/mail/inbox')).text)[0]!;
    const fwd = await rawOf(amy, fwdId);
    expect(fwd.subject).toBe('Fwd: Lunch?');
    expect(fwd.text).toContain('---------- Forwarded message ----------');
    expect(fwd.attachments).toHaveLength(1);
    expect(fwd.attachments[0]!.filename).toBe('menu.pdf');
    expect(fwd.attachments[0]!.content.equals(pdf)).toBe(true);
  });

  it('deletes a message (and only the owner can reach it)', async () => {
    await sendViaWeb(amy, { to: `ben@${DOMAIN}`, subject: 'Delete me', body: 'bye' });
    const id = messageIds((await ben.get('/mail/inbox')).text)[0]!;
    // Amy cannot open Ben's message by its id
    expect((await amy.get(`/mail/m/${id}`)).status).toBe(404);
    await ben.get(`/mail/m/${id}`);
    const res = await ben.postForm(`/mail/m/${id}/delete`, {});
    expect(res.text).toContain('The message was deleted.');
    expect(res.text).not.toContain('Delete me');
    expect((await ben.get(`/mail/m/${id}`)).status).toBe(404);
    expect(await c.client.cols(`msg:ben:${id}`)).toEqual([]);
  });

  it('refuses bad input with a clear error and keeps the draft', async () => {
    const unknown = await sendViaWeb(amy, { to: 'nosuchuser', subject: 'Keep me', body: 'my long draft' });
    expect(unknown.status).toBe(422);
    expect(unknown.text).toContain(`There is no user nosuchuser@${DOMAIN} here.`);
    expect(fieldValue(unknown.text, 'subject')).toBe('Keep me');
    expect(fieldValue(unknown.text, 'body')).toBe('my long draft');
    const bad = await sendViaWeb(amy, { to: 'ben, someone@bad..domain', subject: 's', body: 'b' });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('is not an e-mail address.');
    const none = await sendViaWeb(amy, { to: '', subject: 's', body: 'b' });
    expect(none.text).toContain('Add at least one recipient.');
    // a multipart form without the CSRF token in the URL
    const form = new FormData();
    form.set('to', 'ben');
    const forged = await amy.raw('POST', '/mail/send', { body: form });
    expect(forged.status).toBe(403);
  });

  it('refuses attachments over the limit with a clear error, sending nothing', async () => {
    const before = (await c.client.cols('mbox:ben:inbox')).length;
    const res = await sendViaWeb(amy, { to: 'ben', subject: 'Huge', body: 'b', files: [{ name: 'big.bin', type: 'application/octet-stream', data: randomBytes(800 * 1024) }] });
    expect(res.status).toBe(413);
    expect(res.text).toContain('Attachments may total at most 716 KiB.');
    expect((await c.client.cols('mbox:ben:inbox')).length).toBe(before);
    const many = await sendViaWeb(amy, { to: 'ben', subject: 'Many', body: 'b', files: Array.from({ length: 21 }, (_, i) => ({ name: `f${i}.txt`, type: 'text/plain', data: Buffer.from('x') })) });
    expect(many.status).toBe(413);
    expect(many.text).toContain('At most 20 attachments per message.');
  });

  it('needs a login', async () => {
    const res = await fetch(`${c.cluster.url('web1')}/mail/inbox`, { redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/?next=%2Fmail%2Finbox');
  });

  it('keeps a small message inline in its index cell and a larger one in raw cells; both read back, marked read, deleted', async () => {
    const head = `From: x@example.org\r\nTo: dan@${DOMAIN}\r\nSubject: size\r\n\r\n`;
    const body = ('x'.repeat(76) + '\r\n').repeat(Math.ceil(INLINE_MAX_BYTES / 78));
    const small = Buffer.from((head + body).slice(0, INLINE_MAX_BYTES));
    const large = Buffer.concat([small, Buffer.from('one byte over')]);
    expect(small.length).toBe(INLINE_MAX_BYTES);
    for (const [raw, inline] of [[small, true], [large, false]] as const) {
      const s = await storeMessage(c.client, 'dan', 'inbox', raw);
      expect(s.inline ?? false).toBe(inline);
      expect((await c.client.cols(`msg:dan:${s.id}`)).length).toBe(inline ? 0 : 1);
      expect((await readRaw(c.client, 'dan', s))!.equals(raw)).toBe(true);
      await markRead(c.client, 'dan', s);
      const now = (await findMessage(c.client, 'dan', s.id))!;
      expect(now.read).toBe(true);
      expect((await readRaw(c.client, 'dan', now))!.equals(raw)).toBe(true);
      expect(await deleteMessage(c.client, 'dan', now)).toBe(true);
      expect(await findMessage(c.client, 'dan', s.id)).toBeNull();
      expect(await c.client.cols(`msg:dan:${s.id}`)).toEqual([]);
    }
  });

  it('pages a large inbox newest first', async () => {
    const cara = await newUser(c.cluster.url('web1'), 'cara');
    // 120 messages stored straight into the model (faster than 120 SMTP sessions)
    for (let i = 0; i < 120; i++) {
      const raw = Buffer.from(`From: bulk@example.org\r\nTo: cara@${DOMAIN}\r\nSubject: Bulk ${String(i).padStart(3, '0')}\r\n\r\nbody ${i}\r\n`);
      await storeMessage(c.client, 'cara', 'inbox', raw, { now: 1_700_000_000_000 + i * 1000 });
    }
    const p1 = await cara.get('/mail/inbox');
    expect(p1.text).toContain('1–50 of 120');
    expect(messageIds(p1.text)).toHaveLength(50);
    expect(p1.text.indexOf('Bulk 119')).toBeLessThan(p1.text.indexOf('Bulk 118'));
    expect(p1.text).not.toContain('Bulk 069');
    const p3 = await cara.get('/mail/inbox?page=3');
    expect(p3.text).toContain('101–120 of 120');
    expect(p3.text).toContain('Bulk 000');
    expect(p3.text).toContain('← Newer');
    expect(p3.text).not.toContain('Older →');
    // nonsense page numbers are clamped, not errors
    expect((await cara.get('/mail/inbox?page=-5')).text).toContain('1–50 of 120');
    expect((await cara.get('/mail/inbox?page=zzz')).status).toBe(200);
    expect((await cara.get('/mail/nosuchfolder')).status).toBe(404);
  });
});
