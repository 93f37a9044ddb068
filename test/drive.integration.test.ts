// The drive over real HTTP against a real cluster (master, 3 storage nodes with replication 3, two
// frontends): uploads and downloads byte for byte, ranges, names, folders, moves, deletes down to the
// store's cells, concurrent changes from both frontends, broken uploads, and a frontend's memory.
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FRONTEND_OLD_SPACE_FLOOR_MB, STORAGE_MALLOC_ENV } from '../actors/launcher.js';
import { chunkRow, CHUNK_COL, dirRow, nodeRow, META, pendingRow } from '../web/drive/rows.js';
import { bufferFile, DriveHttp, fileSource, sha256, writeRandomFile } from './drive-helpers.js';
import { useCluster } from './support/cluster.js';
import { WebClient } from './support/web-client.js';
import { until } from './support/wait.js';

const MB = 1_000_000;
const QUOTA_MB = 600;

async function user(base: string, name: string): Promise<DriveHttp> {
  const web = new WebClient(base);
  const res = await web.signUp(name, 'correct horse battery');
  expect(res.status).toBe(200);
  return new DriveHttp(web);
}

/** The same user's session on another frontend (cookies are per host, as in a browser). */
function sameUserOn(d: DriveHttp, base: string): DriveHttp {
  const web = new WebClient(base);
  for (const [k, v] of d.web.cookies) web.cookies.set(k, v);
  web.csrf = d.web.csrf;
  return new DriveHttp(web);
}

const unescapeHtml = (s: string): string => s.replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

function vmRssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

