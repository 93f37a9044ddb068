/**
 * The files of the store: log frames, streaming frame scans, and tablet checkpoints.
 * (The log itself, one per worker thread and shared by its tablets, is in worker-log.ts.)
 *
 * Every record, in log segments and in checkpoints, is a frame:
 *   [u32 LE payloadLength][u32 LE crc32(seq bytes + payload)][u64 LE seq][payload]
 * In a checkpoint, seq numbers the frames 0, 1, 2, ...; a cell's payload is CBOR
 * [epoch, 1, row, col, value] (a tablet 'put' record), or [epoch, 2, row, col, [file, offset, length,
 * crc32]] for a big value kept in the tablet's value files (value-files.ts).
 *
 * The checkpoint file (tablet-<id>/checkpoint.dat) is:
 *   frame 0      header  CBOR ['penncloud-checkpoint', 3, lsn, epoch, logMark] (version 2: no references)
 *   frames 1..N  cells   'put' record payloads or references (epoch = checkpoint epoch)
 *   frame N+1    footer  CBOR ['penncloud-checkpoint-end', N]
 * The footer proves the file is complete. `logMark` is a position in the worker's log: every record of
 * this tablet at or below it is covered by the checkpoint (see worker-log.ts).
 */
import { crc32 } from 'node:zlib';
import { mkdir, open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { Decoder, Encoder } from 'cbor-x';

// ---------------------------------------------------------------------------------------------
// Records and frames
// ---------------------------------------------------------------------------------------------

export interface LogRecord {
  lsn: number;
  epoch: number;
  kind: 'put' | 'del';
  row: string;
  col: string;
  value?: Uint8Array;
}

/** Bytes before the payload: length, crc, lsn. */
export const FRAME_HEADER_BYTES = 16;

const cborEncoder = new Encoder({ useRecords: false });
// copyBuffers: decoded values own their bytes instead of pinning the (large) read buffer.
const cborDecoder = new Decoder({ useRecords: false, copyBuffers: true });

/** Writes the length and lsn of a frame header into `buf` (the crc, at offset 4, comes last). */
function writeFrameHead(buf: Buffer, payloadBytes: number, lsn: number): void {
  if (!Number.isSafeInteger(lsn) || lsn < 0) throw new TypeError(`bad lsn ${lsn}`);
  buf.writeUInt32LE(payloadBytes, 0);
  buf.writeUInt32LE(lsn % 2 ** 32, 8);
  buf.writeUInt32LE(Math.floor(lsn / 2 ** 32), 12);
}

/** Wraps an already encoded payload into a frame carrying `lsn`. */
export function frameOf(lsn: number, payload: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  writeFrameHead(frame, payload.length, lsn);
  frame.set(payload, FRAME_HEADER_BYTES);
  frame.writeUInt32LE(crc32(frame.subarray(8)), 4); // crc covers lsn bytes + payload
  return frame;
}

/** A Buffer view of `bytes` (no copy), so CBOR encodes it as a plain byte string. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function checkRecord(rec: LogRecord): void {
  if (!Number.isSafeInteger(rec.epoch) || rec.epoch < 0) throw new TypeError(`bad epoch ${rec.epoch}`);
  if (rec.kind !== 'put' && rec.kind !== 'del') throw new TypeError(`bad kind ${String(rec.kind)}`);
  if (typeof rec.row !== 'string' || typeof rec.col !== 'string') throw new TypeError('row and col must be strings');
  if (rec.value != null && !(rec.value instanceof Uint8Array)) throw new TypeError('value must be a Uint8Array');
}

/** Encodes one log record as a frame. */
export function encodeFrame(rec: LogRecord): Buffer {
  checkRecord(rec);
  const value = rec.value == null ? null : asBuffer(rec.value);
  const payload = cborEncoder.encode([rec.epoch, rec.kind === 'put' ? 1 : 0, rec.row, rec.col, value]);
  return frameOf(rec.lsn, payload);
}

/** Turns a decoded record payload back into a LogRecord; throws if it has the wrong shape. */
export function recordFromPayload(lsn: number, decoded: unknown): LogRecord {
  if (!Array.isArray(decoded) || decoded.length !== 5) throw new Error('payload is not a 5-element array');
  const [epoch, kind, row, col, value] = decoded as unknown[];
  if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 0) throw new Error('bad epoch');
  if (kind !== 0 && kind !== 1) throw new Error('bad kind');
  if (typeof row !== 'string' || typeof col !== 'string') throw new Error('row/col not strings');
  if (value !== null && !(value instanceof Uint8Array)) throw new Error('value is neither bytes nor null');
  const rec: LogRecord = { lsn, epoch, kind: kind === 1 ? 'put' : 'del', row, col };
  if (value !== null) rec.value = value;
  return rec;
}

