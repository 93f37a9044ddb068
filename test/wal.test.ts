import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { decodeFrames, encodeFrame, FRAME_HEADER_BYTES, Wal, type LogRecord, type WalOptions } from '../actors/storage/wal.js';

const MAX = 32 << 20;
const opts: WalOptions = { maxRecordBytes: MAX };

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'wal-test-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A deterministic record for lsn `i`: mostly puts, every 7th a delete. */
function rec(i: number, epoch = 1): LogRecord {
  if (i % 7 === 0) return { lsn: i, epoch, kind: 'del', row: `row${i % 13}`, col: `c${i}` };
  return { lsn: i, epoch, kind: 'put', row: `row${i % 13}`, col: `c${i}`, value: Buffer.from(`value-${i}-`.repeat(1 + (i % 5))) };
}

/** Makes records comparable: values become a length + digest of their bytes. */
function norm(r: LogRecord) {
  if (r.value === undefined) return r;
  return { ...r, value: `${r.value.length}:${createHash('sha256').update(r.value).digest('hex')}` };
}

function expectRecords(got: LogRecord[], want: LogRecord[]) {
  expect(got.length).toBe(want.length);
  expect(got.map(norm)).toEqual(want.map(norm));
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, k) => from + k);
}

/** Appends records from..to concurrently and waits for all of them. */
async function appendAll(wal: Wal, from: number, to: number): Promise<void> {
  const waits = range(from, to).map((i) => {
    wal.append(rec(i));
    return wal.whenDurable(i);
  });
  await Promise.all(waits);
}

async function segments(): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.startsWith('wal-')).sort();
}

/** Byte offsets at which each frame of a segment file starts, plus the file end. */
function frameOffsets(buf: Buffer): number[] {
  const offs = [0];
  for (let off = 0; off < buf.length; ) {
    off += FRAME_HEADER_BYTES + buf.readUInt32LE(off);
    offs.push(off);
  }
  return offs;
}

describe('frames', () => {
  it('round-trips records, including empty, binary, unicode and 16 MiB values', () => {
    const all256 = Buffer.from(range(0, 255));
    const big = Buffer.alloc(16 << 20);
    for (let i = 0; i < big.length; i += 4093) big[i] = i & 0xff;
    const records: LogRecord[] = [
      { lsn: 1, epoch: 0, kind: 'put', row: 'r', col: 'c', value: new Uint8Array(0) },
      { lsn: 2, epoch: 7, kind: 'put', row: 'bin', col: 'all', value: new Uint8Array(all256) },
      { lsn: 3, epoch: 7, kind: 'del', row: 'gone', col: 'x' },
      { lsn: 4, epoch: 2 ** 40, kind: 'put', row: 'ユーザー/😀', col: 'café', value: all256.subarray(10, 20) },
      { lsn: 5, epoch: 8, kind: 'put', row: 'big', col: 'blob', value: big },
    ];
    const buf = Buffer.concat(records.map(encodeFrame));
    const out = decodeFrames(buf, { expectFirstLsn: 1, maxPayload: MAX });
    expect(out.problem).toBeUndefined();
    expect(out.validBytes).toBe(buf.length);
    expectRecords(out.records, records);
    for (const r of out.records) if (r.value) expect(r.value).toBeInstanceOf(Uint8Array);
  });

  it('writes the documented header layout', () => {
    const lsn = 2 ** 33 + 5;
    const f = encodeFrame({ lsn, epoch: 1, kind: 'put', row: 'a', col: 'b', value: Buffer.from('v') });
    expect(f.readUInt32LE(0)).toBe(f.length - FRAME_HEADER_BYTES);
    expect(f.readBigUInt64LE(8)).toBe(BigInt(lsn));
    expect(decodeFrames(f, { maxPayload: MAX }).records[0]!.lsn).toBe(lsn);
  });

  it('stops at a torn tail and returns the valid prefix', () => {
    const frames = range(1, 5).map((i) => encodeFrame(rec(i)));
    const buf = Buffer.concat(frames);
    const fourth = frames.slice(0, 3).reduce((n, f) => n + f.length, 0); // start of frame 4
    for (const cut of [fourth + 1, fourth + 8, fourth + 15, fourth + 16, fourth + frames[3]!.length - 1]) {
      const out = decodeFrames(buf.subarray(0, cut), { expectFirstLsn: 1, maxPayload: MAX });
      expect(out.records.map((r) => r.lsn)).toEqual([1, 2, 3]);
      expect(out.validBytes).toBe(fourth);
      expect(out.problem).toMatch(new RegExp(`^torn frame at byte ${fourth}: need \\d+ bytes, ${cut - fourth} left$`));
    }
  });

  it('reports a flipped payload byte as a crc problem', () => {
    const frames = range(1, 3).map((i) => encodeFrame(rec(i)));
    const buf = Buffer.concat(frames);
    buf[frames[0]!.length + FRAME_HEADER_BYTES + 2]! ^= 0x40; // inside frame 2's payload
    const out = decodeFrames(buf, { expectFirstLsn: 1, maxPayload: MAX });
    expect(out.records.map((r) => r.lsn)).toEqual([1]);
    expect(out.validBytes).toBe(frames[0]!.length);
    expect(out.problem).toMatch(/bad crc at byte \d+/);
  });

  it('reports non-consecutive lsns, a wrong first lsn and absurd lengths', () => {
    const gap = Buffer.concat([encodeFrame(rec(1)), encodeFrame(rec(2)), encodeFrame(rec(4))]);
    const out = decodeFrames(gap, { expectFirstLsn: 1, maxPayload: MAX });
    expect(out.records.map((r) => r.lsn)).toEqual([1, 2]);
    expect(out.problem).toMatch(/unexpected lsn 4 at byte \d+, expected 3/);

    const wrongFirst = decodeFrames(encodeFrame(rec(5)), { expectFirstLsn: 1, maxPayload: MAX });
    expect(wrongFirst.records).toEqual([]);
    expect(wrongFirst.problem).toMatch(/unexpected lsn 5 at byte 0, expected 1/);

    const huge = Buffer.from(encodeFrame(rec(1)));
    huge.writeUInt32LE(0xfffffff0, 0);
    expect(decodeFrames(huge, { maxPayload: MAX }).problem).toMatch(/absurd frame length/);
  });
});

