/**
 * Durable storage of one tablet: a write-ahead log with group commit, plus checkpoints.
 *
 * Files in the tablet directory:
 *   wal-<startLsn, 16 digits>.log   log segments; a segment holds consecutive lsns starting at startLsn
 *   checkpoint.dat                   full tablet state as of some lsn (written as checkpoint.tmp,
 *                                    fdatasync'd, renamed, directory fsync'd)
 *
 * Every record, in segments and in the checkpoint, is a frame:
 *   [u32 LE payloadLength][u32 LE crc32(lsn bytes + payload)][u64 LE lsn][payload]
 * where the payload of a log record is CBOR [epoch, put ? 1 : 0, row, col, value ?? null].
 *
 * The checkpoint file is a sequence of frames numbered 0, 1, 2, ...:
 *   frame 0      header  CBOR ['penncloud-checkpoint', 1, lsn, epoch]
 *   frames 1..N  cells   ordinary 'put' record payloads (epoch = checkpoint epoch)
 *   frame N+1    footer  CBOR ['penncloud-checkpoint-end', N]
 * The footer proves the file is complete.
 */
import { crc32 } from 'node:zlib';
import { constants as fsConstants } from 'node:fs';
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

/** Wraps an already encoded payload into a frame carrying `lsn`. */
function frameOf(lsn: number, payload: Uint8Array): Buffer {
  if (!Number.isSafeInteger(lsn) || lsn < 0) throw new TypeError(`bad lsn ${lsn}`);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  frame.writeUInt32LE(payload.length, 0);
  frame.writeUInt32LE(lsn % 2 ** 32, 8);
  frame.writeUInt32LE(Math.floor(lsn / 2 ** 32), 12);
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
function recordFromPayload(lsn: number, decoded: unknown): LogRecord {
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

function errorMessage(e: unknown): string {
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

interface ScanResult {
  validBytes: number;
  lastLsn?: number;
  problem?: string;
}

/** Reads exactly `length` bytes at `position`. */
async function readExactly(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) throw new Error(`file shrank while reading (wanted ${length} bytes at ${position})`);
    got += bytesRead;
  }
  return buf;
}

/**
 * Walks the frames of a file of `size` bytes in chunks, calling `onFrame` for each good frame
 * (an exception from onFrame counts as an undecodable payload). Stops at the first bad frame.
 */
async function scanFile(
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
    if (!f.ok) return { validBytes: at, lastLsn, problem: describeFault(f, at) };
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

const SEGMENT_RE = /^wal-(\d{16})\.log$/;
const CHECKPOINT_FILE = 'checkpoint.dat';
const CHECKPOINT_TMP = 'checkpoint.tmp';

interface Segment {
  start: number;
  file: string; // absolute path
}

function segmentName(start: number): string {
  return `wal-${String(start).padStart(16, '0')}.log`;
}

/** Log segments in the directory, ordered by start lsn. */
async function listSegments(dir: string): Promise<Segment[]> {
  const segs: Segment[] = [];
  for (const name of await readdir(dir)) {
    const m = SEGMENT_RE.exec(name);
    if (m) segs.push({ start: Number(m[1]), file: path.join(dir, name) });
  }
  return segs.sort((a, b) => a.start - b.start);
}

/** fsync a directory so that creates/renames/unlinks in it are durable. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function unlinkIfExists(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** Writes all of `data` at the current file position (handles short writes). */
async function writeAll(fh: FileHandle, data: Buffer): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const { bytesWritten } = await fh.write(data, off, data.length - off);
    off += bytesWritten;
  }
}

/** Collects frames and writes them in batches of about `limit` bytes. */
class BatchWriter {
  private pending: Buffer[] = [];
  private bytes = 0;
  constructor(
    private readonly fh: FileHandle,
    private readonly limit: number,
  ) {}