function decodeRecord(lsn: number, payload: Uint8Array): LogRecord {
  return recordFromPayload(lsn, cborDecoder.decode(payload));
}

/** Why a frame could not be taken at some offset. */
type FrameFault =
  | { kind: 'torn'; need: number; left: number }
  | { kind: 'length'; length: number; max: number }
  | { kind: 'crc'; stored: number; computed: number }
  | { kind: 'lsn'; lsn: number; expected: number };

type FrameParse = { ok: true; lsn: number; payload: Buffer; end: number } | ({ ok: false } & FrameFault);

/** Parses the frame starting at `off`; `expectLsn` (if given) must match its lsn. Never throws. */
function parseFrameAt(buf: Buffer, off: number, expectLsn: number | undefined, maxPayload: number): FrameParse {
  const left = buf.length - off;
  if (left < FRAME_HEADER_BYTES) return { ok: false, kind: 'torn', need: FRAME_HEADER_BYTES, left };
  const length = buf.readUInt32LE(off);
  if (length > maxPayload) return { ok: false, kind: 'length', length, max: maxPayload };
  const end = off + FRAME_HEADER_BYTES + length;
  if (end > buf.length) return { ok: false, kind: 'torn', need: FRAME_HEADER_BYTES + length, left };
  const stored = buf.readUInt32LE(off + 4);
  const computed = crc32(buf.subarray(off + 8, end));
  if (stored !== computed) return { ok: false, kind: 'crc', stored, computed };
  const lsn = buf.readUInt32LE(off + 8) + buf.readUInt32LE(off + 12) * 2 ** 32;
  if (expectLsn !== undefined && lsn !== expectLsn) return { ok: false, kind: 'lsn', lsn, expected: expectLsn };
  return { ok: true, lsn, payload: buf.subarray(off + FRAME_HEADER_BYTES, end), end };
}

function describeFault(f: FrameFault, at: number): string {
  switch (f.kind) {
    case 'torn':
      return `torn frame at byte ${at}: need ${f.need} bytes, ${f.left} left`;
    case 'length':
      return `absurd frame length ${f.length} at byte ${at} (limit ${f.max})`;
    case 'crc':
      return `bad crc at byte ${at}: stored ${hex32(f.stored)}, computed ${hex32(f.computed)}`;
    case 'lsn':
      return `unexpected lsn ${f.lsn} at byte ${at}, expected ${f.expected}`;
  }
}

function hex32(n: number): string {
  return '0x' + n.toString(16).padStart(8, '0');
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Decodes consecutive record frames from `buf`, stopping at the first bad one (torn, bad crc,
 * absurd length, undecodable payload, or lsn that is not previous+1 / expectFirstLsn).
 * `validBytes` is the length of the good prefix; `problem` says why decoding stopped early.
 */
export function decodeFrames(
  buf: Buffer,
  opts: { expectFirstLsn?: number; maxPayload: number },
): { records: LogRecord[]; validBytes: number; problem?: string } {
  const records: LogRecord[] = [];
  let off = 0;
  let expect = opts.expectFirstLsn;
  while (off < buf.length) {
    const f = parseFrameAt(buf, off, expect, opts.maxPayload);
    if (!f.ok) return { records, validBytes: off, problem: describeFault(f, off) };
    try {
      records.push(decodeRecord(f.lsn, f.payload));
    } catch (e) {
      return { records, validBytes: off, problem: `undecodable payload at byte ${off} (lsn ${f.lsn}): ${errorMessage(e)}` };
    }
    off = f.end;
    expect = f.lsn + 1;
  }
  return { records, validBytes: off };
}

// ---------------------------------------------------------------------------------------------
// Streaming file scan (segments can be large, and so can single frames)
// ---------------------------------------------------------------------------------------------

const READ_CHUNK_BYTES = 4 << 20;

export interface ScanResult {
  validBytes: number;
  lastLsn?: number;
  problem?: string;
  /** The frames end in zero padding (block-writer.ts) and the file holds more bytes after it. */
  moreAfterPadding?: boolean;
}

/** The padding unit of block-written files (block-writer.ts BLOCK). */
const PAD_BLOCK = 4096;

/** Reads exactly `length` bytes at `position` (into a buffer of its own when 4 KiB or more). */
export async function readExactly(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) throw new Error(`file shrank while reading (wanted ${length} bytes at ${position})`);
    got += bytesRead;
  }
  return buf;
}