describe('drive over HTTP on two frontends, replication 3', () => {
  const env = useCluster({ basePort: 25000, storageNodes: 3, tablets: 8, replication: 3, frontends: 2, extraToml: `[web]\ndrive_quota_mb = ${QUOTA_MB}` });
  const { cluster } = env;
  let alice: DriveHttp;
  let alice2: DriveHttp; // alice through the other frontend
  let root: string;

  it('signs up and shows an empty drive with its usage', async () => {
    alice = await user(cluster.url('web1'), 'alice');
    alice2 = sameUserOn(alice, cluster.url('web2'));
    const page = await alice.web.get('/drive');
    expect(page.status).toBe(200);
    expect(page.text).toContain('This folder is empty');
    expect(page.text).toContain(`0 B of ${Math.round((QUOTA_MB * 1.048576))} MB used`);
    root = await alice.root();
    expect((await alice2.root())).toBe(root);
  });

  const small = new Map<string, Buffer>();

  it('uploads 0 B, 1 B, 10 MB and a text file in one request and downloads them byte-identical through the other frontend', async () => {
    small.set('empty.bin', Buffer.alloc(0));
    small.set('one.bin', randomBytes(1));
    small.set('ten.bin', randomBytes(10 * MB));
    small.set('notes.txt', Buffer.from('Hello, drive!\nZweite Zeile: äöü — ✓\n'.repeat(100)));
    const res = await alice.upload(root, [...small].map(([n, b]) => bufferFile(n, b)));
    expect(res.status, res.body.toString()).toBe(200);
    const reply = JSON.parse(res.body.toString()) as { files: Array<{ name: string; size: number }> };
    expect(reply.files.map((f) => [f.name, f.size])).toEqual([...small].map(([n, b]) => [n, b.length]));
    const listing = await alice2.list(root);
    for (const [name, data] of small) {
      const e = listing.entries.find((x) => x.name === name)!;
      expect(e.size).toBe(data.length);
      const back = await alice2.get(`/drive/file/${e.id}`);
      expect(back.status).toBe(200);
      expect(Number(back.headers['content-length'])).toBe(data.length);
      expect(sha256(back.body)).toBe(sha256(data));
    }
    const text = await alice2.get(`/drive/file/${listing.entries.find((x) => x.name === 'notes.txt')!.id}`);
    expect(text.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(text.headers['content-disposition']).toBe(`attachment; filename="notes.txt"; filename*=UTF-8''notes.txt`);
    expect(text.headers['content-security-policy']).toContain('sandbox');
    expect(listing.usage).toBe([...small.values()].reduce((n, b) => n + b.length, 0));
  });

  it('answers Range requests with 206 and the right bytes, and 416 past the end', async () => {
    const data = small.get('ten.bin')!;
    const id = (await alice.find(root, 'ten.bin')).id;
    const cases: Array<[string, number, number]> = [
      ['bytes=0-99', 0, 99],
      ['bytes=1048570-1048590', 1048570, 1048590], // across a chunk boundary
      ['bytes=3000000-', 3000000, data.length - 1],
      ['bytes=-10', data.length - 10, data.length - 1],
      ['bytes=9999990-20000000', 9999990, data.length - 1],
    ];
    for (const [range, start, end] of cases) {
      const r = await alice.get(`/drive/file/${id}`, { range });
      expect(r.status, range).toBe(206);
      expect(r.headers['content-range']).toBe(`bytes ${start}-${end}/${data.length}`);
      expect(Number(r.headers['content-length'])).toBe(end - start + 1);
      expect(r.body.equals(data.subarray(start, end + 1)), range).toBe(true);
    }
    const past = await alice.get(`/drive/file/${id}`, { range: `bytes=${data.length}-` });
    expect(past.status).toBe(416);
    expect(past.headers['content-range']).toBe(`bytes */${data.length}`);
    const other = await alice.get(`/drive/file/${id}`, { range: 'bytes=0-1', 'if-range': '"not-this-file"' });
    expect(other.status).toBe(200); // If-Range does not match: the whole file
  });

  it('keeps Unicode and hostile names safe: stored as given (paths cut, control characters replaced), served with RFC 6266 headers', async () => {
    const names: Array<[string, string]> = [
      ['naïve 日本語 ✓ файл.txt', 'naïve 日本語 ✓ файл.txt'],
      ['../x', 'x'],
      ['C:\\Users\\eve\\evil.txt', 'evil.txt'],
      [`he said "hi"; 'ok' 100%.txt`, `he said "hi"; 'ok' 100%.txt`],
      ['tab\there.txt', 'tab_here.txt'],
      ['<img src=x onerror=alert(1)>.html', '<img src=x onerror=alert(1)>.html'],
    ];
    for (const [sent, stored] of names) {
      const data = Buffer.from(`contents of ${stored}`);
      const res = await alice.upload(root, [bufferFile(sent, data)]);
      expect(res.status, `${sent}: ${res.body}`).toBe(200);
      const e = await alice.find(root, stored);
      const back = await alice.get(`/drive/file/${e.id}`);
      expect(back.body.equals(data)).toBe(true);
      const cd = String(back.headers['content-disposition']);
      expect(cd).toMatch(/^attachment; filename="[\x20-\x7e]*"; filename\*=UTF-8''[A-Za-z0-9%._~-]*$/);
      expect(decodeURIComponent(cd.split("UTF-8''")[1]!)).toBe(stored);
      expect(cd.split('"')[1]).not.toMatch(/["\\]/);
    }
    // A name with a line break in it never becomes a file.
    const nl = await alice.upload(root, [bufferFile('line\nbreak.txt', Buffer.from('x'))]);
    expect(nl.status).toBe(400);
    expect((await alice.list(root)).entries.some((e) => e.name.includes('\n') || e.name.includes('break'))).toBe(false);
    // The listing escapes HTML.
    const page = await alice.web.get(`/drive/f/${root}`);
    expect(page.text).not.toContain('<img src=x');
    expect(page.text).toContain('&lt;img src=x onerror=alert(1)&gt;.html');
  });

  it('refuses bad names and clashes with a clear message', async () => {
    const f = await alice.find(root, 'one.bin');
    const bad: Array<[string, RegExp]> = [
      ['../x', /cannot contain '\/'/],
      ['a/b', /cannot contain '\/'/],
      ['.', /cannot be used/],
      ['..', /cannot be used/],
      ['   ', /cannot be empty/],
      ['line\nbreak', /control characters/],
      ['é'.repeat(128), /at most 255 bytes/],
    ];
    for (const [name, why] of bad) {
      const r = await alice.rename(f.id, name);
      expect(r.status, JSON.stringify(name)).toBe(400);
      expect(unescapeHtml(r.text)).toMatch(why);
      const m = await alice.mkdir(root, name);
      expect(m.status).toBe(400);
    }
    const clash = await alice.rename(f.id, 'ten.bin');
    expect(clash.status).toBe(409);
    expect(unescapeHtml(clash.text)).toContain('There is already a file or folder named “ten.bin”');
    expect((await alice.mkdir(root, 'notes.txt')).status).toBe(409);
    const dup = await alice.upload(root, [bufferFile('notes.txt', Buffer.from('other'))]);
    expect(dup.status).toBe(409);
    expect(JSON.parse(dup.body.toString()).files[0].error).toContain('already');
    // 255 bytes exactly is fine, and so is any Unicode.
    expect((await alice.mkdir(root, 'é'.repeat(127) + 'x')).status).toBe(303);
  });

  it('makes nested folders, renames, moves files and folders, and refuses a folder into itself or below', async () => {
    expect((await alice.mkdir(root, 'A')).status).toBe(303);
    const a = (await alice.find(root, 'A')).id;
    expect((await alice.mkdir(a, 'B')).status).toBe(303);
    const b = (await alice.find(a, 'B')).id;
    expect((await alice.mkdir(b, 'C')).status).toBe(303);
    const c = (await alice.find(b, 'C')).id;
    // rename a file
    const one = await alice.find(root, 'one.bin');
    expect((await alice.rename(one.id, 'uno.bin')).status).toBe(303);
    const names = (await alice.list(root)).entries.map((e) => e.name);
    expect(names).toContain('uno.bin');
    expect(names).not.toContain('one.bin');
    // move the file into A/B/C, through the other frontend
    expect((await alice2.move(one.id, c)).status).toBe(303);
    expect((await alice.list(c)).entries.map((e) => e.name)).toEqual(['uno.bin']);
    expect((await alice.list(root)).entries.map((e) => e.name)).not.toContain('uno.bin');
    expect(sha256((await alice.get(`/drive/file/${one.id}`)).body)).toBe(sha256(small.get('one.bin')!));
    // a folder cannot go into itself or below itself
    for (const dest of [a, b, c]) {
      const r = await alice.move(a, dest);
      expect(r.status).toBe(400);
      expect(unescapeHtml(r.text)).toContain('cannot be moved into itself');
    }
    // move folder B (with C and the file) to the root, then rename it: one small update each
    expect((await alice.move(b, root)).status).toBe(303);
    expect((await alice.rename(b, 'B renamed')).status).toBe(303);
    const path = (await alice.list(c)).path.map((p) => p.name);
    expect(path).toEqual(['', 'B renamed', 'C']);
    expect((await alice.list(a)).entries).toEqual([]);
    // the page shows the path bar
    const page = await alice.web.get(`/drive/f/${c}`);
    expect(page.text).toContain('B renamed');
    expect(page.text).toContain('uno.bin');
  });

  it('of two folders moved into each other at once from two frontends, at most one moves: never a cycle', async () => {
    for (let round = 0; round < 4; round++) {
      expect((await alice.mkdir(root, `X${round}`)).status).toBe(303);
      expect((await alice.mkdir(root, `Y${round}`)).status).toBe(303);
      const x = (await alice.find(root, `X${round}`)).id;
      const y = (await alice.find(root, `Y${round}`)).id;
      const [r1, r2] = await Promise.all([alice.move(x, y), alice2.move(y, x)]);
      const moved = [r1, r2].filter((r) => r.status === 303).length;
      expect(moved, `round ${round}: ${r1.status} ${r2.status}`).toBeLessThanOrEqual(1);
      for (const r of [r1, r2]) expect([303, 400, 409]).toContain(r.status);
      // Both folders are still reachable from the root, and each lies below the root (no cycle).
      const top = (await alice.list(root)).entries.map((e) => e.name);
      const below = (id: string) => alice.list(id).then((l) => l.path.map((p) => p.name));
      const px = await below(x);
      const py = await below(y);
      expect(px[0]).toBe('');
      expect(py[0]).toBe('');
      expect(top.includes(`X${round}`) || top.includes(`Y${round}`)).toBe(true);
    }
  });

  it('keeps drives apart: another user gets 404 for my folders and files', async () => {
    const bob = await user(cluster.url('web2'), 'bob');
    const mine = await alice.find(root, 'notes.txt');
    expect((await bob.get(`/drive/file/${mine.id}`)).status).toBe(404);
    expect((await bob.get(`/drive/f/${root}`)).status).toBe(404);
    expect((await bob.rename(mine.id, 'stolen')).status).toBe(404);
    expect((await bob.remove(mine.id)).status).toBe(404);
    expect((await bob.upload(root, [bufferFile('x', Buffer.from('x'))])).status).toBe(404);
    // and a request without the CSRF token is refused
    expect((await alice.upload(root, [bufferFile('nocsrf', Buffer.from('x'))], { csrf: 'forged' })).status).toBe(403);
  });

  it('deletes a folder tree with everything in it: gone from the listing, and its chunks and cells gone from the store', async () => {
    expect((await alice.mkdir(root, 'T')).status).toBe(303);
    const t = (await alice.find(root, 'T')).id;
    expect((await alice.mkdir(t, 'sub')).status).toBe(303);
    const sub = (await alice.find(t, 'sub')).id;
    const blob = randomBytes(3 * (1 << 20) + 5); // 4 chunks
    expect((await alice.upload(t, [bufferFile('top.bin', blob)])).status).toBe(200);
    expect((await alice.upload(sub, [bufferFile('deep.bin', blob), bufferFile('deep2.txt', Buffer.from('x'))])).status).toBe(200);
    const files = [...(await alice.list(t)).entries, ...(await alice.list(sub)).entries].filter((e) => e.kind === 'file');
    expect(files.length).toBe(3);
    for (const f of files) expect(await env.client.get(chunkRow(f.id, 0), CHUNK_COL)).not.toBeNull();
    const usageBefore = (await alice.list(root)).usage;
    const confirm = await alice.web.get(`/drive/delete/${t}`);
    expect(confirm.text).toContain('1 folder, 3 files');
    expect((await alice2.remove(t)).status).toBe(303);
    expect((await alice.list(root)).entries.map((e) => e.name)).not.toContain('T');
    expect((await alice.get(`/drive/f/${t}`)).status).toBe(404);
    for (const f of files) {
      for (let i = 0; i < 4; i++) expect(await env.client.get(chunkRow(f.id, i), CHUNK_COL)).toBeNull();
      expect(await env.client.get(nodeRow(f.id), META)).toBeNull();
    }
    for (const id of [t, sub]) {
      expect(await env.client.get(nodeRow(id), META)).toBeNull();
      expect(await env.client.cols(dirRow(id))).toEqual([]);
    }
    expect((await alice.list(root)).usage).toBe(usageBefore - 2 * blob.length - 1);
    expect(await env.client.cols(pendingRow('web2'))).toEqual([]);
  });

  it('never loses an entry when both frontends create in one folder at once', async () => {
    expect((await alice.mkdir(root, 'busy')).status).toBe(303);
    const busy = (await alice.find(root, 'busy')).id;
    const jobs: Array<Promise<number>> = [];
    for (let i = 0; i < 15; i++) {
      jobs.push(alice.mkdir(busy, `one-${i}`).then((r) => r.status));
      jobs.push(alice2.mkdir(busy, `two-${i}`).then((r) => r.status));
      jobs.push(alice.upload(busy, [bufferFile(`f1-${i}.txt`, Buffer.from(`1-${i}`))]).then((r) => r.status));
      jobs.push(alice2.upload(busy, [bufferFile(`f2-${i}.txt`, Buffer.from(`2-${i}`))]).then((r) => r.status));
    }
    const statuses = await Promise.all(jobs);
    expect(statuses.filter((s) => s !== 303 && s !== 200)).toEqual([]);
    const listing = await alice.list(busy);
    expect(listing.entries.length).toBe(60);
    // The same name from both at once: exactly one wins, the other gets a clear 409.
    const race = await Promise.all([alice.mkdir(busy, 'same'), alice2.mkdir(busy, 'same'), alice.mkdir(busy, 'same'), alice2.mkdir(busy, 'same')]);
    expect(race.map((r) => r.status).sort()).toEqual([303, 409, 409, 409]);
    expect((await alice.list(busy)).entries.filter((e) => e.name === 'same').length).toBe(1);
  });

  it('refuses an upload over the quota at once, keeping nothing', async () => {
    const before = await alice.list(root);
    const res = await alice.upload(root, [{ name: 'huge.bin', size: (QUOTA_MB + 1) * (1 << 20), data: () => (async function* () {})() as never }], { cutAfter: 10_000 });
    // the server answers before the body is sent (or the client sees the connection closed)
    expect([0, 413]).toContain(res.status);
    const after = await alice.list(root);
    expect(after.entries.map((e) => e.name)).toEqual(before.entries.map((e) => e.name));
    expect(after.usage).toBe(before.usage);
  });

  it('keeps nothing of an upload cut off halfway, and reclaims its chunks', async () => {
    const data = randomBytes(8 << 20);
    // Watch for the upload's pending record to learn the file id.
    const seen = new Set<string>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        for (const id of await env.client.cols(pendingRow('web1'))) seen.add(id);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const source = () =>
      (async function* () {
        for (let off = 0; off < data.length; off += 1 << 20) {
          yield data.subarray(off, off + (1 << 20));
          await new Promise((r) => setTimeout(r, 100)); // slow enough to see the upload's record
        }
      })() as never;
    const res = await alice.upload(root, [{ name: 'cut.bin', size: data.length, data: source }], { cutAfter: 5 << 20 });
    watching = false;
    await watcher;
    expect(res.status, res.body.toString()).toBe(0);
    expect(seen.size).toBe(1);
    const id = [...seen][0]!;
    await until('pending record gone', async () => (await env.client.cols(pendingRow('web1'))).length === 0);
    expect((await alice.list(root)).entries.map((e) => e.name)).not.toContain('cut.bin');
    for (let i = 0; i < 8; i++) expect(await env.client.get(chunkRow(id, i), CHUNK_COL)).toBeNull();
    expect(await env.client.get(nodeRow(id), META)).toBeNull();
  });

  it('sweeps the chunks of an upload whose frontend was killed, when it comes back', async () => {
    const usage = (await alice.list(root)).usage;
    const slow = () =>
      (async function* () {
        for (let i = 0; i < 64; i++) {
          yield randomBytes(1 << 20);
          await new Promise((r) => setTimeout(r, 100));
        }
      })() as never;
    const upload = alice2.upload(root, [{ name: 'doomed.bin', size: 64 << 20, data: slow }]).catch(() => null);
    const id = await until('chunks of the upload stored', async () => {
      const cols = await env.client.cols(pendingRow('web2'));
      if (cols.length === 0) return null;
      return (await env.client.get(chunkRow(cols[0]!, 1), CHUNK_COL)) ? cols[0]! : null;
    });
    await cluster.kill('web2');
    await upload;
    expect(await env.client.get(chunkRow(id, 0), CHUNK_COL)).not.toBeNull();
    await cluster.restart('web2');
    await until('the restarted frontend swept the upload', async () => (await env.client.cols(pendingRow('web2'))).length === 0);
    for (let i = 0; i < 64; i++) expect(await env.client.get(chunkRow(id, i), CHUNK_COL)).toBeNull();
    expect((await alice.list(root)).entries.map((e) => e.name)).not.toContain('doomed.bin');
    expect((await alice.list(root)).usage).toBe(usage); // the reservation was given back
  });

  it('round-trips a 200 MB random file while the frontend stays under 100 MB above its idle memory', async () => {
    const path = join(tmpdir(), `penncloud-drive-200mb-${process.pid}.bin`);
    try {
      const size = 200 * MB;
      const sum = await writeRandomFile(path, size);
      const pid = cluster.pid('web1')!;
      // Started as `penncloud up` starts it, with a floor under its old generation (actors/launcher.ts).
      expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toContain(`--initial-old-space-size=${FRONTEND_OLD_SPACE_FLOOR_MB}`);
      // The storage nodes, with their malloc settings (the same function starts them).
      const storageEnv = readFileSync(`/proc/${cluster.pid('s1')!}/environ`, 'utf8').split('\0');
      for (const [k, v] of Object.entries(STORAGE_MALLOC_ENV)) expect(storageEnv).toContain(`${k}=${v}`);
      const idle = vmRssKb(pid);
      let peak = idle;
      const sampler = setInterval(() => (peak = Math.max(peak, vmRssKb(pid))), 50);
      const res = await alice.upload(root, [{ name: 'big.bin', size, data: fileSource(path) }]).finally(() => clearInterval(sampler));
      expect(res.status, res.body.toString()).toBe(200);
      const growthMb = (peak - idle) / 1024;
      console.log(JSON.stringify({ frontendIdleRssMb: Math.round(idle / 1024), frontendPeakRssMb: Math.round(peak / 1024), growthMb: Math.round(growthMb) }));
      expect(growthMb).toBeLessThan(100);
      const id = (await alice.find(root, 'big.bin')).id;
      const back = await alice2.downloadHash(id);
      expect(back.status).toBe(200);
      expect(back.contentLength).toBe(size);
      expect(back.bytes).toBe(size);
      expect(back.sha).toBe(sum);
    } finally {
      rmSync(path, { force: true });
    }
  }, 300_000);
});

describe('drive quota, reserved ahead of the bytes', () => {
  // 40 MiB: an upload reserves 16 MiB at a time, the next step while half the current one is unused,
  // so near the end of this quota the step asked for ahead is refused and the rest is reserved exactly.
  const env = useCluster({ basePort: 28000, storageNodes: 3, tablets: 4, replication: 3, frontends: 1, extraToml: `[web]\ndrive_quota_mb = 40` });

  it('fills the quota to within a megabyte, then refuses the next file, and the usage is exact', async () => {
    const d = await user(env.cluster.url('web1'), 'filler');
    const root = await d.root();
    const quota = 40 << 20;
    // 10 MiB: the next step is asked for ahead at 8 MiB and not needed; it is given back.
    const first = randomBytes(10 << 20);
    const up1 = await d.upload(root, [{ name: 'first.bin', size: first.length, data: first }]);
    expect(up1.status, up1.body.toString()).toBe(200);
    expect((await d.list(root)).usage).toBe(first.length);
    const big = randomBytes(quota - first.length - (1 << 20));
    const up = await d.upload(root, [{ name: 'big.bin', size: big.length, data: big }]);
    expect(up.status, up.body.toString()).toBe(200);
    expect((await d.list(root)).usage).toBe(first.length + big.length); // nothing reserved ahead is left over
    const more = randomBytes(2 << 20);
    const refused = await d.upload(root, [{ name: 'more.bin', size: more.length, data: more }]);
    expect(refused.status).toBe(413);
    expect((await d.list(root)).usage).toBe(first.length + big.length);
    const id = (JSON.parse(up.body.toString()) as { files: Array<{ id: string }> }).files[0]!.id;
    expect((await d.downloadHash(id)).sha).toBe(sha256(big));
  });
});
