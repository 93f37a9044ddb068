// Delivery to other domains: a local DNS server (dnsmasq) with MX records for test domains and a
// receiving SMTP server (smtp-server in this process) that accepts, answers 451 first, or refuses with
// 550 depending on the recipient. Mail composed in the webmail arrives with complete headers; a 451
// gets the message on a retry; a 550 or giving up puts a failure notice in the sender's inbox;
// exchangers are tried in preference order (then the A record); two SMTP nodes send each message once;
// the queue survives a restart of the SMTP node.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebClient } from './support/web-client.js';
import { MAIL_BASE_PORT, MAIL_DOMAIN, messageIds, newUser, sendViaWeb, useMailCluster, waitSmtp } from './mail-helpers.js';
import { until } from './support/wait.js';

const BASE = MAIL_BASE_PORT;
const DNS_PORT = 26900;
const MX_PORT = 26910;
const DOMAIN = MAIL_DOMAIN;

interface Received {
  rcpts: string[];
  from: string;
  raw: Buffer;
  parsed: ParsedMail;
}

/** The other domain's mail server: what it does depends on the recipient's local part. */
class Receiver {
  readonly got: Received[] = [];
  readonly rcptAttempts = new Map<string, number>();
  readonly server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    onRcptTo: (addr, _s, cb) => {
      const who = addr.address.toLowerCase();
      const n = (this.rcptAttempts.get(who) ?? 0) + 1;
      this.rcptAttempts.set(who, n);
      const local = who.split('@')[0]!;
      const err = (code: number, msg: string) => cb(Object.assign(new Error(msg), { responseCode: code }));
      if (local === 'reject') return err(550, '5.1.1 No such mailbox here');
      if (local === 'flaky' && n === 1) return err(451, '4.3.2 Try again later');
      if (local === 'never') return err(451, '4.3.2 Still busy');
      cb();
    },
    onData: (stream, session, cb) => {
      const parts: Buffer[] = [];
      stream.on('data', (d: Buffer) => parts.push(d));
      stream.on('end', () => {
        const raw = Buffer.concat(parts);
        simpleParser(raw).then((parsed) => {
          this.got.push({ rcpts: session.envelope.rcptTo.map((r) => r.address), from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', raw, parsed });
          cb();
        }, cb);
      });
    },
  });

  byRcpt(rcpt: string): Received[] {
    return this.got.filter((g) => g.rcpts.includes(rcpt));
  }
}

