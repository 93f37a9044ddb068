// Mail benchmark, on a cluster started just for the run (3 storage nodes, replication 3, 1 frontend,
// 1 SMTP node; ports from 26000):
//   ingress  N messages of 10 KiB to one local user over 16 concurrent SMTP sessions, timed until the
//            last 250 (each 250 is sent only once the message is durably stored on every replica);
//            then the stored count is checked. Target >= 500 msg/s.
//            Load generator: postfix's smtp-source (found on PATH, at $SMTP_SOURCE, or fetched once with
//            `apt-get download postfix` + `dpkg -x` into ~/.cache/penncloud), else nodemailer.
//   inbox    GET /mail/inbox (page 1) and a middle page of that 10,000-message mailbox, sequentially,
//            timed at the client. Target < 50 ms.
//
//   node dist/test/bench/mail-bench.js [--messages 10000] [--sessions 16] [--size 10240] [--port 26000]
//                                      [--generator auto|smtp-source|nodemailer] [--replication 3] [--keep]
//
// Output: a table on stderr and last one line `BENCH_JSON {...}` on stdout.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { cpus, homedir } from 'node:os';
import { dirname, join } from 'node:path';
import nodemailer from 'nodemailer';
import { TestCluster } from '../support/cluster.js';
import { WebClient } from '../support/web-client.js';
import { waitSmtp } from '../mail-helpers.js';
import { parseBenchOptions, runSuite } from './options.js';

interface Options {
  messages: number;
  sessions: number;
  size: number;
  basePort: number;
  generator: 'auto' | 'smtp-source' | 'nodemailer';
  replication: number;
  keep: boolean;
}

const say = (s: string): boolean => process.stderr.write(s + '\n');

function parseArgs(argv: string[]): Options {
  const o = parseBenchOptions('mail-bench', argv, {
    numbers: [
      { flag: '--messages', default: 10_000, min: 1, max: 1_000_000 },
      { flag: '--sessions', default: 16, min: 1, max: 256 },
      { flag: '--size', default: 10_240, min: 1, max: 20 << 20 },
      { flag: '--port', default: 26000, min: 1024, max: 64_000 },
      { flag: '--replication', default: 3, min: 1, max: 3 },
    ],
    flags: ['--keep'],
    strings: { '--generator': { default: 'auto', allowed: ['auto', 'smtp-source', 'nodemailer'] } },
  });
  const n = o.numbers;
  return {
    messages: n['--messages']!,
    sessions: n['--sessions']!,
    size: n['--size']!,
    basePort: n['--port']!,
    replication: n['--replication']!,
    generator: o.strings['--generator'] as Options['generator'],
    keep: o.flags.has('--keep'),
  };
}

/** smtp-source and the directory of its libraries, or null. */
function findSmtpSource(): { bin: string; libDir: string | null } | null {
  const env = process.env['SMTP_SOURCE'];
  // A dpkg -x tree keeps its libraries in usr/lib/postfix beside usr/sbin.
  const libsBeside = (bin: string): string | null => (existsSync(join(dirname(bin), '..', 'lib', 'postfix')) ? join(dirname(bin), '..', 'lib', 'postfix') : null);
  if (env && existsSync(env)) return { bin: env, libDir: libsBeside(env) };
  for (const dir of (process.env['PATH'] ?? '').split(':')) if (dir && existsSync(join(dir, 'smtp-source'))) return { bin: join(dir, 'smtp-source'), libDir: null };
  const cache = join(homedir(), '.cache', 'penncloud', 'postfix');
  const bin = join(cache, 'usr', 'sbin', 'smtp-source');
  const libDir = join(cache, 'usr', 'lib', 'postfix');
  if (!existsSync(bin)) {
    try {
      mkdirSync(cache, { recursive: true });
      say('mail-bench: fetching smtp-source (apt-get download postfix; dpkg -x) into ' + cache);
      execFileSync('apt-get', ['download', 'postfix'], { cwd: cache, stdio: 'ignore', timeout: 120_000 });
      const deb = readdirSync(cache).find((f) => f.startsWith('postfix_') && f.endsWith('.deb'));
      if (!deb) return null;
      execFileSync('dpkg', ['-x', deb, '.'], { cwd: cache, stdio: 'ignore', timeout: 60_000 });
    } catch {
      return null;
    }
  }
  return existsSync(bin) ? { bin, libDir } : null;
}

function runSmtpSource(tool: { bin: string; libDir: string | null }, port: number, to: string, n: number, o: Options): Promise<void> {
  const args = ['-d', '-s', String(o.sessions), '-m', String(n), '-l', String(o.size), '-f', 'bench@example.org', '-t', to, '-M', 'bench.example.org', `127.0.0.1:${port}`];
  const env = { ...process.env, ...(tool.libDir ? { LD_LIBRARY_PATH: tool.libDir } : {}) };
  return new Promise((resolve, reject) => {
    const child = spawn(tool.bin, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`smtp-source exited ${code}: ${err.slice(0, 500)}`))));
  });
}

