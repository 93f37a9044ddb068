// Helpers for the mail tests: run swaks (an external SMTP client), wait for an SMTP port, read the
// webmail's pages with the cookie-jar client.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { useCluster } from './support/cluster.js';
import { WebClient } from './support/web-client.js';

/** Every mail test file uses this one port range, run one file at a time (SMTP nodes on BASE+701...). */
export const MAIL_BASE_PORT = 26000;
export const MAIL_DOMAIN = 'penncloud.local';

/** A small replicated cluster (3 storage nodes, 8 tablets, R=3) with one frontend, `smtp` SMTP nodes, maybe a balancer. */
export function useMailCluster(smtp: number, mailToml: string, o: { balancer?: boolean } = {}) {
  const web = o.balancer ? '[web]\nheartbeat_ms = 200\n' : '';
  return useCluster({ basePort: MAIL_BASE_PORT, storageNodes: 3, tablets: 8, replication: 3, frontends: 1, smtp, balancer: o.balancer ?? false, extraToml: `${web}[mail]\n${mailToml}` });
}

export interface SwaksResult {
  code: number;
  out: string;
}

/** Runs swaks against 127.0.0.1:port with the given arguments (stdin optional). */
export function swaks(port: number, args: string[], stdin?: Buffer | string): Promise<SwaksResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('swaks', ['--server', '127.0.0.1', '--port', String(port), '--timeout', '30', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code: code ?? -1, out }));
    child.stdin.end(stdin ?? '');
  });
}

/** The server's replies in a swaks transcript ("<- 250 ..." and "<** 550 ..."), as "code text". */
export function replies(out: string): string[] {
  return out
    .split('\n')
    .filter((l) => /^\s*<[-*~]+\s+\d{3}/.test(l))
    .map((l) => l.replace(/^\s*<[-*~]+\s+/, '').trim());
}

/** Waits until something answers with an SMTP greeting on the port. */
export async function waitSmtp(port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.setTimeout(1000);
      s.once('data', (d) => {
        s.end('QUIT\r\n');
        resolve(d.toString().startsWith('220'));
      });
      s.once('error', () => resolve(false));
      s.once('timeout', () => {
        s.destroy();
        resolve(false);
      });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`no SMTP server on port ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A logged-in web client for a new account. */
export async function newUser(base: string, name: string, password = 'correct horse battery'): Promise<WebClient> {
  const web = new WebClient(base);
  const res = await web.signUp(name, password);
  if (res.status !== 200 || !res.text.includes(name)) throw new Error(`sign-up of ${name} failed: ${res.status}`);
  return web;
}

/** The message ids linked from a folder page, in page order. */
export function messageIds(html: string): string[] {
  const ids: string[] = [];
  for (const m of html.matchAll(/href="\/mail\/m\/([0-9a-z]{19})"/g)) if (!ids.includes(m[1]!)) ids.push(m[1]!);
  return ids;
}

/** Decodes the HTML entities hono/jsx writes (for reading attribute values such as srcdoc). */
export function unescapeHtml(s: string): string {
  return s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

/** The srcdoc of the message page's iframe, decoded; null when the message is plain text. */
export function frameOf(html: string): string | null {
  const m = /<iframe[^>]*srcdoc="([^"]*)"/.exec(html);
  return m ? unescapeHtml(m[1]!) : null;
}

export interface WebMail {
  to: string;
  cc?: string;
  subject: string;
  body: string;
  files?: Array<{ name: string; type: string; data: Buffer }>;
  /** Hidden fields a reply/forward form carries. */
  extra?: Record<string, string>;
}

/** Posts the compose form (multipart, CSRF token in the URL) as the browser would; follows the redirect. */
export async function sendViaWeb(web: WebClient, m: WebMail) {
  if (!web.csrf) await web.get('/mail/compose');
  const form = new FormData();
  form.set('to', m.to);
  form.set('cc', m.cc ?? '');
  form.set('subject', m.subject);
  form.set('body', m.body);
  for (const [k, v] of Object.entries(m.extra ?? {})) form.set(k, v);
  for (const f of m.files ?? []) form.append('files', new Blob([new Uint8Array(f.data)], { type: f.type }), f.name);
  return web.go('POST', `/mail/send?_csrf=${encodeURIComponent(web.csrf)}`, { body: form });
}

/** The hidden fields of a compose page (reply / forward). */
export function hiddenFields(html: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of html.matchAll(/<input type="hidden" name="([a-z_]+)" value="([^"]*)"/g)) out[m[1]!] = unescapeHtml(m[2]!);
  return out;
}

/** The value of a text input or textarea of a page. */
export function fieldValue(html: string, name: string): string {
  const input = new RegExp(`<input[^>]*name="${name}"[^>]*value="([^"]*)"`).exec(html);
  if (input) return unescapeHtml(input[1]!);
  const area = new RegExp(`<textarea[^>]*name="${name}"[^>]*>([\\s\\S]*?)</textarea>`).exec(html);
  return area ? unescapeHtml(area[1]!) : '';
}
