/**
 * Big values of a tablet, written once, and read back when a reply needs them.
 *
 * A checkpoint holds the whole tablet. With every value inline, each checkpoint rewrote every value the
 * tablet held: a drive tablet full of 1 MiB chunks was rewritten whole for every few new chunks, so the
 * cost of a checkpoint grew with the data stored, not with the data written (200 MB drive uploads
 * slowed from run to run, 141 -> 64 MB/s over three). Now a value of at least VALUE_FILE_BYTES lives in
 * one of the tablet's value files (`tablet-NNNN/values-NNNNNN.dat`, append only):
 * - a put's value is written there by the worker log, before the log write holding its record, which
 *   holds the reference [file, offset, length, crc32] instead of the bytes (reserve: the place is given
 *   at append time, the bytes written by the next flushReserved);
 * - a checkpoint cell holds the reference too: the value's own (a value written by the log, or by an
 *   earlier checkpoint, is referenced where it lies), or a new one for a value not yet in a file.
 * The tablet holds the value cold (a ColdValue, wal.ts) once it is durable here: the reference, not
 * the bytes; a tablet loads with its big values cold; replies that carry them are completed by reading
 * (tablet.ts).
 *
 * Invariants:
 * - A reference reaches the log or a checkpoint only once its bytes are durable: values are appended
 *   O_DSYNC (block-writer.ts: O_DIRECT, past the page cache) and a new file's name is synced, before
 *   the log write holding the record, or the checkpoint's rename. So a durable record whose value is
 *   missing is damage (recovery drops it and what follows, and says so).
 * - Values are written in the order their places were given (one write chain); a failed write fails
 *   the files for good (later places would be wrong), and with them the worker log.
 * - A value file is deleted only when nothing durable references it: after a checkpoint is renamed
 *   and synced, every file it does not reference is dead, except the one being appended to, files
 *   with values not yet written, and files that log records above the checkpoint's mark reference
 *   (they are replayed on top of it). A dead file is deleted by a checkpoint once it has been dead for
 *   `deadGraceMs` (a minute in a node: a catch-up snapshot holds the cold values of cells as they were
 *   when it was taken, and reads them while it is sent).
 * - Files are never appended to across processes: each ValueFiles starts a new file, so values written
 *   after a crash never follow a torn tail.
 * - Compaction: a file whose live bytes (those the last checkpoint referenced, plus those appended
 *   since, which no checkpoint has counted yet) are under half its size has its live values copied to
 *   the active file by the next checkpoint, and is then deleted: the files hold at most about twice the
 *   live bytes, plus the active file. Files that log records above the mark reference are not compacted.
 * - Every read checks the length and the crc. A checkpoint referencing a missing file, or a value
 *   past a file's end, does not load.
 * - Files from `keepFrom()` on (numbers only grow) hold values the tablet's catch-up ring holds cold and
 *   may still send (replica-core.ts, RecordRing): they are neither compacted nor deleted. The ring
 *   counts those values against its byte budget, so this keeps at most about that much more on disk.
 * - A file is not deleted while a read of it is in progress (pins), and a cold value copied out of a
 *   compacted file is read from where it went (`moved`) until its cell points there.
 * - At most a ReadBudget of cold bytes (64 MiB per worker) is read at once; later reads wait in order.
 */
import { BlockWriter } from './block-writer.js';
import { crc32 } from 'node:zlib';
import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { ColdValue, errorMessage, mkdirDurable, readExactly, syncDir, unlinkIfExists, type CellValue, type CheckpointValues, type ValueRef } from './wal.js';

/** Values at least this big are kept in value files, not inside checkpoints. */
export const VALUE_FILE_BYTES = 64 * 1024;
/** By default a new value file is started once the active one is this big (its dead values wait for that). */
export const VALUE_FILE_ROTATE_BYTES = 16 << 20;
/** A file with live bytes under this share of its size is compacted by the next checkpoint. */
const COMPACT_BELOW = 0.5;