  async add(frame: Buffer): Promise<void> {
    this.pending.push(frame);
    this.bytes += frame.length;
    if (this.bytes >= this.limit) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const data = Buffer.concat(this.pending, this.bytes);
    this.pending = [];
    this.bytes = 0;
    await writeAll(this.fh, data);
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoint file
// ---------------------------------------------------------------------------------------------

const CHECKPOINT_MAGIC = 'penncloud-checkpoint';
const CHECKPOINT_END = 'penncloud-checkpoint-end';
const CHECKPOINT_VERSION = 1;
const CHECKPOINT_BATCH_BYTES = 4 << 20;

interface CheckpointData {
  lsn: number;
  epoch: number;
  cells: Array<[string, string, Uint8Array]>;
}

/**
 * Writes the checkpoint durably: checkpoint.tmp (streamed in batches), fdatasync, rename to
 * checkpoint.dat, fsync the directory. On failure before the rename the tmp file is removed.
 */
async function writeCheckpointFile(
  dir: string,
  lsn: number,
  epoch: number,
  cells: Iterable<[string, string, Uint8Array]>,
  maxPayload: number,
): Promise<void> {
  const tmp = path.join(dir, CHECKPOINT_TMP);
  const fh = await open(tmp, 'w');
  try {
    const out = new BatchWriter(fh, CHECKPOINT_BATCH_BYTES);
    await out.add(frameOf(0, cborEncoder.encode([CHECKPOINT_MAGIC, CHECKPOINT_VERSION, lsn, epoch])));
    let seq = 0;
    for (const [row, col, value] of cells) {
      seq++;
      const frame = encodeFrame({ lsn: seq, epoch, kind: 'put', row, col, value });
      const payloadBytes = frame.length - FRAME_HEADER_BYTES;
      if (payloadBytes > maxPayload) throw new RangeError(`checkpoint cell ${row}/${col}: ${payloadBytes} bytes > maxRecordBytes`);
      await out.add(frame);
    }
    await out.add(frameOf(seq + 1, cborEncoder.encode([CHECKPOINT_END, seq])));
    await out.flush();
    await fh.datasync();
    await fh.close();
    await rename(tmp, path.join(dir, CHECKPOINT_FILE));
  } catch (e) {
    await fh.close().catch(() => {}); // may already be closed
    await unlinkIfExists(tmp).catch(() => {});
    throw e;
  }
  await syncDir(dir);
}

/** Reads checkpoint.dat, or returns null if there is none. Any damage is a hard error. */
async function readCheckpointFile(dir: string, maxPayload: number): Promise<CheckpointData | null> {
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
    let header: { lsn: number; epoch: number } | undefined;
    let footerCount: number | undefined;
    const cells: Array<[string, string, Uint8Array]> = [];
    const scan = await scanFile(fh, size, { expectFirstLsn: 0, maxPayload }, (seq, payload) => {
      if (footerCount !== undefined) throw new Error('frame after the footer');
      const decoded: unknown = cborDecoder.decode(payload);
      if (seq === 0) header = parseCheckpointHeader(decoded);
      else if (Array.isArray(decoded) && decoded[0] === CHECKPOINT_END) footerCount = Number(decoded[1]);
      else cells.push(cellFromRecord(recordFromPayload(seq, decoded)));
    });
    if (scan.problem) throw new Error(scan.problem);
    if (!header) throw new Error('empty file');
    if (footerCount === undefined) throw new Error('missing footer (incomplete file)');
    if (footerCount !== cells.length) throw new Error(`footer says ${footerCount} cells, found ${cells.length}`);
    return { lsn: header.lsn, epoch: header.epoch, cells };
  } catch (e) {
    throw new Error(`corrupt checkpoint ${file}: ${errorMessage(e)}`, { cause: e });
  } finally {
    await fh.close();
  }
}

function parseCheckpointHeader(decoded: unknown): { lsn: number; epoch: number } {
  if (!Array.isArray(decoded) || decoded[0] !== CHECKPOINT_MAGIC) throw new Error('bad header');
  const [, version, lsn, epoch] = decoded as unknown[];
  if (version !== CHECKPOINT_VERSION) throw new Error(`unsupported checkpoint version ${String(version)}`);
  if (!Number.isSafeInteger(lsn) || !Number.isSafeInteger(epoch)) throw new Error('bad header lsn/epoch');
  return { lsn: lsn as number, epoch: epoch as number };
}

function cellFromRecord(rec: LogRecord): [string, string, Uint8Array] {
  if (rec.kind !== 'put' || !rec.value) throw new Error('checkpoint cell is not a put with a value');
  return [rec.row, rec.col, rec.value];
}

// ---------------------------------------------------------------------------------------------
// Segment recovery
// ---------------------------------------------------------------------------------------------

interface SegmentsRecovered {
  records: LogRecord[]; // lsn > checkpointLsn, consecutive
  bytes: number; // frame bytes of those records
  lastLsn: number; // last lsn found in the log (0 if none)
  last?: { seg: Segment; nextLsn: number }; // the last surviving segment and the lsn it would continue with
}

/**
 * Reads all segments after the checkpoint. Segments wholly covered by the checkpoint are deleted.
 * At the first torn/corrupt frame the segment is truncated to its valid prefix (and synced) and
 * all later segments are deleted; the same happens at a gap between segments.
 */
async function recoverSegments(
  dir: string,
  checkpointLsn: number,
  maxPayload: number,
  report: (msg: string) => void,
): Promise<SegmentsRecovered> {
  let segs = await listSegments(dir);
  let dirChanged = false;
  // A segment is obsolete if the next one already starts at or before checkpointLsn+1.
  while (segs.length >= 2 && segs[1]!.start <= checkpointLsn + 1) {
    await unlink(segs.shift()!.file);
    dirChanged = true;
  }
  const out: SegmentsRecovered = { records: [], bytes: 0, lastLsn: 0 };
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    const expected = i === 0 ? Math.min(seg.start, checkpointLsn + 1) : out.last!.nextLsn;
    if (seg.start !== expected) {
      const dropped = await deleteSegments(segs.slice(i));
      report(`${path.basename(seg.file)}: starts at lsn ${seg.start} but lsn ${expected} was expected (missing log); deleted ${dropped}`);
      dirChanged = true;
      break;
    }
    const { problem, nextLsn } = await recoverOneSegment(seg, checkpointLsn, maxPayload, out);
    out.last = { seg, nextLsn };
    if (problem) {
      const later = segs.slice(i + 1);
      const dropped = later.length ? `; deleted ${await deleteSegments(later)}` : '';
      report(`${path.basename(seg.file)}: ${problem}${dropped}`);
      dirChanged ||= later.length > 0;
      break;
    }
  }
  if (dirChanged) await syncDir(dir);
  return out;
}