describe('delivery to other domains', () => {
  const c = useMailCluster(2, `dns_servers = ["127.0.0.1:${DNS_PORT}"]\nremote_port = ${MX_PORT}\nretry_first_s = 1\nretry_for_s = 3`);
  const receiver = new Receiver();
  let dns: ChildProcess;
  let ann: WebClient;

  beforeAll(async () => {
    dns = spawn('dnsmasq', [
      '--no-daemon', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', '--pid-file=', `--port=${DNS_PORT}`, '--listen-address=127.0.0.1', '--bind-interfaces',
      '--mx-host=example.test,mx1.example.test,10', '--host-record=mx1.example.test,127.0.0.1',
      // pref.test: the preferred exchanger (127.0.0.2) refuses connections; the second one works
      '--mx-host=pref.test,mxa.pref.test,5', '--mx-host=pref.test,mxb.pref.test,20', '--host-record=mxa.pref.test,127.0.0.2', '--host-record=mxb.pref.test,127.0.0.1',
      // nomx.test: no MX, only an address record
      '--host-record=nomx.test,127.0.0.1', '--local=/nomx.test/', '--local=/nx.test/',
    ], { stdio: 'ignore' });
    await new Promise<void>((resolve, reject) => {
      receiver.server.listen(MX_PORT, '127.0.0.1', () => resolve());
      receiver.server.once('error', reject);
    });
    await waitSmtp(BASE + 701);
    await waitSmtp(BASE + 702);
    ann = await newUser(c.cluster.url('web1'), 'ann');
  });

  afterAll(async () => {
    dns?.kill('SIGTERM');
    await new Promise<void>((r) => receiver.server.close(() => r()));
  });

  it('delivers mail composed in the webmail with complete headers and its attachment', async () => {
    const file = randomBytes(20_000);
    const res = await sendViaWeb(ann, { to: 'ok@example.test', subject: 'Hello from penncloud', body: 'Dear friend,\nhere it is.', files: [{ name: 'notes.bin', type: 'application/octet-stream', data: file }] });
    expect(res.status).toBe(200);
    expect(res.text).toContain('Your message was sent.');
    const [m] = await until('the message at the receiver', () => receiver.byRcpt('ok@example.test').length > 0 && receiver.byRcpt('ok@example.test'));
    expect(m!.from).toBe(`ann@${DOMAIN}`);
    const p = m!.parsed;
    expect(p.subject).toBe('Hello from penncloud');
    expect(p.from?.value[0]?.address).toBe(`ann@${DOMAIN}`);
    expect(p.to && !Array.isArray(p.to) ? p.to.value[0]?.address : '').toBe('ok@example.test');
    expect(p.messageId).toMatch(new RegExp(`^<[^@]+@${DOMAIN.replace('.', '\\.')}>$`));
    expect(p.date).toBeInstanceOf(Date);
    expect(p.headers.get('mime-version')).toBe('1.0');
    expect(p.text?.trim()).toBe('Dear friend,\nhere it is.');
    expect(p.attachments).toHaveLength(1);
    expect(p.attachments[0]!.filename).toBe('notes.bin');
    expect(p.attachments[0]!.content.equals(file)).toBe(true);
    // and a copy in Sent
    const sent = await ann.get('/mail/sent');
    expect(sent.text).toContain('Hello from penncloud');
    expect(sent.text).toContain('ok@example.test');
    await until('the queue to empty', async () => (await c.client.cols('mailq')).length === 0);
  });

  it('retries after a 451 and delivers on the next attempt', async () => {
    await sendViaWeb(ann, { to: 'flaky@example.test', subject: 'Try, try again', body: 'x' });
    const got = await until('the retried message', () => receiver.byRcpt('flaky@example.test').length > 0 && receiver.byRcpt('flaky@example.test'));
    expect(got).toHaveLength(1);
    expect(receiver.rcptAttempts.get('flaky@example.test')).toBe(2);
  });

  it('puts a failure notice in the sender\'s inbox after a 550', async () => {
    await sendViaWeb(ann, { to: 'reject@example.test', subject: 'Doomed', body: 'x' });
    const inbox = await until('the failure notice', async () => {
      const page = await ann.get('/mail/inbox');
      return page.text.includes('Undelivered mail: Doomed') && page;
    });
    const id = messageIds(inbox.text)[0]!;
    const notice = await ann.get(`/mail/m/${id}`);
    expect(notice.text).toContain('reject@example.test');
    expect(notice.text).toContain('550');
    expect(notice.text).toContain('original-headers.txt');
    expect(receiver.byRcpt('reject@example.test')).toHaveLength(0);
  });

  it('gives up on a receiver that keeps answering 451 after mail.retry_for_s, with a notice', async () => {
    await sendViaWeb(ann, { to: 'never@example.test', subject: 'Patience', body: 'x' });
    const inbox = await until('the give-up notice', async () => {
      const page = await ann.get('/mail/inbox');
      return page.text.includes('Undelivered mail: Patience') && page;
    }, 40_000);
    const notice = await ann.get(`/mail/m/${messageIds(inbox.text)[0]!}`);
    expect(notice.text).toContain('gave up after 3 s of retries');
    expect(notice.text).toContain('451');
    // retried (at +1 s, +3 s) before giving up: the next try, at +7 s, would be past retry_for_s = 3
    expect(receiver.rcptAttempts.get('never@example.test')).toBeGreaterThanOrEqual(2);
    expect(receiver.byRcpt('never@example.test')).toHaveLength(0);
  });

  it('tries exchangers in preference order, and the A record when a domain has no MX', async () => {
    await sendViaWeb(ann, { to: 'someone@pref.test', cc: 'someone@nomx.test', subject: 'Routing', body: 'x' });
    await until('both copies', () => receiver.byRcpt('someone@pref.test').length > 0 && receiver.byRcpt('someone@nomx.test').length > 0);
  });

  it('sends each queued message once with two SMTP nodes polling the queue', async () => {
    const subjects = Array.from({ length: 12 }, (_, i) => `Once ${i}`);
    for (const s of subjects) await sendViaWeb(ann, { to: 'once@example.test', subject: s, body: s });
    await until('all twelve', () => receiver.byRcpt('once@example.test').length >= 12);
    await until('the queue to empty', async () => (await c.client.cols('mailq')).length === 0);
    const seen = receiver.byRcpt('once@example.test').map((g) => g.parsed.subject);
    expect(seen.sort()).toEqual([...subjects].sort());
  });

  it('keeps queued mail across a restart of the SMTP nodes', async () => {
    await c.cluster.kill('smtp1');
    await c.cluster.kill('smtp2');
    await sendViaWeb(ann, { to: 'later@example.test', subject: 'Survives', body: 'x' });
    const queued = await c.client.cols('mailq');
    expect(queued).toHaveLength(1);
    c.cluster.startNode('smtp1');
    c.cluster.startNode('smtp2');
    await until('the message after the restart', () => receiver.byRcpt('later@example.test').length > 0);
    await until('the queue to empty', async () => (await c.client.cols('mailq')).length === 0);
    expect(receiver.byRcpt('later@example.test')).toHaveLength(1);
  });
});
