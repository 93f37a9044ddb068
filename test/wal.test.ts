import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Encoder } from 'cbor-x';
import { BIG_VALUE_BYTES, decodeFrames, decodeLogPayload, encodeFrame, encodeLogFrame, encodeLogFrameParts, FRAME_HEADER_BYTES, frameOf, framePartsWithValue, type LogRecord } from '../actors/storage/wal.js';
import { logDir, tabletDir, WorkerLog, type TabletLog, type WorkerLogOptions } from '../actors/storage/worker-log.js';
import { ReadBudget, VALUE_FILE_BYTES, ValueFiles } from '../actors/storage/value-files.js';
import { ColdValue, type CellValue, type LoggedRecord } from '../actors/storage/wal.js';

const MAX = 32 << 20;

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
function norm(r: LoggedRecord) {
  if (r.value === undefined) return r;
  if (r.value instanceof ColdValue) return { ...r, value: `cold ${r.value.length}` };
  return { ...r, value: `${r.value.length}:${createHash('sha256').update(r.value).digest('hex')}` };
}

function expectRecords(got: LoggedRecord[], want: LoggedRecord[]) {
  expect(got.length).toBe(want.length);
  expect(got.map(norm)).toEqual(want.map(norm));
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, k) => from + k);
}

function options(extra: Partial<WorkerLogOptions> = {}): WorkerLogOptions {
  return { dataDir: dir, worker: 0, owns: () => true, maxRecordBytes: MAX, segmentBytes: 64 << 20, ...extra };
}

/** A recovered cell's bytes: small ones are in memory, big ones come back cold and are read from the value files. */
async function resolved(log: WorkerLog, tablet: number, cells: Array<[string, string, CellValue]>): Promise<Array<[string, string, Uint8Array]>> {
  const out: Array<[string, string, Uint8Array]> = [];
  for (const [row, col, v] of cells) out.push([row, col, v instanceof ColdValue ? (await log.readCold(tablet, [v]))[0]! : v]);
  return out;
}

/** Records with their cold values (those the log wrote to value files) read back. */
async function resolvedRecords(log: WorkerLog, tablet: number, records: LoggedRecord[]): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for (const r of records) out.push(r.value instanceof ColdValue ? { ...r, value: (await log.readCold(tablet, [r.value]))[0]! } : (r as LogRecord));
  return out;
}

/** Appends records from..to concurrently and waits for all of them. */
async function appendAll(log: TabletLog, from: number, to: number): Promise<void> {
  const waits = range(from, to).map((i) => {
    log.append(rec(i));
    return log.whenDurable(i);
  });
  await Promise.all(waits);
}

async function segments(): Promise<string[]> {
  return (await readdir(logDir(dir, 0))).filter((n) => n.startsWith('seg-')).sort();
}

function segmentFile(name: string): string {
  return path.join(logDir(dir, 0), name);
}