/** Bytes [from, to) of the file are all zero (`buf` holds the file from `bufStart` on, maybe not up to `to`). */
async function allZero(fh: FileHandle, buf: Buffer, bufStart: number, from: number, to: number): Promise<boolean> {
  const inBuf = Math.min(to, bufStart + buf.length);
  for (let i = from - bufStart; i < inBuf - bufStart; i++) if (buf[i] !== 0) return false;
  if (inBuf >= to) return true;
  const rest = await readExactly(fh, inBuf, to - inBuf);
  return rest.every((b) => b === 0);
}

/**
 * Walks the frames of a file of `size` bytes in chunks, calling `onFrame` for each good frame
 * (an exception from onFrame counts as an undecodable payload). Stops at the first bad frame.
 */
export async function scanFile(
  fh: FileHandle,
  size: number,
  opts: { expectFirstLsn?: number; maxPayload: number },
  onFrame: (lsn: number, payload: Buffer, frameBytes: number) => void,
): Promise<ScanResult> {
  let buf = Buffer.alloc(0); // bytes [bufStart, readTo) of the file
  let bufStart = 0;
  let readTo = 0;
  let pos = 0; // offset in buf of the next frame
  let expect = opts.expectFirstLsn;
  let lastLsn: number | undefined;
  for (;;) {
    if (pos === buf.length && readTo === size) return { validBytes: bufStart + pos, lastLsn };
    const f = parseFrameAt(buf, pos, expect, opts.maxPayload);
    if (!f.ok && f.kind === 'torn' && readTo < size) {
      // Need more of the file: keep the unconsumed tail, read at least the rest of this frame.
      const want = Math.min(size - readTo, Math.max(READ_CHUNK_BYTES, f.need - f.left));
      const more = await readExactly(fh, readTo, want);
      buf = Buffer.concat([buf.subarray(pos), more]);
      bufStart += pos;
      pos = 0;
      readTo += want;
      continue;
    }
    const at = bufStart + pos;
    if (!f.ok) {
      // Zeros from inside a block to its end: the padding a block-written file ends in, not damage.
      const padEnd = Math.min(size, Math.ceil(at / PAD_BLOCK) * PAD_BLOCK);
      if (at % PAD_BLOCK !== 0 && (await allZero(fh, buf, bufStart, at, padEnd))) return { validBytes: at, lastLsn, moreAfterPadding: size > padEnd };
      return { validBytes: at, lastLsn, problem: describeFault(f, at) };
    }
    try {
      onFrame(f.lsn, f.payload, f.end - pos);
    } catch (e) {
      return { validBytes: at, lastLsn, problem: `undecodable payload at byte ${at} (lsn ${f.lsn}): ${errorMessage(e)}` };
    }
    pos = f.end;
    lastLsn = f.lsn;
    expect = f.lsn + 1;
  }
}

// ---------------------------------------------------------------------------------------------
// Small file-system helpers
// ---------------------------------------------------------------------------------------------

const SEGMENT_RE = /^seg-(\d{16})\.log$/;
const CHECKPOINT_FILE = 'checkpoint.dat';
export const CHECKPOINT_TMP = 'checkpoint.tmp';

export interface Segment {
  start: number;
  file: string; // absolute path
}

export function segmentName(start: number): string {
  return `seg-${String(start).padStart(16, '0')}.log`;
}

/** Log segments in the directory, ordered by start sequence number. */
export async function listSegments(dir: string): Promise<Segment[]> {
  const segs: Segment[] = [];
  for (const name of await readdir(dir)) {
    const m = SEGMENT_RE.exec(name);
    if (m) segs.push({ start: Number(m[1]), file: path.join(dir, name) });
  }
  return segs.sort((a, b) => a.start - b.start);
}

/** fsync a directory so that creates/renames/unlinks in it are durable. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Creates `dir` (and missing parents) so that it survives a crash: each directory created is made
 * durable in its parent (fsync of the parent), as a file's name is by syncing its directory.
 */