/** Scans one segment, appending records past the checkpoint to `out`; truncates a bad tail. */
async function recoverOneSegment(
  seg: Segment,
  checkpointLsn: number,
  maxPayload: number,
  out: SegmentsRecovered,
): Promise<{ problem?: string; nextLsn: number }> {
  const fh = await open(seg.file, 'r+');
  try {
    const size = (await fh.stat()).size;
    const scan = await scanFile(fh, size, { expectFirstLsn: seg.start, maxPayload }, (lsn, payload, frameBytes) => {
      const rec = decodeRecord(lsn, payload);
      if (lsn <= checkpointLsn) return;
      out.records.push(rec);
      out.bytes += frameBytes;
    });
    const nextLsn = scan.lastLsn === undefined ? seg.start : scan.lastLsn + 1;
    out.lastLsn = Math.max(out.lastLsn, nextLsn - 1);
    if (!scan.problem) return { nextLsn };
    await fh.truncate(scan.validBytes);
    await fh.sync();
    return { nextLsn, problem: `${scan.problem}; truncated from ${size} to ${scan.validBytes} bytes` };
  } finally {
    await fh.close();
  }
}

async function deleteSegments(segs: Segment[]): Promise<string> {
  for (const s of segs) await unlink(s.file);
  return segs.map((s) => path.basename(s.file)).join(', ');
}

// ---------------------------------------------------------------------------------------------
// The Wal
// ---------------------------------------------------------------------------------------------

export interface WalOptions {
  /**
   * Largest encoded record payload (CBOR of epoch, kind, row, col, value) that append accepts and
   * recovery believes; i.e. max value size + max row/col sizes + ~64 bytes of slack.
   */
  maxRecordBytes: number;
  /** Told about every recovery problem and about an I/O failure of the WAL. */
  onProblem?: (msg: string) => void;
}

export interface Recovered {
  checkpointLsn: number;
  checkpointEpoch: number;
  cells: Array<[row: string, col: string, value: Uint8Array]>;
  records: LogRecord[];
  problems: string[];
}