/** Opens the worker log and the given tablets. */
async function openAll(ids: number[], extra: Partial<WorkerLogOptions> = {}) {
  const log = await WorkerLog.open(options(extra));
  const tablets = [];
  for (const id of ids) tablets.push(await log.openTablet(id));
  return { log, tablets };
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

describe('worker-log frames', () => {
  it('frames a big value by reference, with exactly the bytes of a copied frame', () => {
    const cbor = new Encoder({ useRecords: false });
    for (const size of [BIG_VALUE_BYTES - 1, BIG_VALUE_BYTES, 0xffff, 0x10000, (1 << 20) + 3]) {
      const value = Buffer.alloc(size, size & 0xff);
      value.write('head');
      const r: LogRecord = { lsn: 9, epoch: 3, kind: 'put', row: 'röw', col: 'c', value };
      const f = encodeLogFrameParts(2 ** 33 + 5, 7, r);
      expect(f.parts.length).toBe(size < BIG_VALUE_BYTES ? 1 : 2);
      if (f.parts.length === 2) expect(f.parts[1]).toBe(value); // not copied
      const joined = Buffer.concat(f.parts);
      expect(joined.length).toBe(f.bytes);
      expect(joined.equals(frameOf(2 ** 33 + 5, cbor.encode([7, 9, 3, 1, 'röw', 'c', value])))).toBe(true);
      const back = decodeLogPayload(joined.subarray(FRAME_HEADER_BYTES));
      expect(back.tablet).toBe(7);
      expect(Buffer.from(back.rec.value as Uint8Array).equals(value)).toBe(true);
      // A checkpoint cell's frame, the same way.
      const cell = framePartsWithValue(12, [3, 1, 'röw', 'c'], value);
      expect(Buffer.concat(cell.parts).equals(encodeFrame({ lsn: 12, epoch: 3, kind: 'put', row: 'röw', col: 'c', value }))).toBe(true);
    }
  });
});

describe('WorkerLog', () => {
  it('recovers big and small values appended together (values of 64 KiB and more come back cold, from value files)', async () => {
    const { log, tablets } = await openAll([1, 2]);
    const want: LogRecord[][] = [[], []];
    const waits: Array<Promise<void>> = [];
    for (let i = 1; i <= 300; i++) {
      const size = [10, 5000, 70_000, 300][i % 4]!;
      const r: LogRecord = { lsn: Math.ceil(i / 2), epoch: 1, kind: 'put', row: `r${i}`, col: 'c', value: Buffer.alloc(size, i & 0xff) };
      const t = tablets[i % 2]!;
      t.log.append(r);
      want[i % 2]!.push(r);
      waits.push(t.log.whenDurable(r.lsn));
    }
    await Promise.all(waits);
    await log.close();
    const again = await openAll([1, 2]);
    for (const k of [0, 1]) {
      const got = again.tablets[k]!.recovered;
      expect(got.problems).toEqual([]);
      expect(got.records.filter((r) => r.value instanceof ColdValue).length).toBe(want[k]!.filter((r) => r.value!.length >= VALUE_FILE_BYTES).length);
      expectRecords(await resolvedRecords(again.log, k + 1, got.records), want[k]!);
    }
    await again.log.close();
  });

  it('recovers records of several tablets appended together, with one write per turn for all of them', async () => {
    const { log, tablets } = await openAll([1, 2, 3]);
    expect(tablets[0]!.recovered).toMatchObject({ checkpointLsn: 0, cells: [], records: [], problems: [] });
    await Promise.all(tablets.map((t) => appendAll(t.log, 1, 400)));
    expect(tablets.every((t) => t.log.durableLsn === 400)).toBe(true);
    expect(log.syncCount).toBeLessThan(20);
    await log.close();

    const again = await openAll([1, 2, 3]);
    for (const t of again.tablets) {
      expect(t.recovered.problems).toEqual([]);
      expectRecords(t.recovered.records, range(1, 400).map((i) => rec(i)));
      expect(t.log.lastLsn).toBe(400);
    }
    await again.log.close();
  });

  it('shares syncs between many concurrent writers that each wait for durability', async () => {
    const { log, tablets } = await openAll([7]);
    const t = tablets[0]!.log;
    let next = 0;
    const writer = async () => {
      for (let k = 0; k < 20; k++) {
        const lsn = ++next;
        t.append(rec(lsn));
        await t.whenDurable(lsn);
      }
    };
    await Promise.all(range(1, 50).map(writer));
    expect(t.durableLsn).toBe(1000);
    expect(log.syncCount).toBeLessThan(200);
    await log.close();
  });

  it('continues appending after a reopen, and refuses a second open of one tablet', async () => {
    const first = await openAll([1]);
    await appendAll(first.tablets[0]!.log, 1, 10);
    await expect(first.log.openTablet(1)).rejects.toThrow(/already open/);
    await first.log.close();
    const second = await openAll([1]);
    const t = second.tablets[0]!.log;
    expect(() => t.append(rec(12))).toThrow(/not lastLsn\+1/);
    await appendAll(t, 11, 20);
    await t.close();
    const reopened = await second.log.openTablet(1); // after close, the tablet may be opened again
    expectRecords(reopened.recovered.records, range(1, 20).map((i) => rec(i)));
    await second.log.close();
    const third = await openAll([1]);
    expect(third.tablets[0]!.recovered.problems).toEqual([]);
    expectRecords(third.tablets[0]!.recovered.records, range(1, 20).map((i) => rec(i)));
    await third.log.close();
  });

  it('recovers a checkpoint plus only the records after it, and deletes segments nobody needs', async () => {
    const { log, tablets } = await openAll([1, 2], { segmentBytes: 4096 });
    const [a, b] = tablets.map((t) => t.log) as [TabletLog, TabletLog];
    await appendAll(a, 1, 100);
    await appendAll(b, 1, 5); // b's records sit in an early segment and keep it alive
    for (let i = 101; i <= 500; i += 20) await appendAll(a, i, i + 19); // several writes: several segments
    const cells: Array<[string, string, Uint8Array]> = range(0, 99).map((k) => [`row${k}`, `col${k}`, Buffer.from(`cell ${k}`)]);
    cells.push(['empty', 'value', new Uint8Array(0)]);
    const before = (await segments()).length;
    expect(before).toBeGreaterThan(5);
    await a.checkpoint(500, 4, cells);
    expect(a.bytesSinceCheckpoint).toBe(0);
    expect((await segments()).length).toBeGreaterThan(1); // b still needs its segment
    expect(log.oldestHolders()).toEqual([2]);
    await b.checkpoint(5, 1, [['b', 'c', Buffer.from('d')]]);
    expect(log.oldestHolders()).toEqual([]);
    expect((await segments()).length).toBe(1); // only the active one is left
    expect(() => a.append(rec(502))).toThrow();
    await appendAll(a, 501, 550);
    expect(a.bytesSinceCheckpoint).toBeGreaterThan(0);
    await log.close();

    const again = await openAll([1, 2]);
    const r = again.tablets[0]!.recovered;
    expect(r.problems).toEqual([]);
    expect(r.checkpointLsn).toBe(500);
    expect(r.checkpointEpoch).toBe(4);
    expect(r.cells.map(([row, col, v]) => [row, col, Buffer.from(v as Uint8Array).toString()])).toEqual(cells.map(([row, col, v]) => [row, col, Buffer.from(v).toString()]));
    expectRecords(r.records, range(501, 550).map((i) => rec(i)));
    expect(again.tablets[1]!.recovered).toMatchObject({ checkpointLsn: 5, records: [] });
    await again.log.close();
  });

  it('writes a checkpoint of big and small cells (big ones by reference) that reads back byte for byte', async () => {
    const { log, tablets } = await openAll([1]);
    const t = tablets[0]!.log;
    await appendAll(t, 1, 3);
    const cells: Array<[string, string, Uint8Array]> = [0, 10, 4095, 4096, 70_000, 3 << 20].map((n, i) => [`r${i}`, 'c', Buffer.alloc(n, i + 1)]);
    await t.checkpoint(3, 2, cells);
    await log.close();
    const again = await openAll([1]);
    const r = again.tablets[0]!.recovered;
    expect(r.problems).toEqual([]);
    expect(r.checkpointLsn).toBe(3);
    const bytes = await resolved(again.log, 1, r.cells);
    expect(r.cells.filter(([, , v]) => v instanceof ColdValue).map(([row]) => row)).toEqual(['r4', 'r5']); // 70 000 B and 3 MiB: not read at load
    expect(bytes.map(([row, col, v]) => `${row}/${col}:${v.length}:${Buffer.from(v).equals(Buffer.alloc(v.length, Number(row.slice(1)) + 1))}`)).toEqual(
      cells.map(([row, col, v]) => `${row}/${col}:${v.length}:true`),
    );
    await again.log.close();
  });

  it('keeps big checkpoint values in value files, written once: a later checkpoint of the same cells writes references only', async () => {
    const { log, tablets } = await openAll([1]);
    const t = tablets[0]!.log;
    await appendAll(t, 1, 3);
    const big = (i: number): Uint8Array => Buffer.alloc(VALUE_FILE_BYTES + i * 1000, i + 1);
    const cells: Array<[string, string, Uint8Array]> = [1, 2, 3].map((i) => [`chunk${i}`, 'c', big(i)]);
    cells.push(['small', 'c', Buffer.from('tiny')]);
    await t.checkpoint(3, 1, cells);
    const stored = await log.valueFileBytes(1);
    expect(stored).toBe(cells.slice(0, 3).reduce((n, [, , v]) => n + v.length, 0));
    const checkpointBytes = (await stat(path.join(tabletDir(dir, 1), 'checkpoint.dat'))).size;
    expect(checkpointBytes).toBeLessThan(1000); // references, not values
    await t.checkpoint(3, 1, cells); // the same cells again: nothing appended
    expect(await log.valueFileBytes(1)).toBe(stored);
    await log.close();

    const again = await openAll([1]);
    const r = again.tablets[0]!.recovered;
    expect(r.problems).toEqual([]);
    const bytes = await resolved(again.log, 1, r.cells);
    expect(bytes.map(([row, , v]) => `${row}:${v.length}:${Buffer.from(v).equals(row === 'small' ? Buffer.from('tiny') : big(Number(row.slice(5))))}`)).toEqual([
      `chunk1:${big(1).length}:true`,
      `chunk2:${big(2).length}:true`,
      `chunk3:${big(3).length}:true`,
      'small:4:true',
    ]);
    // Values loaded cold are referenced again: checkpointing them appends nothing.
    await again.tablets[0]!.log.checkpoint(3, 1, r.cells);
    expect(await again.log.valueFileBytes(1)).toBe(stored);
    await again.log.close();
  });

  it('writes an appended big value once: to a value file before its record, and a checkpoint of its cell references it there', async () => {
    const opts = { valueFileBytes: 2 * VALUE_FILE_BYTES + 100 }; // two values per file: three files
    const { log, tablets } = await openAll([1], opts);
    const t = tablets[0]!.log;
    const big = (i: number): Buffer => Buffer.alloc(VALUE_FILE_BYTES + i, i + 1);
    const recs: LogRecord[] = [1, 2, 3, 4, 5].map((i) => ({ lsn: i, epoch: 1, kind: 'put', row: `chunk${i}`, col: 'c', value: big(i) }));
    for (const r of recs) t.append(r);
    await t.whenDurable(5);
    const values = recs.reduce((n, r) => n + r.value!.length, 0);
    expect(await log.valueFileBytes(1)).toBe(values);
    expect(log.bytes).toBeLessThan(2000); // the log holds references
    // The checkpoints get the cells holding the very values appended: they append and copy nothing
    // (files the log appended to are not taken for dead ones and compacted).
    const files = async (): Promise<string[]> => (await readdir(tabletDir(dir, 1))).filter((n) => n.startsWith('values-')).sort();
    const before = await files();
    expect(before.length).toBe(3);
    const cells = recs.map((r): [string, string, Uint8Array] => [r.row, r.col, r.value!]);
    await t.checkpoint(5, 1, cells);
    await t.checkpoint(5, 1, cells);
    expect(await log.valueFileBytes(1)).toBe(values);
    expect(await files()).toEqual(before); // the same files: nothing was copied elsewhere
    await log.close();
    const again = await openAll([1], opts);
    const r = again.tablets[0]!.recovered;
    expect(r.problems).toEqual([]);
    const back = await resolved(again.log, 1, r.cells);
    expect(back.map(([row, , v]) => `${row}:${Buffer.from(v).equals(big(Number(row.slice(5))))}`)).toEqual([1, 2, 3, 4, 5].map((i) => `chunk${i}:true`));
    await again.log.close();
  });

  it('keeps at most two value files open for reading per tablet, none of a deleted file, none after close', async () => {
    const valueFds = async (): Promise<string[]> => {
      const out: string[] = [];
      for (const fd of await readdir('/proc/self/fd')) {
        const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
        if (target.startsWith(tabletDir(dir, 1))) out.push(target);
      }
      return out;
    };
    const opts = { valueFileBytes: VALUE_FILE_BYTES + 1000 }; // one value per file
    const { log, tablets } = await openAll([1], opts);
    const t = tablets[0]!.log;
    const recs: LogRecord[] = [1, 2, 3, 4, 5, 6].map((i) => ({ lsn: i, epoch: 1, kind: 'put', row: `r${i}`, col: 'c', value: Buffer.alloc(VALUE_FILE_BYTES, i) }));
    for (const r of recs) t.append(r);
    await t.whenDurable(6);
    const cold = recs.map((r) => log.coldOf(1, r.value!)!);
    const writers = (await valueFds()).length; // the file being appended to
    for (const c of cold) await log.readCold(1, [c]);
    await Promise.all(cold.map((c) => log.readCold(1, [c])));
    expect((await valueFds()).length - writers).toBeLessThanOrEqual(2);
    // Overwrite every cell with a small value and checkpoint: the files go, and so do their readers.
    for (let i = 7; i <= 12; i++) t.append({ lsn: i, epoch: 1, kind: 'put', row: `r${i - 6}`, col: 'c', value: Buffer.from('small') });
    await t.whenDurable(12);
    await t.checkpoint(12, 1, recs.map((r) => [r.row, r.col, Buffer.from('small')]));
    expect((await valueFds()).filter((f) => f.endsWith('(deleted)'))).toEqual([]);
    await log.close();
    expect(await valueFds()).toEqual([]);
  });

  /**
   * Tablet 1's cell r/c written twice, one value file each: v1 durable, then looked up cold (as a
   * snapshot or the catch-up ring would hold it), then v2 durable. Nothing checkpointed yet.
   */
  async function overwrittenBigValue(extra: Partial<WorkerLogOptions> = {}) {
    const { log, tablets } = await openAll([1], { valueFileBytes: VALUE_FILE_BYTES + 1000, ...extra });
    const t = tablets[0]!.log;
    const v1 = Buffer.alloc(VALUE_FILE_BYTES, 1);
    const v2 = Buffer.alloc(VALUE_FILE_BYTES, 2);
    t.append({ lsn: 1, epoch: 1, kind: 'put', row: 'r', col: 'c', value: v1 });
    await t.whenDurable(1);
    const old = log.coldOf(1, v1)!;
    t.append({ lsn: 2, epoch: 1, kind: 'put', row: 'r', col: 'c', value: v2 }); // the cell changes
    await t.whenDurable(2);
    return { log, t, v1, v2, old };
  }

  it('keeps a value file nothing references for a grace period (a catch-up snapshot may still read it), then deletes it', async () => {
    const { log, t, v1, v2, old } = await overwrittenBigValue({ deadValueFileMs: 300 });
    await t.checkpoint(2, 1, [['r', 'c', v2]]); // v1's file: referenced by nothing now
    expect(Buffer.from((await log.readCold(1, [old]))[0]!).equals(v1)).toBe(true);
    await new Promise((r) => setTimeout(r, 350));
    await t.checkpoint(2, 1, [['r', 'c', v2]]); // past the grace: deleted
    await expect(log.readCold(1, [old])).rejects.toThrow(/missing/);
    expect(await log.valueFileBytes(1)).toBe(v2.length);
    await log.close();
  });

  it("keeps the value files a tablet's catch-up ring holds cold values in, until the ring lets them go", async () => {
    const { log, t, v1, v2, old: inRing } = await overwrittenBigValue(); // dead files go at once
    let floor: number | null = inRing.ref[0]; // the ring holds record 1 cold
    const ringFloor = (): number | null => floor;
    log.setRingFloor(1, ringFloor);
    await t.checkpoint(2, 1, [['r', 'c', v2]]); // v1's file: no cell references it, the ring does
    expect(Buffer.from((await log.readCold(1, [inRing]))[0]!).equals(v1)).toBe(true);
    floor = null; // the ring evicted record 1
    await t.checkpoint(2, 1, [['r', 'c', v2]]);
    await expect(log.readCold(1, [inRing])).rejects.toThrow(/missing/);
    log.dropRingFloor(1, ringFloor);
    await log.close();
  });

  it('keeps a value file that log records above a checkpoint mark reference, though the checkpoint does not', async () => {
    const opts = { valueFileBytes: VALUE_FILE_BYTES + 1000 }; // one value per file
    const { log, tablets } = await openAll([1], opts);
    const t = tablets[0]!.log;
    t.append(rec(1));
    await t.whenDurable(1);
    const value = (i: number): Buffer => Buffer.alloc(VALUE_FILE_BYTES, i);
    const checkpoint = t.checkpoint(1, 1, [['row1', 'c1', Buffer.from('small')]]); // mark: seq 1
    // Above the mark, two values in two files: the first is no longer the file being appended to.
    const big: LogRecord[] = [2, 3].map((i) => ({ lsn: i, epoch: 1, kind: 'put', row: 'r', col: `c${i}`, value: value(i) }));
    for (const r of big) t.append(r);
    await t.whenDurable(3);
    await checkpoint;
    await log.close();
    const again = await openAll([1], opts);
    const r = again.tablets[0]!.recovered;
    expect(r.problems).toEqual([]);
    expectRecords(await resolvedRecords(again.log, 1, r.records), big);
    await again.log.close();
  });

  it('drops, and reports, a log record whose value file is gone (damage: values are written before their records)', async () => {
    const problems: string[] = [];
    const { log, tablets } = await openAll([1], { onProblem: (m) => problems.push(m) });
    const t = tablets[0]!.log;
    t.append(rec(1));
    t.append({ lsn: 2, epoch: 1, kind: 'put', row: 'r', col: 'big', value: Buffer.alloc(VALUE_FILE_BYTES, 7) });
    t.append(rec(3));
    await t.whenDurable(3);
    await log.close();
    for (const n of await readdir(tabletDir(dir, 1))) if (n.startsWith('values-')) await rm(path.join(tabletDir(dir, 1), n));
    const again = await openAll([1], { onProblem: (m) => problems.push(m) });
    const r = again.tablets[0]!.recovered;
    expectRecords(r.records, [rec(1)]);
    expect(r.problems.join('\n')).toMatch(/lsn 2: value file .* is missing; it and 1 later records dropped/);
    expect(problems.join('\n')).toMatch(/is missing/);
    await again.log.close();
  });

  it('deletes value files no checkpoint references, and compacts files that hold mostly dead values', async () => {
    const fileBytes = 4 * VALUE_FILE_BYTES;
    const { log, tablets } = await openAll([1], { valueFileBytes: fileBytes });
    const t = tablets[0]!.log;
    const live = new Map<string, Uint8Array>();
    const valueFiles = async (): Promise<string[]> => (await readdir(tabletDir(dir, 1)).catch(() => [] as string[])).filter((n) => n.startsWith('values-')).sort();
    // Each round keeps one big cell for good and overwrites three others, so every file keeps a live
    // value among dead ones. What the files hold stays bounded by about twice the live bytes (plus the
    // file being appended to): without compaction it would grow with every round.
    let compactions = 0; // files deleted
    for (let round = 0; round < 12; round++) {
      const before = await valueFiles();
      live.set(`keep${round}`, Buffer.alloc(VALUE_FILE_BYTES, round));
      for (let k = 0; k < 3; k++) live.set(`tmp${k}`, Buffer.alloc(VALUE_FILE_BYTES, 100 + round * 3 + k));
      await t.checkpoint(0, 1, [...live].map(([row, v]) => [row, 'c', v]));
      const liveBytes = [...live.values()].reduce((n, v) => n + v.length, 0);
      expect(await log.valueFileBytes(1)).toBeLessThanOrEqual(2 * liveBytes + fileBytes);
      const after = await valueFiles();
      compactions += before.filter((f) => !after.includes(f)).length;
    }
    expect(compactions).toBeGreaterThan(0);
    // Everything deleted: one more checkpoint and only the file being appended to may remain.
    await t.checkpoint(0, 1, []);
    expect((await valueFiles()).length).toBeLessThanOrEqual(1);
    await log.close();
    const again = await openAll([1]);
    expect(again.tablets[0]!.recovered.cells).toEqual([]);
    await again.log.close();
  });

  it('compacting a file moves its cold values: a cell still pointing at the deleted file reads them where they went', async () => {
    const fileBytes = 4 * VALUE_FILE_BYTES;
    const val = (n: number): Buffer => Buffer.alloc(VALUE_FILE_BYTES, n);
    const first = await openAll([1], { valueFileBytes: fileBytes });
    await first.tablets[0]!.log.checkpoint(0, 1, [['keep', 'c', val(1)], ['t0', 'c', val(2)], ['t1', 'c', val(3)], ['t2', 'c', val(4)]]);
    await first.log.close();

    const { log, tablets } = await openAll([1], { valueFileBytes: fileBytes });
    const t = tablets[0]!.log;
    const keep = tablets[0]!.recovered.cells.find(([r]) => r === 'keep')![2];
    expect(keep).toBeInstanceOf(ColdValue);
    const cold = keep as ColdValue;
    // The tN values are overwritten: the first file keeps one live value of four, and is compacted.
    const fresh: Array<[string, string, CellValue]> = [['keep', 'c', cold], ['t0', 'c', val(5)], ['t1', 'c', val(6)], ['t2', 'c', val(7)]];
    await t.checkpoint(0, 1, fresh);
    await t.checkpoint(0, 1, fresh);
    const moved = log.coldOf(1, cold);
    expect(moved).toBeInstanceOf(ColdValue);
    expect(moved!.ref[0]).not.toBe(cold.ref[0]); // in another file now
    expect((await readdir(tabletDir(dir, 1))).filter((n) => n.startsWith('values-'))).not.toContain(`values-${String(cold.ref[0]).padStart(6, '0')}.dat`);
    expect(Buffer.from((await log.readCold(1, [cold]))[0]!).equals(val(1))).toBe(true); // the stale cell still reads right
    await log.close();
    const again = await openAll([1]);
    const back = await resolved(again.log, 1, again.tablets[0]!.recovered.cells);
    expect(Buffer.from(back.find(([r]) => r === 'keep')![2]).equals(val(1))).toBe(true);
    await again.log.close();
  });

  it('values appended by a checkpoint that never finished are never referenced, and the next checkpoint deletes them', async () => {
    const val = (n: number): Buffer => Buffer.alloc(VALUE_FILE_BYTES, n);
    const first = await openAll([1]);
    await first.tablets[0]!.log.checkpoint(0, 1, [['a', 'c', val(1)]]);
    await first.log.close();
    // A checkpoint that crashed after appending its values, before its rename: a file nobody references.
    const orphan = await ValueFiles.open(tabletDir(dir, 1));
    orphan.beginCheckpoint(0);
    await orphan.refFor(val(2));
    await orphan.sync(); // written, as a checkpoint does just before its rename
    await orphan.close();
    const files = async (): Promise<string[]> => (await readdir(tabletDir(dir, 1))).filter((n) => n.startsWith('values-')).sort();
    expect((await files()).length).toBe(2);

    const { log, tablets } = await openAll([1]);
    const cells = await resolved(log, 1, tablets[0]!.recovered.cells);
    expect(cells.map(([r, , v]) => `${r}:${Buffer.from(v).equals(val(1))}`)).toEqual(['a:true']);
    await tablets[0]!.log.checkpoint(0, 1, tablets[0]!.recovered.cells);
    expect((await files()).length).toBe(1); // the orphan is gone; the referenced file stays
    await log.close();
  });

  it('bounds the bytes of cold values read at once: later reads wait, in order', async () => {
    const budget = new ReadBudget(100);
    const order: string[] = [];
    const take = async (name: string, bytes: number): Promise<() => void> => {
      const release = await budget.acquire(bytes);
      order.push(name);
      return release;
    };
    const a = await take('a', 60);
    const b = take('b', 60);
    const c = take('c', 10); // fits, but waits behind b: no overtaking
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual(['a']);
    expect(budget.queued).toBe(2);
    a();
    const [releaseB, releaseC] = await Promise.all([b, c]);
    expect(order).toEqual(['a', 'b', 'c']);
    const huge = take('huge', 500); // more than the budget: waits for everything else, then goes alone
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual(['a', 'b', 'c']);
    releaseB();
    releaseC();
    (await huge)();
    expect(order).toEqual(['a', 'b', 'c', 'huge']);
  });

  it('reports a damaged value when it is read, and refuses to load a tablet whose value file is missing', async () => {
    const { log, tablets } = await openAll([1]);
    await appendAll(tablets[0]!.log, 1, 2);
    await tablets[0]!.log.checkpoint(2, 1, [['chunk', 'c', Buffer.alloc(VALUE_FILE_BYTES, 7)]]);
    await log.close();
    const tdir = tabletDir(dir, 1);
    const [name] = (await readdir(tdir)).filter((n) => n.startsWith('values-'));
    const file = path.join(tdir, name!);
    const buf = await readFile(file);
    buf[100]! ^= 1;
    await writeFile(file, buf);
    // Values are read when needed, not at load: the damage shows when the cell is read.
    const bad = await WorkerLog.open(options());
    const cold = (await bad.openTablet(1)).recovered.cells[0]![2];
    expect(cold).toBeInstanceOf(ColdValue);
    await expect(bad.readCold(1, [cold as ColdValue])).rejects.toThrow(/fails its crc/);
    await bad.close();
    await rm(file);
    const gone = await WorkerLog.open(options());
    await expect(gone.openTablet(1)).rejects.toThrow(/corrupt checkpoint.*value file .* is missing/);
    await gone.close();
  });

  it('a tablet appending while its checkpoint is written keeps those records: they are replayed after it', async () => {
    const { log, tablets } = await openAll([1], { segmentBytes: 4096 });
    const a = tablets[0]!.log;
    for (let i = 1; i <= 200; i += 20) await appendAll(a, i, i + 19);
    const cells: Array<[string, string, Uint8Array]> = [['state', 'as of', Buffer.from('200')]];
    // The checkpoint of the state at lsn 200 is running; lsns 201.. arrive meanwhile, some before and
    // some after its file is written.
    const written = a.checkpoint(200, 1, cells);
    await appendAll(a, 201, 230);
    await written;
    await appendAll(a, 231, 240);
    expect(a.bytesSinceCheckpoint).toBeGreaterThan(0); // 201..240 are still the log's to keep
    expect(log.oldestHolders().length).toBeLessThanOrEqual(1);
    // A second checkpoint while one runs is refused, not interleaved.
    const first = a.checkpoint(240, 1, [['state', 'as of', Buffer.from('240')]]);
    await expect(a.checkpoint(240, 1, [])).rejects.toThrow(/already being checkpointed/);
    await first;
    await appendAll(a, 241, 245);
    await log.close();

    const again = await openAll([1]);
    const r = again.tablets[0]!.recovered;
    expect(r.problems).toEqual([]);
    expect(r.checkpointLsn).toBe(240);
    expect(Buffer.from(r.cells[0]![2] as Uint8Array).toString()).toBe('240');
    expectRecords(r.records, range(241, 245).map((i) => rec(i)));
    await again.log.close();

    // Crash right after a checkpoint whose later records were written: they come back on top of it.
    const third = await openAll([1]);
    const t = third.tablets[0]!.log;
    const cp = t.checkpoint(245, 1, [['state', 'as of', Buffer.from('245')]]);
    await appendAll(t, 246, 250);
    await cp;
    await third.log.abandon();
    const fourth = await openAll([1]);
    expect(fourth.tablets[0]!.recovered.checkpointLsn).toBe(245);
    expectRecords(fourth.tablets[0]!.recovered.records, range(246, 250).map((i) => rec(i)));
    await fourth.log.close();
  });

  it('install replaces a diverged tail: the old records never come back', async () => {
    const { log, tablets } = await openAll([3]);
    const t = tablets[0]!.log;
    await appendAll(t, 1, 10); // lsns 6..10 will turn out to be a diverged tail
    await t.install(5, 2, [['snap', 'c', Buffer.from('v')]]);
    expect(t.lastLsn).toBe(5);
    const fresh: LogRecord[] = [6, 7].map((i) => ({ lsn: i, epoch: 3, kind: 'put', row: 'new', col: `c${i}`, value: Buffer.from('x') }));
    for (const r of fresh) t.append(r);
    await t.whenDurable(7);
    await log.close();
    const again = await openAll([3]);
    const r = again.tablets[0]!.recovered;
    expect(r).toMatchObject({ checkpointLsn: 5, checkpointEpoch: 2, problems: [] });
    expectRecords(r.records, fresh);
    await again.log.close();
  });

  it('keeps sequence numbers above every checkpoint mark even when all segments are gone', async () => {
    const { log, tablets } = await openAll([1, 2]);
    await appendAll(tablets[0]!.log, 1, 50);
    await appendAll(tablets[1]!.log, 1, 50);
    await tablets[0]!.log.checkpoint(50, 1, [['a', 'b', Buffer.from('c')]]);
    await log.close();
    for (const s of await segments()) await rm(segmentFile(s)); // tablet 2's records are lost with them
    const again = await openAll([1]);
    await appendAll(again.tablets[0]!.log, 51, 60);
    await again.log.close();
    const third = await openAll([1]);
    expect(third.tablets[0]!.recovered).toMatchObject({ checkpointLsn: 50, problems: [] });
    expectRecords(third.tablets[0]!.recovered.records, range(51, 60).map((i) => rec(i)));
    await third.log.close();
  });

  it('recovers a 16 MiB value that spans read chunks', async () => {
    const big = Buffer.alloc(16 << 20, 0xab);
    big.write('start');
    const { log, tablets } = await openAll([1]);
    const records: LogRecord[] = [rec(1), { lsn: 2, epoch: 1, kind: 'put', row: 'big', col: 'v', value: big }, rec(3)];
    for (const r of records) tablets[0]!.log.append(r);
    await tablets[0]!.log.whenDurable(3);
    await log.close();
    const again = await openAll([1]);
    expect(again.tablets[0]!.recovered.problems).toEqual([]);
    expect(again.tablets[0]!.recovered.records.length).toBe(3);
    // The value went to a value file before its record (which holds its reference): it comes back cold.
    const cold = again.tablets[0]!.recovered.records[1]!.value;
    expect(cold).toBeInstanceOf(ColdValue);
    expect(Buffer.from((await again.log.readCold(1, [cold as ColdValue]))[0]!).equals(big)).toBe(true);
    expect(again.log.bytes).toBeLessThan(64 << 10); // the log holds the reference, not the bytes
    await again.log.close();
  });

  it('truncates a torn tail, reports it once, and returns the valid prefix', async () => {
    const { log, tablets } = await openAll([1]);
    await appendAll(tablets[0]!.log, 1, 300);
    await log.close();
    const file = segmentFile((await segments())[0]!);
    const offs = frameOffsets(await readFile(file));
    const k = 100 + Math.floor(Math.random() * 150); // frame k (0-based) gets torn
    const frameLen = offs[k + 1]! - offs[k]!;
    await truncate(file, offs[k]! + 1 + Math.floor(Math.random() * (frameLen - 1)));

    const problems: string[] = [];
    const again = await openAll([1], { onProblem: (m) => problems.push(m) });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/torn frame at byte \d+/);
    expect(again.tablets[0]!.recovered.problems).toEqual([]); // nothing acknowledged was lost
    expectRecords(again.tablets[0]!.recovered.records, range(1, k).map((i) => rec(i)));
    expect((await stat(file)).size).toBe(offs[k]);
    await appendAll(again.tablets[0]!.log, k + 1, k + 5); // the log continues right after the valid prefix
    await again.log.close();

    const third = await openAll([1], { onProblem: (m) => problems.push(m) });
    expect(problems).toHaveLength(1);
    expectRecords(third.tablets[0]!.recovered.records, range(1, k + 5).map((i) => rec(i)));
    await third.log.close();
  });

  it('truncates at a corrupted byte, deletes later segments, and reports the tablet whose records broke off', async () => {
    // Hand-made segments: seg-1 holds tablet 1's lsns 1..20 at seqs 1..20, seg-21 tablet 1's 21..30.
    await mkdir(logDir(dir, 0), { recursive: true });
    const seg1 = Buffer.concat(range(1, 20).map((i) => encodeLogFrame(i, 1, rec(i))));
    const seg2 = Buffer.concat(range(21, 30).map((i) => encodeLogFrame(i, 1, rec(i))));
    const offs = frameOffsets(seg1);
    seg1[offs[12]! + FRAME_HEADER_BYTES + 3]! ^= 0xff; // corrupt seq 13's payload
    await writeFile(segmentFile('seg-0000000000000001.log'), seg1);
    await writeFile(segmentFile('seg-0000000000000021.log'), seg2);

    const problems: string[] = [];
    const { log, tablets } = await openAll([1], { onProblem: (m) => problems.push(m) });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/bad crc.*deleted .*seg-0000000000000021\.log/);
    expectRecords(tablets[0]!.recovered.records, range(1, 12).map((i) => rec(i)));
    expect(tablets[0]!.log.lastLsn).toBe(12);
    await log.close();
    expect(await segments()).toEqual(['seg-0000000000000001.log']);
    expect((await stat(segmentFile('seg-0000000000000001.log'))).size).toBe(offs[12]);
  });

  it('a tablet whose records do not continue its checkpoint is reported and can be repaired by a checkpoint', async () => {
    await mkdir(logDir(dir, 0), { recursive: true });
    // Tablet 5: lsns 1..4, then 7..8 (5 and 6 lost); tablet 6 is fine.
    const frames = [1, 2, 3, 4, 7, 8].map((lsn, k) => encodeLogFrame(k + 1, 5, rec(lsn)));
    frames.push(encodeLogFrame(7, 6, rec(1)));
    await writeFile(segmentFile('seg-0000000000000001.log'), Buffer.concat(frames));
    const { log, tablets } = await openAll([5, 6]);
    const [five, six] = tablets as [(typeof tablets)[0], (typeof tablets)[0]];
    expect(five.recovered.problems).toHaveLength(1);
    expect(five.recovered.problems[0]).toMatch(/lsn 7 does not follow lsn 4/);
    expectRecords(five.recovered.records, range(1, 4).map((i) => rec(i)));
    expect(six.recovered.problems).toEqual([]);
    await five.log.checkpoint(4, 1, [['r', 'c', Buffer.from('v')]]);
    await appendAll(five.log, 5, 9);
    await log.close();
    const again = await openAll([5]);
    expect(again.tablets[0]!.recovered).toMatchObject({ checkpointLsn: 4, problems: [] });
    expectRecords(again.tablets[0]!.recovered.records, range(5, 9).map((i) => rec(i)));
    await again.log.close();
  });

  it('refuses a log holding records of a tablet this worker does not own (a changed layout)', async () => {
    await mkdir(logDir(dir, 0), { recursive: true });
    await writeFile(segmentFile('seg-0000000000000001.log'), Buffer.concat([encodeLogFrame(1, 4, rec(1)), encodeLogFrame(2, 9, rec(1))]));
    await expect(WorkerLog.open(options({ owns: (t) => t !== 9 }))).rejects.toThrow(/records of tablets 9, which worker 0 does not own/);
  });

  it('treats a corrupt checkpoint as a hard error and removes a leftover checkpoint.tmp', async () => {
    const { log, tablets } = await openAll([1]);
    await appendAll(tablets[0]!.log, 1, 5);
    await tablets[0]!.log.checkpoint(5, 1, [['a', 'b', Buffer.from('c')]]);
    await log.close();
    const tdir = tabletDir(dir, 1);
    await writeFile(path.join(tdir, 'checkpoint.tmp'), 'junk');

    const ok = await openAll([1]);
    expect(ok.tablets[0]!.recovered.checkpointLsn).toBe(5);
    expect(ok.tablets[0]!.recovered.records).toEqual([]);
    await ok.log.close();
    expect(await readdir(tdir)).not.toContain('checkpoint.tmp');

    const file = path.join(tdir, 'checkpoint.dat');
    const buf = await readFile(file);
    buf[buf.length - 3]! ^= 1;
    await writeFile(file, buf);
    const bad = await WorkerLog.open(options());
    await expect(bad.openTablet(1)).rejects.toThrow(/corrupt checkpoint/);
    await bad.close();
    await writeFile(file, buf.subarray(0, 40)); // cut short: the header itself is torn
    await expect(WorkerLog.open(options())).rejects.toThrow(/corrupt checkpoint/);
  });

  it('folds a tablet that is not open into a checkpoint', async () => {
    const { log, tablets } = await openAll([1]);
    await appendAll(tablets[0]!.log, 1, 20);
    await tablets[0]!.log.close();
    expect(log.heldBytes(1)).toBeGreaterThan(0);
    await log.foldTablet(1, (r) => {
      expect(r.records.length).toBe(20);
      return { lsn: 20, epoch: 1, cells: [['folded', 'c', Buffer.from('v')]] };
    });
    expect(log.heldBytes(1)).toBe(0);
    const t = await log.openTablet(1);
    expect(t.recovered).toMatchObject({ checkpointLsn: 20, records: [] });
    expect(t.recovered.cells.map(([r]) => r)).toEqual(['folded']);
    await log.close();
  });

  it('recycles retired segments: new segments overwrite them, and everything reads back without a problem', async () => {
    const problems: string[] = [];
    const opts = { segmentBytes: 2048, onProblem: (m: string) => problems.push(m) };
    const spares = async (): Promise<string[]> => (await readdir(logDir(dir, 0))).filter((n) => n.startsWith('spare-')).sort();
    const { log, tablets } = await openAll([1], opts);
    const t = tablets[0]!.log;
    // Big frames first (one write each), so the spares are longer than what their next life writes.
    for (let i = 1; i <= 200; i++) {
      t.append({ lsn: i, epoch: 1, kind: 'put', row: 'big', col: `c${i}`, value: Buffer.alloc(i % 20 === 0 ? 6000 : 1, i) });
      if (i % 20 === 0) await t.whenDurable(i);
    }
    await t.checkpoint(200, 1, [['a', 'b', Buffer.from('c')]]); // every segment but the active one retires
    expect((await spares()).length).toBe(4);
    const retired = await spares();
    for (let i = 201; i <= 400; i += 20) await appendAll(t, i, i + 19); // the new segments are the spares, overwritten
    expect((await spares()).filter((n) => retired.includes(n)).length).toBeLessThan(4);
    await log.close();
    const again = await openAll([1], opts);
    expectRecords(again.tablets[0]!.recovered.records, range(201, 400).map((i) => rec(i)));
    expect(problems).toEqual([]);
    await again.log.close();
  });

  it('a crash while overwriting a recycled segment: recovery ends the log at the last complete write, and no frame of its earlier life comes back', async () => {
    const problems: string[] = [];
    const opts = { segmentBytes: 12_000 /* several 4 KiB blocks */, onProblem: (m: string) => problems.push(m) };
    const { log, tablets } = await openAll([1], opts);
    const t = tablets[0]!.log;
    // Big frames first, so the spares are long; then small ones overwrite only their beginning.
    const bigRec = (i: number): LogRecord => ({ lsn: i, epoch: 1, kind: 'put', row: 'big', col: `c${i}`, value: Buffer.alloc(1500, i) });
    for (let i = 1; i <= 40; i++) {
      t.append(bigRec(i));
      await t.whenDurable(i);
    }
    expect((await segments()).length).toBeGreaterThan(2);
    await t.checkpoint(40, 1, [['a', 'b', Buffer.from('c')]]);
    const spareCount = async (): Promise<number> => (await readdir(logDir(dir, 0))).filter((n) => n.startsWith('spare-')).length;
    const before = await spareCount();
    expect(before).toBeGreaterThan(0);
    let lsn = 40;
    while ((await spareCount()) === before) { // small records until the log moves into a recycled file
      t.append(rec(++lsn));
      await t.whenDurable(lsn);
    }
    const last = lsn + 3;
    while (lsn < last) {
      t.append(rec(++lsn));
      await t.whenDurable(lsn);
    }
    t.append(rec(lsn + 1)); // never written
    await log.abandon();
    const segs = await segments();
    const active = segmentFile(segs.at(-1)!);
    const sizeBefore = (await stat(active)).size;
    expect(sizeBefore).toBeGreaterThan(1500); // a recycled file: its earlier life follows our frames
    const again = await openAll([1], opts);
    expectRecords(again.tablets[0]!.recovered.records, range(41, last).map((i) => rec(i)));
    // Our last write ended in zero padding (block-writer.ts): a clean end, and what followed it is cut.
    expect(problems).toEqual([]);
    expect((await stat(active)).size).toBeLessThan(sizeBefore);
    expect((await stat(active)).size % 4096).not.toBe(0);
    await again.log.close();
  });

  it('abandon loses what was not yet written, like a crash', async () => {
    const { log, tablets } = await openAll([1]);
    const t = tablets[0]!.log;
    await appendAll(t, 1, 10);
    t.append(rec(11)); // same turn as the abandon: never written
    await log.abandon();
    await expect(t.whenDurable(11)).rejects.toThrow();
    const again = await openAll([1]);
    expectRecords(again.tablets[0]!.recovered.records, range(1, 10).map((i) => rec(i)));
    await again.log.close();
  });

  it('fails fast after an I/O error', async () => {
    const problems: string[] = [];
    const { log, tablets } = await openAll([1], { onProblem: (m) => problems.push(m) });
    const t = tablets[0]!.log;
    await appendAll(t, 1, 3);
    // Sabotage: close the segment file underneath the log so the next write fails.
    await (log as unknown as { active: { close(): Promise<void> } }).active.close();
    t.append(rec(4));
    t.append(rec(5));
    const results = await Promise.allSettled([t.whenDurable(4), t.whenDurable(5)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(() => t.append(rec(6))).toThrow(/failed/);
    await expect(t.whenDurable(5)).rejects.toThrow(/failed/);
    expect(t.durableLsn).toBe(3);
    expect(log.failed).toBe(true);
    expect(problems).toHaveLength(1);
    await log.close();
  });

  it('rejects bad appends without breaking the log', async () => {
    const { log, tablets } = await openAll([1], { maxRecordBytes: 1000 });
    const t = tablets[0]!.log;
    expect(() => t.append(rec(2))).toThrow(/not lastLsn\+1/);
    expect(() => t.append({ lsn: 1, epoch: 1, kind: 'put', row: 'r', col: 'c', value: Buffer.alloc(2000) })).toThrow(RangeError);
    await expect(t.whenDurable(1)).rejects.toThrow(/not appended/);
    t.append(rec(1));
    await t.whenDurable(1);
    await t.close();
    expect(() => t.append(rec(2))).toThrow(/closed/);
    await log.close();
  });
});