export async function mkdirDurable(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return;
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    await syncDir(path.dirname(d));
    if (d === path.resolve(first) || d === path.dirname(d)) break;
  }
}

export async function unlinkIfExists(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** Writes all of `data` at the current file position (handles short writes). */
export async function writeAll(fh: FileHandle, data: Buffer): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const { bytesWritten } = await fh.write(data, off, data.length - off);
    off += bytesWritten;
  }
}

/** At most this many buffers per writev (IOV_MAX is 1024 on Linux). */
export const MAX_WRITEV_PARTS = 1024;

/** Writes all of `parts` (at most MAX_WRITEV_PARTS), in order, at the current file position (handles short writes). */
export async function writevAll(fh: FileHandle, parts: Buffer[]): Promise<void> {
  if (parts.length === 1) return writeAll(fh, parts[0]!);
  let rest = parts;
  while (rest.length > 0) {
    let { bytesWritten } = await fh.writev(rest);
    let k = 0;
    while (k < rest.length && bytesWritten >= rest[k]!.length) bytesWritten -= rest[k++]!.length;
    rest = rest.slice(k);
    if (bytesWritten > 0) rest[0] = rest[0]!.subarray(bytesWritten);
  }
}

/** Collects frames (big values by reference) and writes them in batches of about `limit` bytes. */
class BatchWriter {
  private pending: Buffer[] = [];
  private bytes = 0;
  constructor(
    private readonly fh: FileHandle,
    private readonly limit: number,
  ) {}