const FILE_RE = /^values-(\d{6,})\.dat$/;

export function valueFileName(no: number): string {
  return `values-${String(no).padStart(6, '0')}.dat`;
}

/**
 * Bytes of cold values being read at once, shared by a worker's tablets: a read beyond it waits for
 * earlier ones (in order). Without it, thousands of GETs of cold 1 MiB chunks in flight (a client may
 * have 4096) each allocated their own buffer at once; hot values had been shared by every reply.
 */
export class ReadBudget {
  private inUse = 0;
  private readonly waiting: Array<{ n: number; go: () => void }> = [];
  constructor(readonly limit: number) {}

  /** Waits until `bytes` (at most the whole budget) may be read; returns the release. */
  async acquire(bytes: number): Promise<() => void> {
    const n = Math.min(bytes, this.limit);
    if (this.waiting.length > 0 || this.inUse + n > this.limit) await new Promise<void>((go) => this.waiting.push({ n, go }));
    else this.inUse += n;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inUse -= n;
      while (this.waiting.length > 0 && this.inUse + this.waiting[0]!.n <= this.limit) {
        const w = this.waiting.shift()!;
        this.inUse += w.n;
        w.go();
      }
    };
  }

  get queued(): number {
    return this.waiting.length;
  }
}

/** The default ReadBudget of a worker. */
export const COLD_READ_BYTES = 64 << 20;

interface ActiveFile {
  no: number;
  /** Opened by its first write (in the write chain). */
  writer: BlockWriter | null;
  /** Bytes reserved in it: where the next value goes. */
  end: number;
}

/** A value given a place (reserve) and not yet written. */
interface Reserved {
  file: ActiveFile;
  value: Uint8Array;
  ref: ValueRef;
  /** A cold value whose file is being compacted: once written, reads of it go here (`moved`). */
  copyOf?: ColdValue;
}

/** At most this many bytes of values per write. */
const WRITE_BATCH_BYTES = 8 << 20;
/** Files kept open for reading while idle, per tablet (an open + close per read cost 80-100 µs here, more than a cached 1 MiB read). */
const READERS_KEPT = 2;

/** A file open for reading, and the reads using it now. */
interface Reader {
  fh: Promise<FileHandle>;
  users: number;
}

/** One tablet's value files. One checkpoint or load at a time (the worker log ensures it); reads any time. */
export class ValueFiles implements CheckpointValues {
  readonly minBytes = VALUE_FILE_BYTES;
  /** The durable reference of values this process has written or read. */
  private readonly refs = new WeakMap<Uint8Array, ValueRef>();
  /** Cold values whose file a checkpoint compacted: where their bytes lie now. */
  private readonly moved = new WeakMap<ColdValue, ValueRef>();
  /** Bytes in each value file on disk. */
  private readonly sizes: Map<number, number>;
  /** Bytes of each file that the last checkpoint written (or read) references. */
  private live = new Map<number, number>();
  /** The same, for the checkpoint being written (refFor counts into it). */
  private tally = new Map<number, number>();
  /** Files whose live values the checkpoint in progress copies to the active file. */
  private compacting = new Set<number>();
  /** Reads in progress, by file. */
  private readonly pins = new Map<number, number>();
  /** Files open for reading (in order of last use: the first is the least recent). */
  private readonly readers = new Map<number, Reader>();
  private closed = false;
  private active: ActiveFile | null = null;
  /** Files rotated away whose writers are still open (closed once their reserved values are written). */
  private retired: ActiveFile[] = [];
  /** Values reserved and not yet written, in reservation order, and their bytes. */
  private pending: Reserved[] = [];
  private pendingBytes = 0;
  /** Writes happen one at a time, in this chain. */
  private writeChain: Promise<void> = Promise.resolve();
  private failure: Error | null = null;
  /**
   * Per file: bytes reserved (or replayed from the log at start-up) since the last checkpoint began; no
   * checkpoint has counted them yet, so they may be live (without them, every file the log appended to
   * would look dead and be copied).
   */
  private fresh = new Map<number, number>();
  private freshAtBegin = new Map<number, number>();
  /** Per file: the highest log seq of a record (appended by this process) that references it. */
  private readonly logSeqs = new Map<number, number>();
  private nextNo: number;
  /** The lowest file number the tablet's catch-up ring still needs (null: none); set by the worker log. */
  keepFrom: () => number | null = () => null;