describe('Wal', () => {
  it('recovers 1000 concurrently appended records, and group commit batches the syncs', async () => {
    const { wal, recovered } = await Wal.open(dir, opts);
    expect(recovered).toMatchObject({ checkpointLsn: 0, cells: [], records: [], problems: [] });
    await appendAll(wal, 1, 1000);
    expect(wal.durableLsn).toBe(1000);
    expect(wal.syncCount).toBeLessThan(20);
    await wal.close();

    const again = await Wal.open(dir, opts);
    expect(again.recovered.problems).toEqual([]);
    expectRecords(again.recovered.records, range(1, 1000).map((i) => rec(i)));
    expect(again.wal.lastLsn).toBe(1000);
    await again.wal.close();
  });

  it('shares syncs between many concurrent writers that each wait for durability', async () => {
    const { wal } = await Wal.open(dir, opts);
    let next = 0;
    const writer = async () => {
      for (let k = 0; k < 20; k++) {
        const lsn = ++next;
        wal.append(rec(lsn));
        await wal.whenDurable(lsn);
      }
    };
    await Promise.all(range(1, 50).map(writer));
    expect(wal.durableLsn).toBe(1000);
    expect(wal.syncCount).toBeLessThan(200);
    await wal.close();
  });

  it('continues appending after a reopen', async () => {
    const first = await Wal.open(dir, opts);
    await appendAll(first.wal, 1, 10);
    await first.wal.close();
    const second = await Wal.open(dir, opts);
    expect(() => second.wal.append(rec(12))).toThrow(/not lastLsn\+1/);
    await appendAll(second.wal, 11, 20);
    await second.wal.close();
    const third = await Wal.open(dir, opts);
    expect(third.recovered.problems).toEqual([]);
    expectRecords(third.recovered.records, range(1, 20).map((i) => rec(i)));
    await third.wal.close();
  });

  it('recovers a checkpoint plus only the records after it', async () => {
    const { wal } = await Wal.open(dir, opts);
    await appendAll(wal, 1, 500);
    const cells: Array<[string, string, Uint8Array]> = range(0, 99).map((k) => [`row${k}`, `col${k}`, Buffer.from(`cell ${k}`)]);
    cells.push(['empty', 'value', new Uint8Array(0)]);
    await wal.checkpoint(500, 4, cells);
    expect(wal.bytesSinceCheckpoint).toBe(0);
    expect(() => wal.append(rec(502))).toThrow();
    await appendAll(wal, 501, 550);
    expect(wal.bytesSinceCheckpoint).toBeGreaterThan(0);
    await wal.close();
    expect(await segments()).toEqual(['wal-0000000000000501.log']);

    const again = await Wal.open(dir, opts);
    const r = again.recovered;
    expect(r.problems).toEqual([]);
    expect(r.checkpointLsn).toBe(500);
    expect(r.checkpointEpoch).toBe(4);
    expect(r.cells.map(([row, col, v]) => [row, col, Buffer.from(v).toString()])).toEqual(
      cells.map(([row, col, v]) => [row, col, Buffer.from(v).toString()]),
    );
    expectRecords(r.records, range(501, 550).map((i) => rec(i)));
    expect(again.wal.bytesSinceCheckpoint).toBe(wal.bytesSinceCheckpoint);
    await again.wal.close();
  });

  it('recovers from a crash between writing a checkpoint and rotating the segment', async () => {
    const { wal } = await Wal.open(dir, opts);
    await appendAll(wal, 1, 5);
    await wal.checkpoint(5, 1, [['a', 'b', Buffer.from('c')]]);
    await wal.close();
    // Recreate the pre-rotation state: the old segment is still there, the new one is not.
    await rm(path.join(dir, 'wal-0000000000000006.log'));
    await writeFile(path.join(dir, 'wal-0000000000000001.log'), Buffer.concat(range(1, 5).map((i) => encodeFrame(rec(i)))));

    const again = await Wal.open(dir, opts);
    expect(again.recovered).toMatchObject({ checkpointLsn: 5, records: [], problems: [] });
    await appendAll(again.wal, 6, 8);
    await again.wal.close();

    const third = await Wal.open(dir, opts);
    expect(third.recovered.problems).toEqual([]);
    expectRecords(third.recovered.records, range(6, 8).map((i) => rec(i)));
    expect(await segments()).toEqual(['wal-0000000000000006.log']); // the obsolete one is gone
    await third.wal.close();
  });

  it('recovers a 16 MiB value that spans read chunks', async () => {
    const big = Buffer.alloc(16 << 20, 0xab);
    big.write('start');
    const { wal } = await Wal.open(dir, opts);
    const records: LogRecord[] = [rec(1), { lsn: 2, epoch: 1, kind: 'put', row: 'big', col: 'v', value: big }, rec(3)];
    for (const r of records) wal.append(r);
    await wal.whenDurable(3);
    await wal.close();
    const again = await Wal.open(dir, opts);
    expect(again.recovered.problems).toEqual([]);
    expect(again.recovered.records.length).toBe(3);
    expect(Buffer.from(again.recovered.records[1]!.value!).equals(big)).toBe(true);
    await again.wal.close();
  });

  it('truncates a torn tail, reports it once, and returns the valid prefix', async () => {
    const { wal } = await Wal.open(dir, opts);
    await appendAll(wal, 1, 300);
    await wal.close();
    const file = path.join(dir, (await segments())[0]!);
    const offs = frameOffsets(await readFile(file));
    const k = 100 + Math.floor(Math.random() * 150); // frame k (0-based) gets torn
    const frameLen = offs[k + 1]! - offs[k]!;
    await truncate(file, offs[k]! + 1 + Math.floor(Math.random() * (frameLen - 1)));

    const problems: string[] = [];
    const again = await Wal.open(dir, { ...opts, onProblem: (m) => problems.push(m) });
    expect(again.recovered.problems).toHaveLength(1);
    expect(again.recovered.problems[0]).toMatch(/torn frame at byte \d+/);
    expect(problems).toEqual(again.recovered.problems);
    expectRecords(again.recovered.records, range(1, k).map((i) => rec(i)));
    expect((await stat(file)).size).toBe(offs[k]);
    // The log continues right after the valid prefix.
    await appendAll(again.wal, k + 1, k + 5);
    await again.wal.close();

    const third = await Wal.open(dir, opts);
    expect(third.recovered.problems).toEqual([]);
    expectRecords(third.recovered.records, range(1, k + 5).map((i) => rec(i)));
    await third.wal.close();
  });

  it('truncates at a corrupted byte and deletes later segments', async () => {
    // Two hand-made segments: wal-1 holds 1..20, wal-21 holds 21..30.
    const seg1 = Buffer.concat(range(1, 20).map((i) => encodeFrame(rec(i))));
    const seg2 = Buffer.concat(range(21, 30).map((i) => encodeFrame(rec(i))));
    const offs = frameOffsets(seg1);
    seg1[offs[12]! + FRAME_HEADER_BYTES + 3]! ^= 0xff; // corrupt lsn 13's payload
    await writeFile(path.join(dir, 'wal-0000000000000001.log'), seg1);
    await writeFile(path.join(dir, 'wal-0000000000000021.log'), seg2);

    const { wal, recovered } = await Wal.open(dir, opts);
    expect(recovered.problems).toHaveLength(1);
    expect(recovered.problems[0]).toMatch(/bad crc.*deleted wal-0000000000000021\.log/);
    expectRecords(recovered.records, range(1, 12).map((i) => rec(i)));
    expect(wal.lastLsn).toBe(12);
    await wal.close();
    expect(await segments()).toEqual(['wal-0000000000000001.log']);
    expect((await stat(path.join(dir, 'wal-0000000000000001.log'))).size).toBe(offs[12]);

    const again = await Wal.open(dir, opts);
    expect(again.recovered.problems).toEqual([]);
    expectRecords(again.recovered.records, range(1, 12).map((i) => rec(i)));
    await again.wal.close();
  });

  it('reports a gap between segments', async () => {
    await writeFile(path.join(dir, 'wal-0000000000000001.log'), Buffer.concat(range(1, 5).map((i) => encodeFrame(rec(i)))));
    await writeFile(path.join(dir, 'wal-0000000000000008.log'), Buffer.concat(range(8, 9).map((i) => encodeFrame(rec(i)))));
    const { wal, recovered } = await Wal.open(dir, opts);
    expect(recovered.problems).toHaveLength(1);
    expect(recovered.problems[0]).toMatch(/starts at lsn 8 but lsn 6 was expected/);
    expectRecords(recovered.records, range(1, 5).map((i) => rec(i)));
    await wal.close();
  });

  it('treats a corrupt checkpoint as a hard error and removes a leftover checkpoint.tmp', async () => {
    const { wal } = await Wal.open(dir, opts);
    await appendAll(wal, 1, 5);
    await wal.checkpoint(5, 1, [['a', 'b', Buffer.from('c')]]);
    await wal.close();
    await writeFile(path.join(dir, 'checkpoint.tmp'), 'junk');

    const ok = await Wal.open(dir, opts);
    expect(ok.recovered.checkpointLsn).toBe(5);
    expect(ok.recovered.records).toEqual([]);
    await ok.wal.close();
    expect(await readdir(dir)).not.toContain('checkpoint.tmp');

    const file = path.join(dir, 'checkpoint.dat');
    const buf = await readFile(file);
    buf[buf.length - 3]! ^= 1;
    await writeFile(file, buf);
    await expect(Wal.open(dir, opts)).rejects.toThrow(/corrupt checkpoint/);
    await writeFile(file, buf.subarray(0, 40)); // cut short: footer missing
    await expect(Wal.open(dir, opts)).rejects.toThrow(/corrupt checkpoint/);
  });

  it('fails fast after an I/O error', async () => {
    const problems: string[] = [];
    const { wal } = await Wal.open(dir, { ...opts, onProblem: (m) => problems.push(m) });
    await appendAll(wal, 1, 3);
    // Sabotage: close the segment file underneath the WAL so the next write fails.
    await (wal as unknown as { segment: { close(): Promise<void> } }).segment.close();
    wal.append(rec(4));
    wal.append(rec(5));
    const results = await Promise.allSettled([wal.whenDurable(4), wal.whenDurable(5)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(() => wal.append(rec(6))).toThrow(/failed/);
    await expect(wal.whenDurable(5)).rejects.toThrow(/failed/);
    expect(wal.durableLsn).toBe(3);
    expect(problems).toHaveLength(1);
    await wal.close();
  });

  it('rejects bad appends without breaking the WAL', async () => {
    const { wal } = await Wal.open(dir, { maxRecordBytes: 1000 });
    expect(() => wal.append(rec(2))).toThrow(/not lastLsn\+1/);
    expect(() => wal.append({ lsn: 1, epoch: 1, kind: 'put', row: 'r', col: 'c', value: Buffer.alloc(2000) })).toThrow(RangeError);
    await expect(wal.whenDurable(1)).rejects.toThrow(/not appended/);
    wal.append(rec(1));
    await wal.whenDurable(1);
    await wal.close();
    expect(() => wal.append(rec(2))).toThrow(/closed/);
  });
});