  async add(frame: Buffer | LogFrame): Promise<void> {
    if (Buffer.isBuffer(frame)) {
      this.pending.push(frame);
      this.bytes += frame.length;
    } else {
      this.pending.push(...frame.parts);
      this.bytes += frame.bytes;
    }
    if (this.bytes >= this.limit || this.pending.length >= MAX_WRITEV_PARTS - 2) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const parts = this.pending;
    this.pending = [];
    this.bytes = 0;
    await writevAll(this.fh, parts);
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoint file
// ---------------------------------------------------------------------------------------------

const CHECKPOINT_MAGIC = 'penncloud-checkpoint';
const CHECKPOINT_END = 'penncloud-checkpoint-end';
const CHECKPOINT_VERSION = 3;
/** Cell payloads with a value reference carry this kind (a 'put' record carries 1). */
const KIND_VALUE_REF = 2;
const CHECKPOINT_BATCH_BYTES = 4 << 20;

export interface CheckpointHeader {
  lsn: number;
  epoch: number;
  /** Records of the tablet at or below this position of the worker log are covered by the checkpoint. */
  logMark: number;
}

/** Where a value lies in a tablet's value files: [file number, byte offset, length, crc32]. */
export type ValueRef = [file: number, offset: number, length: number, crc: number];

/**
 * A big value that lives in its tablet's value files, not in memory (value-files.ts): what a tablet
 * holds for it after a checkpoint wrote it there, or after a load. Its bytes are read when a reply
 * needs them.
 */
export class ColdValue {
  readonly length: number;
  constructor(readonly ref: ValueRef) {
    this.length = ref[2];
  }
}

/** A cell's value as a tablet holds it: its bytes, or where they lie. */
export type CellValue = Uint8Array | ColdValue;

export interface CheckpointData extends CheckpointHeader {
  cells: Array<[string, string, CellValue]>;
}

export function isValueRef(x: unknown): x is ValueRef {
  return Array.isArray(x) && x.length === 4 && x.every((n) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0) && (x[3] as number) <= 0xffffffff;
}

/** A tablet's value files, as checkpoints use them (ValueFiles, value-files.ts). */
export interface CheckpointValues {
  /** Values at least this big are kept there. */
  readonly minBytes: number;
  /** A checkpoint with this log mark is being written: the references it writes are counted from here. */
  beginCheckpoint(logMark: number): void;
  /** The reference to write for a value: where it lies already, or where it is appended now. */
  refFor(value: CellValue): Promise<ValueRef>;
  /** Makes the values appended durable; before the checkpoint referencing them is renamed into place. */
  sync(): Promise<void>;
  /** After the checkpoint is durable: it references what refFor returned since beginCheckpoint, nothing else. */
  collect(logMark: number): Promise<void>;
  /** A checkpoint read references `refs`; throws unless each lies inside an existing value file. */
  loaded(refs: ValueRef[]): void;
}

/**
 * Writes the checkpoint durably: checkpoint.tmp (streamed in batches), fdatasync, rename to
 * checkpoint.dat, fsync the directory. On failure before the rename the tmp file is removed.
 * With `values`, big values are written as references into the tablet's value files (once: a value
 * already there is referenced again); they are synced before the rename, and files the new checkpoint
 * no longer references are deleted after it.
 */
export async function writeCheckpointFile(
  dir: string,
  head: CheckpointHeader,
  cells: Iterable<[string, string, CellValue]>,
  maxPayload: number,
  values?: CheckpointValues,
): Promise<void> {
  values?.beginCheckpoint(head.logMark);
  const tmp = path.join(dir, CHECKPOINT_TMP);
  const fh = await open(tmp, 'w');
  try {
    const out = new BatchWriter(fh, CHECKPOINT_BATCH_BYTES);
    const { lsn, epoch, logMark } = head;
    await out.add(frameOf(0, cborEncoder.encode([CHECKPOINT_MAGIC, CHECKPOINT_VERSION, lsn, epoch, logMark])));
    let seq = 0;
    for (const [row, col, value] of cells) {
      seq++;
      // The bytes of encodeFrame({lsn: seq, epoch, kind: 'put', row, col, value}), a big value by reference.
      if (typeof row !== 'string' || typeof col !== 'string' || !(value instanceof Uint8Array || value instanceof ColdValue)) throw new TypeError(`checkpoint cell ${String(row)}/${String(col)} is malformed`);
      if (value instanceof ColdValue && !values) throw new TypeError(`checkpoint cell ${row}/${col}: a value in value files, and none were given`);
      let frame: LogFrame;
      if (values && (value instanceof ColdValue || value.length >= values.minBytes)) {
        const ref = await values.refFor(value);
        const f = frameOf(seq, cborEncoder.encode([epoch, KIND_VALUE_REF, row, col, ref]));
        frame = { parts: [f], bytes: f.length };
      } else {
        frame = framePartsWithValue(seq, [epoch, 1, row, col], asBuffer(value as Uint8Array));
      }
      const payloadBytes = frame.bytes - FRAME_HEADER_BYTES;
      if (payloadBytes > maxPayload) throw new RangeError(`checkpoint cell ${row}/${col}: ${payloadBytes} bytes > maxRecordBytes`);
      await out.add(frame);
    }
    await out.add(frameOf(seq + 1, cborEncoder.encode([CHECKPOINT_END, seq])));
    await out.flush();
    await values?.sync();
    await fh.datasync();
    await fh.close();
    await rename(tmp, path.join(dir, CHECKPOINT_FILE));
  } catch (e) {
    await fh.close().catch(() => {}); // may already be closed
    await unlinkIfExists(tmp).catch(() => {});
    throw e;
  }
  await syncDir(dir);
  await values?.collect(head.logMark);
}

/**
 * Reads checkpoint.dat, or returns null if there is none. Any damage is a hard error. A referenced value
 * comes back as a ColdValue, not read: it must lie inside an existing value file of `values` (a
 * reference without `values` is damage too); its crc is checked whenever it is read.
 */
export async function readCheckpointFile(dir: string, maxPayload: number, values?: CheckpointValues): Promise<CheckpointData | null> {
  const file = path.join(dir, CHECKPOINT_FILE);
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const size = (await fh.stat()).size;
    let header: CheckpointHeader | undefined;
    let footerCount: number | undefined;
    const cells: Array<[string, string, CellValue]> = [];
    const refs: ValueRef[] = [];
    const scan = await scanFile(fh, size, { expectFirstLsn: 0, maxPayload }, (seq, payload) => {
      if (footerCount !== undefined) throw new Error('frame after the footer');
      const decoded: unknown = cborDecoder.decode(payload);
      if (seq === 0) header = parseCheckpointHeader(decoded);
      else if (Array.isArray(decoded) && decoded[0] === CHECKPOINT_END) footerCount = Number(decoded[1]);
      else {
        const cell = cellFromRecord(loggedRecordFromPayload(seq, decoded));
        if (cell[2] instanceof ColdValue) refs.push(cell[2].ref);
        cells.push(cell);
      }
    });
    if (scan.problem) throw new Error(scan.problem);
    if (!header) throw new Error('empty file');
    if (footerCount === undefined) throw new Error('missing footer (incomplete file)');
    if (footerCount !== cells.length) throw new Error(`footer says ${footerCount} cells, found ${cells.length}`);
    if (refs.length > 0 && !values) throw new Error('it references value files, and none were given');
    values?.loaded(refs);
    return { ...header, cells };
  } catch (e) {
    throw new Error(`corrupt checkpoint ${file}: ${errorMessage(e)}`, { cause: e });
  } finally {
    await fh.close();
  }
}

function parseCheckpointHeader(decoded: unknown): CheckpointHeader {
  if (!Array.isArray(decoded) || decoded[0] !== CHECKPOINT_MAGIC) throw new Error('bad header');
  const [, version, lsn, epoch, logMark] = decoded as unknown[];
  // Version 2 is version 3 without value references.
  if (version !== CHECKPOINT_VERSION && version !== 2) throw new Error(`unsupported checkpoint version ${String(version)}`);
  if (!Number.isSafeInteger(lsn) || !Number.isSafeInteger(epoch) || !Number.isSafeInteger(logMark)) throw new Error('bad header lsn/epoch/mark');
  return { lsn: lsn as number, epoch: epoch as number, logMark: logMark as number };
}

/**
 * Reads only the header of checkpoint.dat (null if there is none): enough to know which log records
 * the checkpoint covers. The cells are checked when the tablet loads.
 */
export async function readCheckpointHeader(dir: string): Promise<CheckpointHeader | null> {
  let fh: FileHandle;
  try {
    fh = await open(path.join(dir, CHECKPOINT_FILE), 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const size = (await fh.stat()).size;
    const head = await readExactly(fh, 0, Math.min(size, 256));
    const f = parseFrameAt(head, 0, 0, 256);
    if (!f.ok) throw new Error(describeFault(f, 0));
    return parseCheckpointHeader(cborDecoder.decode(f.payload));
  } catch (e) {
    throw new Error(`corrupt checkpoint ${path.join(dir, CHECKPOINT_FILE)}: ${errorMessage(e)}`, { cause: e });
  } finally {
    await fh.close();
  }
}

function cellFromRecord(rec: LoggedRecord): [string, string, CellValue] {
  if (rec.kind !== 'put' || !rec.value) throw new Error('checkpoint cell is not a put with a value');
  return [rec.row, rec.col, rec.value];
}


// ---------------------------------------------------------------------------------------------
// Worker log records: a tablet's record plus the tablet id, framed with the log's sequence number
// ---------------------------------------------------------------------------------------------

/** Values at least this big are not copied into a log frame: the frame references them (see LogFrame). */
export const BIG_VALUE_BYTES = 4096;

/**
 * A frame ready for writing, as consecutive pieces: either one buffer, or [header + CBOR prefix, value]
 * for a big value, so the value's bytes go from the request straight to the file (writev) without
 * being copied into freshly allocated frames (for 1 MiB drive chunks the copies, and the page faults
 * of their new buffers, were the largest CPU cost of a write). The bytes on disk are the same.
 */
export interface LogFrame {
  parts: Buffer[];
  bytes: number;
}

/** Encodes `rec` of `tablet` as a worker-log frame at position `seq`: payload CBOR [tablet, lsn, epoch, put?1:0, row, col, value]. */
export function encodeLogFrame(seq: number, tablet: number, rec: LogRecord): Buffer {
  const f = encodeLogFrameParts(seq, tablet, rec);
  return f.parts.length === 1 ? f.parts[0]! : Buffer.concat(f.parts, f.bytes);
}

/** encodeLogFrame without copying a big value: the same bytes, as pieces. */
export function encodeLogFrameParts(seq: number, tablet: number, rec: LogRecord): LogFrame {
  checkRecord(rec);
  if (!Number.isSafeInteger(tablet) || tablet < 0) throw new TypeError(`bad tablet ${tablet}`);
  if (!Number.isSafeInteger(rec.lsn) || rec.lsn < 1) throw new TypeError(`bad lsn ${rec.lsn}`);
  const value = rec.value == null ? null : asBuffer(rec.value);
  return framePartsWithValue(seq, [tablet, rec.lsn, rec.epoch, rec.kind === 'put' ? 1 : 0, rec.row, rec.col], value);
}

/**
 * The frame at `seq` whose payload is the CBOR array [...head, value], as pieces: one buffer, or for a
 * big value [header + CBOR up to the byte-string header, value] so the value is never copied.
 */
export function framePartsWithValue(seq: number, head: unknown[], value: Buffer | null): LogFrame {
  if (value === null || value.length < BIG_VALUE_BYTES) {
    const frame = frameOf(seq, cborEncoder.encode([...head, value]));
    return { parts: [frame], bytes: frame.length };
  }
  if (head.length + 1 > 23) throw new RangeError('framePartsWithValue: at most 22 head items');
  // CBOR of the (n+1)-array = header 0x80+n+1, the n head items, then the byte string header and the
  // value's bytes. Encode the head as an n-array (header 0x80+n) and patch the count.
  const prefix = cborEncoder.encode(head);
  if (prefix[0] !== 0x80 + head.length) throw new Error(`unexpected CBOR array header 0x${prefix[0]!.toString(16)}`);
  const bstr = value.length < 0x10000 ? 3 : 5;
  const first = Buffer.allocUnsafe(FRAME_HEADER_BYTES + prefix.length + bstr);
  writeFrameHead(first, prefix.length + bstr + value.length, seq);
  first.set(prefix, FRAME_HEADER_BYTES);
  first[FRAME_HEADER_BYTES] = 0x80 + head.length + 1;
  const at = FRAME_HEADER_BYTES + prefix.length;
  if (bstr === 3) {
    first[at] = 0x59;
    first.writeUInt16BE(value.length, at + 1);
  } else {
    first[at] = 0x5a;
    first.writeUInt32BE(value.length, at + 1);
  }
  first.writeUInt32LE(crc32(value, crc32(first.subarray(8))), 4); // crc covers lsn bytes + payload
  return { parts: [first, value], bytes: first.length + value.length };
}

/**
 * The worker-log frame of a put whose value was written to a value file (ValueFiles.reserve): payload
 * CBOR [tablet, lsn, epoch, KIND_VALUE_REF, row, col, ref], the reference instead of the bytes.
 */
export function encodeLogFrameRef(seq: number, tablet: number, rec: LogRecord, ref: ValueRef): LogFrame {
  checkRecord(rec);
  if (rec.kind !== 'put') throw new TypeError('encodeLogFrameRef: only a put has a value');
  if (!Number.isSafeInteger(tablet) || tablet < 0) throw new TypeError(`bad tablet ${tablet}`);
  if (!Number.isSafeInteger(rec.lsn) || rec.lsn < 1) throw new TypeError(`bad lsn ${rec.lsn}`);
  const frame = frameOf(seq, cborEncoder.encode([tablet, rec.lsn, rec.epoch, KIND_VALUE_REF, rec.row, rec.col, ref]));
  return { parts: [frame], bytes: frame.length };
}

/** A record as the log gives it back: a put's value may lie in a value file (cold). */
export interface LoggedRecord extends Omit<LogRecord, 'value'> {
  value?: CellValue;
}

/** Decodes a worker-log payload; throws if it has the wrong shape. */
export function decodeLogPayload(payload: Uint8Array): { tablet: number; rec: LoggedRecord } {
  const decoded: unknown = cborDecoder.decode(payload);
  if (!Array.isArray(decoded) || decoded.length !== 7) throw new Error('payload is not a 7-element array');
  const [tablet, lsn, ...rest] = decoded as unknown[];
  if (typeof tablet !== 'number' || !Number.isSafeInteger(tablet) || tablet < 0) throw new Error('bad tablet');
  if (typeof lsn !== 'number' || !Number.isSafeInteger(lsn) || lsn < 1) throw new Error('bad lsn');
  return { tablet, rec: loggedRecordFromPayload(lsn, rest) };
}

/**
 * A decoded record payload [epoch, kind, row, col, value], where kind KIND_VALUE_REF is a put whose
 * value is a reference into the tablet's value files (in the log and in checkpoints alike).
 */
function loggedRecordFromPayload(lsn: number, decoded: unknown): LoggedRecord {
  if (!Array.isArray(decoded) || decoded[1] !== KIND_VALUE_REF) return recordFromPayload(lsn, decoded);
  const [epoch, , row, col, ref] = decoded as unknown[];
  if (decoded.length !== 5) throw new Error('payload is not a 5-element array');
  if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 0) throw new Error('bad epoch');
  if (typeof row !== 'string' || typeof col !== 'string' || !isValueRef(ref)) throw new Error('bad value reference');
  return { lsn, epoch, kind: 'put', row, col, value: new ColdValue(ref) };
}