interface Waiter {
  lsn: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

/** Log segments are written with O_DSYNC: every write is durable (like write + fdatasync) when it returns. */
const SEGMENT_NEW = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_DSYNC;
const SEGMENT_APPEND = fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_DSYNC;

/** Upper bound on bytes handed to one write+datasync; the rest waits for the next round. */
const MAX_FLUSH_BYTES = 8 << 20;

export class Wal {
  private _lastLsn: number;
  private _durableLsn: number;
  /** Encoded frames appended but not yet handed to the writer; queue[0] has lsn handedLsn+1. */
  private queue: Buffer[] = [];
  private handedLsn: number;
  /** Waiting whenDurable calls, ordered by lsn. */
  private waiters: Waiter[] = [];
  private flushScheduled = false;
  private flushing: Promise<void> | null = null;
  private failure: Error | null = null;
  private closing = false; // close() called: no more appends
  private closed = false; // close() finished
  private checkpointing: Promise<void> | null = null;
  private syncs = 0;
  private sinceCheckpoint: number;

  private constructor(
    private readonly dir: string,
    private readonly opts: WalOptions,
    private segment: FileHandle,
    private segmentStart: number,
    lastLsn: number,
    sinceCheckpoint: number,
  ) {
    this._lastLsn = this._durableLsn = this.handedLsn = lastLsn;
    this.sinceCheckpoint = sinceCheckpoint;
  }

  /** Opens (creating if needed) the tablet directory and recovers its state. */
  static async open(dir: string, opts: WalOptions): Promise<{ wal: Wal; recovered: Recovered }> {
    await mkdir(dir, { recursive: true });
    await unlinkIfExists(path.join(dir, CHECKPOINT_TMP));
    const checkpoint = await readCheckpointFile(dir, opts.maxRecordBytes);
    const checkpointLsn = checkpoint?.lsn ?? 0;
    const problems: string[] = [];
    const report = (msg: string) => {
      problems.push(msg);
      opts.onProblem?.(msg);
    };
    const log = await recoverSegments(dir, checkpointLsn, opts.maxRecordBytes, report);
    const lastLsn = Math.max(checkpointLsn, log.lastLsn);
    const { fh, start } = await openActiveSegment(dir, checkpointLsn, lastLsn, log.last);
    const wal = new Wal(dir, opts, fh, start, lastLsn, log.bytes);
    const recovered: Recovered = {
      checkpointLsn,
      checkpointEpoch: checkpoint?.epoch ?? 0,
      cells: checkpoint?.cells ?? [],
      records: log.records,
      problems,
    };
    return { wal, recovered };
  }

  /** Last lsn appended (durable or not). */
  get lastLsn(): number {
    return this._lastLsn;
  }

  /** True once an I/O error made the log unusable. */
  get failed(): boolean {
    return this.failure !== null;
  }

  /** Last lsn known to be fdatasync'd. */
  get durableLsn(): number {
    return this._durableLsn;
  }

  /** Encoded bytes appended to the log since the last checkpoint (including recovered ones). */
  get bytesSinceCheckpoint(): number {
    return this.sinceCheckpoint;
  }

  /** Number of log fdatasyncs performed so far (to observe group commit). */
  get syncCount(): number {
    return this.syncs;
  }

  /** Buffers a record for the next group commit. rec.lsn must be lastLsn+1. Does not wait. */
  append(rec: LogRecord): void {
    this.assertUsable('append');
    if (this.checkpointing) throw new Error('append during checkpoint');
    if (rec.lsn !== this._lastLsn + 1) throw new Error(`append: lsn ${rec.lsn} is not lastLsn+1 (${this._lastLsn + 1})`);
    const frame = encodeFrame(rec);
    const payloadBytes = frame.length - FRAME_HEADER_BYTES;
    if (payloadBytes > this.opts.maxRecordBytes) {
      throw new RangeError(`append: record of ${payloadBytes} bytes exceeds maxRecordBytes ${this.opts.maxRecordBytes}`);
    }
    this.queue.push(frame);
    this._lastLsn = rec.lsn;
    this.sinceCheckpoint += frame.length;
    this.scheduleFlush();
  }