async function runNodemailer(port: number, to: string, n: number, o: Options): Promise<void> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, pool: true, maxConnections: o.sessions, maxMessages: Infinity });
  const body = 'x'.repeat(76) + '\r\n';
  const text = body.repeat(Math.ceil(o.size / body.length)).slice(0, o.size);
  let next = 0;
  await Promise.all(
    Array.from({ length: o.sessions }, async () => {
      while (next < n) {
        const i = next++;
        await transport.sendMail({ from: 'bench@example.org', to, subject: `bench ${i}`, text });
      }
    }),
  );
  transport.close();
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function timePage(web: WebClient, path: string, runs: number): Promise<{ p50Ms: number; p99Ms: number; maxMs: number }> {
  for (let i = 0; i < 5; i++) await web.get(path);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const res = await web.raw('GET', path);
    times.push(performance.now() - t0);
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status}`);
  }
  times.sort((a, b) => a - b);
  const r = (x: number): number => Math.round(x * 10) / 10;
  return { p50Ms: r(percentile(times, 50)), p99Ms: r(percentile(times, 99)), maxMs: r(times[times.length - 1]!) };
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const cluster = new TestCluster({ basePort: o.basePort, storageNodes: 3, workerThreads: 1, replication: o.replication, tablets: 16, frontends: 1, smtp: 1, extraToml: '[mail]\nretry_first_s = 3600' });
  const port = o.basePort + 701;
  try {
    say(`mail-bench: starting a cluster (3 storage nodes, R=${o.replication}, 1 frontend, 1 SMTP node) in ${cluster.dir}`);
    await cluster.start();
    await waitSmtp(port);
    const web = new WebClient(cluster.url('web1'));
    if (!(await web.signUp('benchuser', 'bench password')).text.includes('benchuser')) throw new Error('could not sign up the bench user');
    await new WebClient(cluster.url('web1')).signUp('warmup', 'bench password');
    const domain = cluster.topo.cluster.mailDomain;

    const tool = o.generator === 'nodemailer' ? null : findSmtpSource();
    if (o.generator === 'smtp-source' && !tool) throw new Error('smtp-source is not available');
    const generator = tool ? 'smtp-source' : 'nodemailer';
    const send = (to: string, n: number): Promise<void> => (tool ? runSmtpSource(tool, port, to, n, o) : runNodemailer(port, to, n, o));
    say(`mail-bench: load generator ${generator}; warming up`);
    await send(`warmup@${domain}`, Math.min(500, o.messages));

    say(`mail-bench: ${o.messages} messages of ${o.size} bytes over ${o.sessions} sessions`);
    const t0 = performance.now();
    await send(`benchuser@${domain}`, o.messages);
    const seconds = (performance.now() - t0) / 1000;
    const client = cluster.client();
    const stored = (await client.cols('mbox:benchuser:inbox')).length;
    await client.close();
    const perSec = Math.round(o.messages / seconds);

    say('mail-bench: timing the inbox pages');
    const pages = Math.ceil(stored / 50);
    const first = await timePage(web, '/mail/inbox', 50);
    const middle = await timePage(web, `/mail/inbox?page=${Math.max(1, Math.floor(pages / 2))}`, 50);

    const result = {
      bench: 'mail',
      machine: { cpus: cpus().length },
      setup: { storageNodes: 3, replication: o.replication, smtpNodes: 1, sessions: o.sessions, messageBytes: o.size, messages: o.messages, generator },
      ingress: { seconds: Math.round(seconds * 100) / 100, messagesPerSec: perSec, stored },
      inbox: { messages: stored, firstPage: first, middlePage: middle },
      targets: {
        ingress: { messagesPerSec: 500, pass: perSec >= 500 && stored === o.messages },
        inbox: { p50Ms: 50, pass: first.p50Ms < 50 && middle.p50Ms < 50 },
      },
    };
    say('');
    say(`  ingress: ${o.messages} x ${o.size} B in ${result.ingress.seconds} s = ${perSec} msg/s durably stored (${stored} listed)`);
    say(`  inbox of ${stored}: page 1 p50 ${first.p50Ms} ms p99 ${first.p99Ms} ms; page ${Math.floor(pages / 2)} p50 ${middle.p50Ms} ms p99 ${middle.p99Ms} ms`);
    const verdict = (ok: boolean): string => (ok ? 'PASS' : 'MISS');
    say(`  targets: ingress >= 500 msg/s ${verdict(result.targets.ingress.pass)}; inbox page < 50 ms ${verdict(result.targets.inbox.pass)}`);
    process.stdout.write(`BENCH_JSON ${JSON.stringify(result)}\n`);
    if (stored !== o.messages) process.exitCode = 1;
  } finally {
    await cluster.stop(o.keep);
  }
}

runSuite('mail-bench', main);
