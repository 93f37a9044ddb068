// SMTP ingress with an external client (swaks): plain, HTML and attachment mail lands in the user's
// inbox (checked over HTTP); unknown users get 550, oversize mail 552, relaying is refused unless the
// client logged in; 20 concurrent deliveries to one inbox are all listed.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { RpcClient } from '../transport/rpc.js';
import type { WebClient } from './support/web-client.js';
import { frameOf, MAIL_BASE_PORT, MAIL_DOMAIN, messageIds, newUser, replies, swaks, useMailCluster, waitSmtp } from './mail-helpers.js';

const BASE = MAIL_BASE_PORT;
const SMTP = BASE + 701;
const DOMAIN = MAIL_DOMAIN;

describe('SMTP ingress', () => {
  // max 1 MiB; DNS pointed at a port where nothing answers (relayed mail just waits in the queue)
  const c = useMailCluster(1, 'max_message_mb = 1\ndns_servers = ["127.0.0.1:26999"]\nremote_port = 26998\nretry_first_s = 3600', { balancer: true });
  const cluster = c.cluster;
  let alice: WebClient;
  const tmp = mkdtempSync(join(tmpdir(), 'penncloud-smtp-'));

  beforeAll(async () => {
    await waitSmtp(SMTP);
    alice = await newUser(cluster.url('web1'), 'alice');
  });

  it('delivers a plain message to a local user', async () => {
    const r = await swaks(SMTP, ['--to', `alice@${DOMAIN}`, '--from', 'carol@example.org', '--h-From', '"Carol Example" <carol@example.org>', '--h-Subject', 'Plain hello', '--body', 'Hello Alice,\nthis is plain text.']);
    expect(r.code, r.out).toBe(0);
    expect(replies(r.out).some((l) => l.startsWith('250 2.0.0 OK'))).toBe(true);
    const inbox = await alice.get('/mail/inbox');
    expect(inbox.status).toBe(200);
    expect(inbox.text).toContain('Plain hello');
    expect(inbox.text).toContain('Carol Example');
    expect(inbox.text).toContain('class="unread"');
    const [id] = messageIds(inbox.text);
    const msg = await alice.get(`/mail/m/${id}`);
    expect(msg.text).toContain('this is plain text.');
    expect(msg.text).toContain('carol@example.org');
    expect(msg.headers.get('content-security-policy')).toContain("default-src 'none'");
    // opened: no longer unread
    expect((await alice.get('/mail/inbox')).text).not.toContain('class="unread"');
  });

  it('shows HTML mail only sanitized, in a sandboxed frame', async () => {
    const html = '<p>Hi <b>there</b></p><script>alert(1)</script><img src="http://tracker.example/x.png" onerror="alert(2)"><a href="javascript:alert(3)">click</a><a href="https://ok.example/">fine</a>';
    const r = await swaks(SMTP, ['--to', `alice@${DOMAIN}`, '--from', 'html@example.org', '--h-Subject', 'An HTML one', '--attach-type', 'text/html', '--attach-body', html]);
    expect(r.code, r.out).toBe(0);
    const inbox = await alice.get('/mail/inbox');
    const id = messageIds(inbox.text)[0]!;
    expect(inbox.text).toContain('An HTML one');
    const msg = await alice.get(`/mail/m/${id}`);
    expect(msg.text).toMatch(/<iframe[^>]*sandbox="allow-popups allow-popups-to-escape-sandbox"/);
    const frame = frameOf(msg.text);
    expect(frame).not.toBeNull();
    expect(frame).toContain('<b>there</b>');
    expect(frame).toContain('href="https://ok.example/"');
    expect(frame).toContain('[image blocked]');
    expect(frame).not.toMatch(/<script|onerror|javascript:|tracker\.example/i);
  });

  it('stores attachments byte for byte and serves them as downloads', async () => {
    const bytes = randomBytes(150_000);
    const file = join(tmp, 'data.bin');
    writeFileSync(file, bytes);
    const r = await swaks(SMTP, ['--to', `alice@${DOMAIN}`, '--from', 'files@example.org', '--h-Subject', 'With a file', '--attach-type', 'application/octet-stream', '--attach-name', 'weird;name.bin', '--attach', `@${file}`]);
    expect(r.code, r.out).toBe(0);
    const inbox = await alice.get('/mail/inbox');
    const id = messageIds(inbox.text)[0]!;
    const msg = await alice.get(`/mail/m/${id}`);
    const link = /href="(\/mail\/m\/[0-9a-z]+\/att\/\d+)"/.exec(msg.text);
    expect(link).not.toBeNull();
    const res = await fetch(new URL(link![1]!, cluster.url('web1')), { headers: { cookie: [...alice.cookies].map(([k, v]) => `${k}=${v}`).join('; ') } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="weird_name.bin"; filename\*=UTF-8''weird%3Bname.bin$/);
    expect(res.headers.get('content-security-policy')).toContain('sandbox');
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
  });

  it('answers 550 for an unknown local user', async () => {
    const r = await swaks(SMTP, ['--to', `nobody@${DOMAIN}`, '--from', 'x@example.org']);
    expect(r.code).not.toBe(0);
    expect(replies(r.out).some((l) => l.startsWith('550 5.1.1'))).toBe(true);
  });

  it('answers 552 for a message over the size limit, and stores nothing', async () => {
    const before = (await c.client.cols('mbox:alice:inbox')).length;
    const big = 'x'.repeat(76) + '\r\n';
    const r = await swaks(SMTP, ['--to', `alice@${DOMAIN}`, '--from', 'big@example.org', '--h-Subject', 'Too big', '--body', '-'], big.repeat(Math.ceil((1.5 * 1048576) / big.length)));
    expect(r.code).not.toBe(0);
    expect(replies(r.out).some((l) => l.startsWith('552'))).toBe(true);
    expect((await c.client.cols('mbox:alice:inbox')).length).toBe(before);
  });

  it('refuses to relay to other domains for clients that did not log in', async () => {
    const r = await swaks(SMTP, ['--to', 'someone@example.org', '--from', `alice@${DOMAIN}`]);
    expect(r.code).not.toBe(0);
    expect(replies(r.out).some((l) => /^554 5\.7\.1 .*Relay access denied/.test(l))).toBe(true);
    expect(await c.client.cols('mailq')).toEqual([]);
  });

  it('relays for a logged-in local user (AUTH PLAIN) onto the outbound queue; a wrong password gets 535', async () => {
    const bad = await swaks(SMTP, ['--to', 'someone@example.org', '--from', `alice@${DOMAIN}`, '--auth', 'PLAIN', '--auth-user', 'alice', '--auth-password', 'wrong password']);
    expect(replies(bad.out).some((l) => l.startsWith('535'))).toBe(true);
    const spoof = await swaks(SMTP, ['--to', 'someone@example.org', '--from', `bob@${DOMAIN}`, '--auth', 'LOGIN', '--auth-user', 'alice', '--auth-password', 'correct horse battery']);
    expect(replies(spoof.out).some((l) => l.startsWith('553'))).toBe(true);
    const ok = await swaks(SMTP, ['--to', 'someone@example.org', '--from', `alice@${DOMAIN}`, '--auth', 'LOGIN', '--auth-user', `alice@${DOMAIN}`, '--auth-password', 'correct horse battery', '--h-Subject', 'Outbound']);
    expect(ok.code, ok.out).toBe(0);
    const queued = await c.client.cols('mailq');
    expect(queued.length).toBe(1);
    const entry = JSON.parse(Buffer.from((await c.client.get('mailq', queued[0]!))!).toString()) as { rcpt: string; sender: string };
    expect(entry).toMatchObject({ rcpt: 'someone@example.org', sender: 'alice' });
  });

  it('lists all of 20 concurrent deliveries to one inbox', async () => {
    const dave = await newUser(cluster.url('web1'), 'dave');
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => swaks(SMTP, ['--to', `dave@${DOMAIN}`, '--from', `sender${i}@example.org`, '--h-Subject', `Concurrent ${i}`])),
    );
    for (const r of results) expect(r.code, r.out).toBe(0);
    const inbox = await dave.get('/mail/inbox');
    for (let i = 0; i < 20; i++) expect(inbox.text).toContain(`Concurrent ${i}<`);
    expect(messageIds(inbox.text)).toHaveLength(20);
    expect(inbox.text).toContain('1–20 of 20');
  });

  it('heartbeats to the balancer as an SMTP node, with the messages it stored', async () => {
    const b = c.cluster.topo.balancer!;
    const rpc = new RpcClient(`tcp://${b.host}:${b.controlPort}`, { timeoutMs: 2000, maxInflight: 4, maxMessageBytes: 1 << 20 });
    try {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const rep = await rpc.request({ t: 'services' });
        const smtp = rep.t === 'services' ? rep.nodes.find((n) => n.name === 'smtp1') : undefined;
        // 24 messages were stored above (plain, HTML, attachment, the relayed one, 20 concurrent)
        if (smtp && smtp.alive && smtp.kind === 'smtp' && smtp.url === `smtp://127.0.0.1:${SMTP}` && smtp.load.served >= 24) break;
        if (Date.now() > deadline) throw new Error(`smtp1 not reported as expected: ${JSON.stringify(smtp)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await rpc.close();
    }
  });
});