  /** Resolves once durableLsn >= lsn; rejects if the WAL failed or was closed first. */
  whenDurable(lsn: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (lsn <= this._durableLsn) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error('WAL closed'));
    if (lsn > this._lastLsn) return Promise.reject(new RangeError(`whenDurable(${lsn}): not appended yet (lastLsn ${this._lastLsn})`));
    return new Promise((resolve, reject) => this.addWaiter({ lsn, resolve, reject }));
  }

  /**
   * Writes a checkpoint of the full tablet state as of `lsn` (which must be lastLsn; nothing may
   * be appended until it finishes), then starts a new segment at lsn+1 and deletes older ones.
   */
  async checkpoint(lsn: number, epoch: number, cells: Iterable<[string, string, Uint8Array]>): Promise<void> {
    this.assertUsable('checkpoint');
    if (this.checkpointing) throw new Error('checkpoint already in progress');
    if (lsn !== this._lastLsn) throw new Error(`checkpoint: lsn ${lsn} is not lastLsn (${this._lastLsn})`);
    const run = this.runCheckpoint(lsn, epoch, cells);
    this.checkpointing = run.catch(() => {});
    try {
      await run;
    } finally {
      this.checkpointing = null;
    }
  }

  /**
   * Replaces the whole log with a snapshot: afterwards the tablet's durable state is exactly `cells`
   * as of (lsn, epoch), whatever the log held before (a replica whose log diverged, or fell behind
   * the primary's memory). Segments go first, so a crash midway leaves an older state, never a mix.
   */
  async install(lsn: number, epoch: number, cells: Iterable<[string, string, Uint8Array]>): Promise<void> {
    this.assertUsable('install');
    if (this.checkpointing) throw new Error('install during checkpoint');
    const run = (async () => {
      await this.whenDurable(this._lastLsn);
      await this.flushing;
      await this.segment.close();
      for (const seg of await listSegments(this.dir)) await unlink(seg.file);
      await syncDir(this.dir);
      await writeCheckpointFile(this.dir, lsn, epoch, cells, this.opts.maxRecordBytes);
      this.segment = await open(path.join(this.dir, segmentName(lsn + 1)), SEGMENT_NEW);
      this.segmentStart = lsn + 1;
      await syncDir(this.dir);
      this._lastLsn = this._durableLsn = this.handedLsn = lsn;
      this.sinceCheckpoint = 0;
      this.resolveWaiters();
      this.rejectWaiters(new Error('records replaced by a snapshot'));
    })();
    this.checkpointing = run.catch((e: unknown) => this.fail(e));
    try {
      await run;
    } finally {
      this.checkpointing = null;
    }
  }

  /**
   * Behaves like a crash: whatever is appended but not yet written is lost; a write already in
   * progress is allowed to finish (so it cannot land after a successor reopened the files).
   */
  async abandon(): Promise<void> {
    this.closing = true;
    this.queue = [];
    this.handedLsn = this._durableLsn;
    await this.checkpointing;
    await this.flushing;
    this.closed = true;
    this.rejectWaiters(new Error('WAL abandoned'));
    await this.segment.close().catch(() => {});
  }