  /**
   * Files nothing references any more, since when: deleted once `deadGraceMs` has passed. A catch-up
   * snapshot (kept up to a minute) may still read a value of one after its cell changed.
   */
  private readonly dead = new Map<number, number>();

  private constructor(
    readonly dir: string,
    sizes: Map<number, number>,
    private readonly rotateBytes: number,
    private readonly budget: ReadBudget,
    private readonly deadGraceMs: number,
  ) {
    this.sizes = sizes;
    this.nextNo = Math.max(0, ...sizes.keys()) + 1;
  }

  /** `deadGraceMs`: how long a file nothing references is kept before it is deleted (0: at once). */
  static async open(dir: string, rotateBytes = VALUE_FILE_ROTATE_BYTES, budget = new ReadBudget(COLD_READ_BYTES), deadGraceMs = 0): Promise<ValueFiles> {
    const sizes = new Map<number, number>();
    let names: string[] = [];
    try {
      names = await readdir(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    for (const name of names) {
      const m = FILE_RE.exec(name);
      if (m) sizes.set(Number(m[1]), (await stat(path.join(dir, name))).size);
    }
    return new ValueFiles(dir, sizes, rotateBytes, budget, deadGraceMs);
  }

  /** Bytes in value files (for reports and tests). */
  get bytesOnDisk(): number {
    let n = 0;
    for (const s of this.sizes.values()) n += s;
    return n;
  }

  /**
   * A checkpoint with log mark `logMark` starts: sparse files (mostly dead values) will have their live
   * values copied, unless a log record above the mark references them (it is replayed after the checkpoint).
   */
  beginCheckpoint(logMark: number): void {
    this.tally = new Map();
    this.compacting = new Set();
    const ringFloor = this.keepFrom() ?? Infinity;
    for (const [no, size] of this.sizes) {
      if (no === this.active?.no || (this.logSeqs.get(no) ?? 0) > logMark || this.dead.has(no) || no >= ringFloor) continue;
      if ((this.live.get(no) ?? 0) + (this.fresh.get(no) ?? 0) < size * COMPACT_BELOW) this.compacting.add(no);
    }
    this.freshAtBegin = new Map(this.fresh);
  }

  /**
   * Gives `value` its place at the end of the active file, now (the bytes are written by the next
   * flushReserved). `logSeq`: the log record at that seq references it, so the file stays until a
   * checkpoint's mark covers that record.
   */
  reserve(value: Uint8Array, logSeq?: number, copyOf?: ColdValue): ValueRef {
    if (this.failure) throw this.failure;
    let file = this.active;
    if (file && file.end > 0 && file.end + value.length > this.rotateBytes) {
      this.retired.push(file);
      file = null;
    }
    if (!file) {
      file = { no: this.nextNo++, writer: null, end: 0 };
      this.active = file;
    }
    const ref: ValueRef = [file.no, file.end, value.length, crc32(value)];
    file.end += value.length;
    this.fresh.set(file.no, (this.fresh.get(file.no) ?? 0) + value.length);
    this.pending.push({ file, value, ref, copyOf });
    this.pendingBytes += value.length;
    if (logSeq !== undefined) this.logSeqs.set(file.no, Math.max(logSeq, this.logSeqs.get(file.no) ?? 0));
    return ref;
  }

  /** Writes every value reserved so far, durably (with the name of a new file); resolves once they are on disk. */
  flushReserved(): Promise<void> {
    const run = this.writeChain.then(() => this.writePending());
    this.writeChain = run.catch(() => undefined);
    return run;
  }

  private async writePending(): Promise<void> {
    if (this.failure) throw this.failure;
    const batch = this.pending.splice(0);
    this.pendingBytes = 0;
    try {
      for (let i = 0; i < batch.length; ) {
        const file = batch[i]!.file;
        const parts: Uint8Array[] = [];
        let bytes = 0;
        let j = i;
        while (j < batch.length && batch[j]!.file === file && (j === i || bytes + batch[j]!.value.length <= WRITE_BATCH_BYTES)) {
          parts.push(batch[j]!.value);
          bytes += batch[j]!.value.length;
          j++;
        }
        if (!file.writer) {
          await mkdirDurable(this.dir); // (a new tablet's first value: its directory must survive a crash too)
          file.writer = await BlockWriter.open(path.join(this.dir, valueFileName(file.no)), 'new');
          await syncDir(this.dir); // its name is durable before any record or checkpoint references it
        }
        const at = batch[i]!.ref[1];
        if (file.writer.length !== at) throw new Error(`value file ${file.no}: a write at byte ${file.writer.length}, reserved at ${at}`);
        await file.writer.append(parts, bytes); // durable when it returns
        this.sizes.set(file.no, file.writer.length);
        for (let k = i; k < j; k++) {
          const r = batch[k]!;
          this.refs.set(r.value, r.ref);
          if (r.copyOf) this.moved.set(r.copyOf, r.ref); // the tablet's cell is pointed there after the checkpoint (coldOf)
        }
        i = j;
      }
      // A file rotated away whose values are all written is complete: cut its padding, close it.
      const done = this.retired.filter((f) => !this.pending.some((r) => r.file === f));
      this.retired = this.retired.filter((f) => !done.includes(f));
      for (const f of done) if (f.writer) await cutAndClose(f.writer);
    } catch (e) {
      // Reserved places after a failed write are wrong now: no more writes.
      this.failure = new Error(`value files in ${this.dir} failed: ${errorMessage(e)}`, { cause: e });
      this.pending = [];
      this.pendingBytes = 0;
      throw this.failure;
    }
  }

  /**
   * The reference a checkpoint writes for `value`: its durable one, or a new one at the end of the
   * active file (a cold value in a file being compacted is read and written again). New places are
   * written in batches of WRITE_BATCH_BYTES, the last by sync(), before the checkpoint's rename.
   */
  async refFor(cell: CellValue): Promise<ValueRef> {
    const ref = await this.placeOf(cell);
    this.tally.set(ref[0], (this.tally.get(ref[0]) ?? 0) + ref[2]);
    return ref;
  }

  private async placeOf(cell: CellValue): Promise<ValueRef> {
    let value: Uint8Array;
    let copyOf: ColdValue | undefined;
    if (cell instanceof ColdValue) {
      const now = this.moved.get(cell) ?? cell.ref;
      if (this.usable(now)) return now;
      value = (await this.readAll([now]))[0]!;
      copyOf = cell;
    } else {
      value = cell;
      const known = this.refs.get(value);
      if (known && this.usable(known)) return known; // written once: by the log's append, or an earlier checkpoint
    }
    const ref = this.reserve(value, undefined, copyOf);
    if (this.pendingBytes >= WRITE_BATCH_BYTES) await this.flushReserved(); // (bounds the bytes held for it)
    return ref;
  }

  /** The file of `ref` exists and is not being compacted or deleted: a checkpoint may reference it as it is. */
  private usable(ref: ValueRef): boolean {
    return this.sizes.has(ref[0]) && !this.compacting.has(ref[0]) && !this.dead.has(ref[0]);
  }

  /**
   * A log record replayed at start-up references `ref`: throws unless it lies inside an existing file;
   * its bytes count as possibly live, as those of an append do.
   */
  logged(ref: ValueRef): void {
    this.check(ref);
    this.fresh.set(ref[0], (this.fresh.get(ref[0]) ?? 0) + ref[2]);
  }

  /** Throws unless `ref` lies inside an existing value file. */
  private check(ref: ValueRef): void {
    const [no, offset, length] = ref;
    const file = path.join(this.dir, valueFileName(no));
    const size = this.sizes.get(no);
    if (size === undefined) throw new Error(`value file ${file} is missing`);
    if (offset + length > size) throw new Error(`value file ${file}: a value at ${offset} of ${length} bytes lies past its end (${size} bytes)`);
  }

  /**
   * What a cell holding `value` should hold after a checkpoint: for bytes the checkpoint made durable
   * in a value file, a cold value; for a cold value whose file the checkpoint compacted, one pointing
   * where its bytes lie now. Null: keep it as it is.
   */
  coldOf(value: CellValue): ColdValue | null {
    const ref = value instanceof ColdValue ? this.moved.get(value) : this.refs.get(value);
    return ref && this.sizes.has(ref[0]) ? new ColdValue(ref) : null;
  }

  /** Makes every value reserved so far durable (before a checkpoint referencing them is renamed into place). */
  sync(): Promise<void> {
    return this.flushReserved();
  }

  /**
   * The checkpoint with log mark `logMark` is now on disk and references what refFor returned since
   * beginCheckpoint, and nothing else: the other files are deleted, except the active one, files still
   * being written, and files that log records above the mark reference.
   */
  async collect(logMark: number): Promise<void> {
    const used = this.tally;
    this.live = used;
    this.compacting = new Set();
    // What was reserved before this checkpoint began, it has counted (if live); later values stay fresh.
    for (const [no, n] of this.freshAtBegin) {
      const left = (this.fresh.get(no) ?? 0) - n;
      if (left > 0) this.fresh.set(no, left);
      else this.fresh.delete(no);
    }
    this.freshAtBegin = new Map();
    let deleted = false;
    const now = Date.now();
    const ringFloor = this.keepFrom() ?? Infinity;
    for (const no of [...this.sizes.keys()]) {
      if (used.has(no) || no === this.active?.no || (this.logSeqs.get(no) ?? 0) > logMark || this.pending.some((r) => r.file.no === no) || no >= ringFloor) {
        this.dead.delete(no);
        continue;
      }
      // Dead from now on; deleted by a checkpoint once the grace has passed. A file being read stays
      // until a later checkpoint (an open file could be read after an unlink, but the read may not
      // have opened it yet).
      const since = this.dead.get(no) ?? now;
      this.dead.set(no, since);
      if (now - since < this.deadGraceMs || (this.pins.get(no) ?? 0) > 0) continue;
      this.dead.delete(no);
      await this.dropReader(no);
      await unlinkIfExists(path.join(this.dir, valueFileName(no)));
      this.sizes.delete(no);
      this.logSeqs.delete(no);
      this.fresh.delete(no);
      deleted = true;
    }
    if (deleted) await syncDir(this.dir);
  }

  /** The checkpoint just read references `refs`: each must lie in an existing file; the base for the next compaction decision. */
  loaded(refs: ValueRef[]): void {
    const live = new Map<number, number>();
    for (const ref of refs) {
      this.check(ref);
      live.set(ref[0], (live.get(ref[0]) ?? 0) + ref[2]);
    }
    this.live = live;
  }

  /**
   * The bytes of cold values, read where they lie now (a checkpoint that compacted a file has copied its
   * values elsewhere before deleting it, and a cell may not point there yet).
   */
  readCold(cold: ColdValue[]): Promise<Uint8Array[]> {
    return this.readAll(cold.map((c) => this.moved.get(c) ?? c.ref));
  }

  /**
   * Reads referenced values (in file order, through the files kept open for reading), checking each; a damaged or missing
   * file is a hard error. The result is in the order of `refs`.
   */
  private async readAll(refs: ValueRef[]): Promise<Uint8Array[]> {
    // Pinned before the first await: no checkpoint deletes these files meanwhile.
    for (const [no] of refs) this.pins.set(no, (this.pins.get(no) ?? 0) + 1);
    let release: (() => void) | null = null;
    try {
      release = await this.budget.acquire(refs.reduce((n, r) => n + r[2], 0));
      return await this.readPinned(refs);
    } finally {
      release?.();
      for (const [no] of refs) {
        const n = (this.pins.get(no) ?? 1) - 1;
        if (n > 0) this.pins.set(no, n);
        else this.pins.delete(no);
      }
    }
  }

  private async readPinned(refs: ValueRef[]): Promise<Uint8Array[]> {
    const out = new Array<Uint8Array>(refs.length);
    const order = refs.map((_, i) => i).sort((a, b) => refs[a]![0] - refs[b]![0] || refs[a]![1] - refs[b]![1]);
    for (const i of order) {
      const ref = refs[i]!;
      const [no, offset, length, crc] = ref;
      const file = path.join(this.dir, valueFileName(no));
      this.check(ref);
      const reader = this.reader(no);
      let buf: Buffer;
      try {
        buf = await readExactly(await reader.fh, offset, length);
      } finally {
        await this.doneReading(no, reader);
      }
      if (crc32(buf) !== crc) throw new Error(`value file ${file}: the value at ${offset} (${length} bytes) fails its crc`);
      this.refs.set(buf, ref);
      out[i] = buf;
    }
    return out;
  }

  /** The file open for reading (opened now, or kept from an earlier read), marked in use. */
  private reader(no: number): Reader {
    let r = this.readers.get(no);
    if (r) this.readers.delete(no); // (re-inserted: now the most recent)
    else {
      r = { fh: open(path.join(this.dir, valueFileName(no)), 'r'), users: 0 };
      r.fh.catch(() => undefined); // the read awaiting it sees the failure
    }
    this.readers.set(no, r);
    r.users++;
    return r;
  }

  /** A read of `no` is done: idle readers beyond READERS_KEPT (least recent first) and failed ones close. */
  private async doneReading(no: number, r: Reader): Promise<void> {
    r.users--;
    const failed = await r.fh.then(
      () => false,
      () => true,
    );
    if (failed && this.readers.get(no) === r && r.users === 0) this.readers.delete(no);
    for (const [n, idle] of this.readers) {
      if (this.readers.size <= (this.closed ? 0 : READERS_KEPT)) break;
      if (idle.users > 0) continue;
      this.readers.delete(n);
      await closeReader(idle);
    }
  }

  /** Closes the reader of a file about to be deleted (no read uses it: the file is not pinned). */
  private async dropReader(no: number): Promise<void> {
    const r = this.readers.get(no);
    if (!r) return;
    this.readers.delete(no);
    await closeReader(r);
  }

  /** Closes the open files once the write in progress is done; values reserved and not written are dropped. */
  async close(): Promise<void> {
    this.pending = [];
    this.pendingBytes = 0;
    await this.writeChain;
    const files = [...this.retired, ...(this.active ? [this.active] : [])];
    this.retired = [];
    this.active = null;
    for (const f of files) if (f.writer) await cutAndClose(f.writer).catch(() => undefined);
    // Idle readers close now; one still in use closes when its read is done.
    this.closed = true;
    for (const [no, r] of [...this.readers]) if (r.users === 0) await this.dropReader(no);
  }
}

async function closeReader(r: Reader): Promise<void> {
  await (await r.fh.catch(() => null))?.close().catch(() => undefined);
}

/** Closes a value file cut to its values (without the zero padding of its last block). */
async function cutAndClose(w: BlockWriter): Promise<void> {
  try {
    await w.cut();
  } finally {
    await w.close();
  }
}
