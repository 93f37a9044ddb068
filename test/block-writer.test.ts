import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { BLOCK, BlockWriter } from '../actors/storage/block-writer.js';
import { encodeFrame, mkdirDurable, scanFile } from '../actors/storage/wal.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'penncloud-blockwriter-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('BlockWriter', () => {
  it.each([
    ['O_DIRECT where the file system allows it', false],
    ['the page cache, as where O_DIRECT is refused', true],
  ])('appends exactly the bytes given, in whole zero-padded blocks, at any size: %s', async (_how, pageCache) => {
    const file = path.join(dir, 'a.dat');
    const w = await BlockWriter.open(file, 'create', 0, { pageCache });
    if (pageCache) expect(w.direct).toBe(false);
    // Say which path ran: O_DIRECT on ext4 here (older kernels' tmpfs refuses it).
    else console.log(`block-writer test: ${w.direct ? 'O_DIRECT' : 'page cache (O_DIRECT refused)'} in ${tmpdir()}`);
    const parts: Buffer[] = [];
    for (const n of [1, 0, 4095, 4096, 4097, 100, (1 << 20) + 3, 7, 8191, 12_288]) {
      const p = randomBytes(n);
      parts.push(p);
      await w.append([p.subarray(0, n >> 1), p.subarray(n >> 1)], n);
      const expected = Buffer.concat(parts);
      expect(w.length).toBe(expected.length);
      const onDisk = await readFile(file);
      expect(onDisk.length).toBe(Math.ceil(expected.length / BLOCK) * BLOCK);
      expect(onDisk.subarray(0, expected.length).equals(expected)).toBe(true);
      expect(onDisk.subarray(expected.length).every((b) => b === 0)).toBe(true);
    }
    await w.cut();
    expect((await stat(file)).size).toBe(w.length);
    await w.close();
  });

  it('continues an existing file at an unaligned end, keeping the bytes of its last block', async () => {
    const file = path.join(dir, 'b.dat');
    const first = randomBytes(5000);
    const old = Buffer.concat([first, Buffer.from('stale bytes past the valid end')]);
    await writeFile(file, old);
    const w = await BlockWriter.open(file, 'existing', first.length);
    const more = randomBytes(3000);
    await w.append([more], more.length);
    await w.close();
    const onDisk = await readFile(file);
    expect(onDisk.subarray(0, 8000).equals(Buffer.concat([first, more]))).toBe(true);
    expect(onDisk.subarray(8000).every((b) => b === 0)).toBe(true);
  });

  it("'new' refuses a file that exists", async () => {
    const file = path.join(dir, 'c.dat');
    await writeFile(file, 'x');
    await expect(BlockWriter.open(file, 'new')).rejects.toMatchObject({ code: 'EEXIST' });
  });
});

describe('scanFile and zero padding', () => {
  const frames = [1, 2, 3].map((lsn) => encodeFrame({ lsn, epoch: 1, kind: 'put', row: 'r', col: `c${lsn}`, value: Buffer.alloc(700 * lsn, lsn) }));
  const scan = async (bytes: Buffer) => {
    const file = path.join(dir, 'scan.dat');
    await writeFile(file, bytes);
    const fh = await open(file, 'r');
    try {
      const lsns: number[] = [];
      const r = await scanFile(fh, bytes.length, { expectFirstLsn: 1, maxPayload: 1 << 20 }, (lsn) => lsns.push(lsn));
      return { ...r, lsns };
    } finally {
      await fh.close();
    }
  };
  const framed = Buffer.concat(frames);

  it('ends cleanly where the frames stop inside a block and zeros fill it', async () => {
    const padded = Buffer.concat([framed, Buffer.alloc(Math.ceil(framed.length / BLOCK) * BLOCK - framed.length)]);
    const r = await scan(padded);
    expect(r).toMatchObject({ validBytes: framed.length, lastLsn: 3, lsns: [1, 2, 3], moreAfterPadding: false });
    expect(r.problem).toBeUndefined();
    // Bytes after the padding (a recycled file's earlier life) are not read, but reported.
    const r2 = await scan(Buffer.concat([padded, Buffer.alloc(100, 9)]));
    expect(r2).toMatchObject({ validBytes: framed.length, lsns: [1, 2, 3], moreAfterPadding: true });
    expect(r2.problem).toBeUndefined();
  });

  it('still reports damage: a non-zero byte inside the padding, or zeros from a block boundary on', async () => {
    const end = Math.ceil(framed.length / BLOCK) * BLOCK;
    const dirty = Buffer.concat([framed, Buffer.alloc(end - framed.length)]);
    dirty[end - 1] = 1;
    expect((await scan(dirty)).problem).toMatch(/bad crc|torn|absurd/);
    // Zeros that start on a block boundary are a write that never landed (a torn write), not padding.
    const frameOf = (n: number) => encodeFrame({ lsn: 1, epoch: 1, kind: 'put', row: 'r', col: 'c', value: Buffer.alloc(n, 1) });
    let n = BLOCK - 64;
    while (frameOf(n).length < BLOCK) n++;
    const whole = frameOf(n);
    expect(whole.length).toBe(BLOCK);
    const r = await scan(Buffer.concat([whole, Buffer.alloc(BLOCK)]));
    expect(r).toMatchObject({ validBytes: BLOCK, lsns: [1] });
    expect(r.problem).toMatch(/bad crc/);
  });
});

describe('mkdirDurable', () => {
  it('creates missing directories (each synced into its parent) and leaves existing ones alone', async () => {
    const deep = path.join(dir, 'a', 'b', 'c');
    await mkdirDurable(deep);
    expect((await stat(deep)).isDirectory()).toBe(true);
    await writeFile(path.join(deep, 'f'), 'x');
    await mkdirDurable(deep); // exists: nothing to do, nothing lost
    expect((await readFile(path.join(deep, 'f'))).toString()).toBe('x');
  });
});