  /** Flushes everything appended, waits for it to be durable, and closes the files. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.checkpointing;
    if (!this.failure) await this.whenDurable(this._lastLsn).catch(() => {});
    await this.flushing;
    this.closed = true;
    this.rejectWaiters(this.failure ?? new Error('WAL closed'));
    await this.segment.close().catch(() => {});
  }

  // -- group commit ---------------------------------------------------------------------------

  /**
   * Starts a flush on the next turn of the event loop (so appends made in the same turn share
   * it) unless one is already scheduled or running; a running flush starts the next one itself.
   */
  private scheduleFlush(): void {
    if (this.flushScheduled || this.flushing) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.startFlush();
    });
  }

  /** Takes up to MAX_FLUSH_BYTES of queued frames (at least one) and writes + syncs them. */
  private startFlush(): void {
    if (this.flushing || this.failure || this.queue.length === 0) return;
    let n = 0;
    let bytes = 0;
    while (n < this.queue.length && (n === 0 || bytes + this.queue[n]!.length <= MAX_FLUSH_BYTES)) {
      bytes += this.queue[n]!.length;
      n++;
    }
    const frames = this.queue.splice(0, n);
    this.handedLsn += n;
    const data = n === 1 ? frames[0]! : Buffer.concat(frames, bytes);
    this.flushing = this.writeAndSync(data, this.handedLsn);
  }

  private async writeAndSync(data: Buffer, lastLsn: number): Promise<void> {
    try {
      // Segments are opened with O_DSYNC: the write returns once the data is durable, which saves
      // a second trip through libuv's thread pool for a separate fdatasync.
      await writeAll(this.segment, data);
    } catch (e) {
      this.flushing = null;
      this.fail(e);
      return;
    }
    this.syncs++;
    this.flushing = null;
    this._durableLsn = lastLsn;
    this.resolveWaiters();
    this.startFlush(); // whatever accumulated meanwhile
  }

  private addWaiter(w: Waiter): void {
    const ws = this.waiters;
    if (ws.length === 0 || ws[ws.length - 1]!.lsn <= w.lsn) {
      ws.push(w);
      return;
    }
    let lo = 0; // binary search for the first waiter with a larger lsn
    let hi = ws.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ws[mid]!.lsn <= w.lsn) lo = mid + 1;
      else hi = mid;
    }
    ws.splice(lo, 0, w);
  }

  private resolveWaiters(): void {
    let n = 0;
    while (n < this.waiters.length && this.waiters[n]!.lsn <= this._durableLsn) n++;
    for (const w of this.waiters.splice(0, n)) w.resolve();
  }

  private rejectWaiters(err: Error): void {
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  /** Enters the failed state: every waiter and every later call is rejected. */
  private fail(e: unknown): void {
    if (this.failure) return;
    this.failure = new Error(`WAL ${this.dir} failed: ${errorMessage(e)}`, { cause: e });
    this.queue = [];
    this.opts.onProblem?.(this.failure.message);
    this.rejectWaiters(this.failure);
  }

  private assertUsable(op: string): void {
    if (this.failure) throw this.failure;
    if (this.closing) throw new Error(`${op}: WAL closed`);
  }

  // -- checkpoint -----------------------------------------------------------------------------

  private async runCheckpoint(lsn: number, epoch: number, cells: Iterable<[string, string, Uint8Array]>): Promise<void> {
    // Make the log cover `lsn` and let the flusher go idle before the segment is swapped.
    await this.whenDurable(lsn);
    await writeCheckpointFile(this.dir, lsn, epoch, cells, this.opts.maxRecordBytes);
    try {
      await this.rotateSegment(lsn + 1);
    } catch (e) {
      this.fail(e);
      throw this.failure;
    }
    this.sinceCheckpoint = 0;
  }

  /** Makes `start` the active segment (if it is not already) and deletes all older segments. */
  private async rotateSegment(start: number): Promise<void> {
    if (this.segmentStart !== start) {
      const fh = await open(path.join(this.dir, segmentName(start)), SEGMENT_NEW);
      const old = this.segment;
      this.segment = fh;
      this.segmentStart = start;
      await old.close();
      await syncDir(this.dir);
    }
    for (const seg of await listSegments(this.dir)) {
      if (seg.start < start) await unlink(seg.file); // oldest first, so survivors stay contiguous
    }
    await syncDir(this.dir);
  }
}

/**
 * After recovery: continue in the last segment if it ends exactly at lastLsn and starts after
 * the checkpoint. Otherwise (no segments, the checkpoint is ahead of the log, or we crashed
 * between writing a checkpoint and rotating) start a fresh segment at lastLsn+1, so that the
 * old segment becomes obsolete.
 */
async function openActiveSegment(
  dir: string,
  checkpointLsn: number,
  lastLsn: number,
  last: { seg: Segment; nextLsn: number } | undefined,
): Promise<{ fh: FileHandle; start: number }> {
  if (last && last.nextLsn === lastLsn + 1 && last.seg.start > checkpointLsn) {
    return { fh: await open(last.seg.file, SEGMENT_APPEND), start: last.seg.start };
  }
  const start = lastLsn + 1;
  const fh = await open(path.join(dir, segmentName(start)), SEGMENT_NEW);
  await syncDir(dir);
  return { fh, start };
}
