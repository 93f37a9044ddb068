/**
 * The write-ahead log of one worker thread, shared by all of its tablets (as a region server's log is
 * shared by its regions): one write + flush per turn of the event loop carries the records of every
 * tablet that wrote in that turn, instead of one flush per tablet.
 *
 * Files (in the node's data directory):
 *   log-<worker>/seg-<first seq, 16 digits>.log   log segments; inside a segment sequence numbers are
 *                                                 consecutive; a later segment starts above the end of
 *                                                 the one before (a gap is allowed, an overlap is not)
 *   tablet-<id>/checkpoint.dat                    a tablet's full state (see wal.ts), with `logMark`
 *
 * A log frame (wal.ts) carries the log's sequence number (seq) and the payload
 * CBOR [tablet, lsn, epoch, put?1:0, row, col, value]. Each tablet's lsns are its own and consecutive.
 *
 * Recovery of tablet T = T's checkpoint (lsn L, logMark M) + T's records with seq > M, which must
 * continue at lsn L+1 without a gap. A checkpoint is written with M = the log's durable position after
 * T's own records are durable, and T appends nothing while it is written; so M covers every record of
 * T up to L (including, for an installed snapshot, a diverged tail it replaces) and nothing after.
 *
 * Invariants:
 * - A record is acknowledged (whenDurable resolves) only after the write that holds it returned
 *   (segments are written by a BlockWriter, O_DSYNC and where possible O_DIRECT: a returned write is on
 *   disk; a segment's frames end in zero padding to a 4 KiB block, which recovery takes as their end).
 * - seq never goes backwards, across restarts too: a new log continues above the last record found
 *   and above every checkpoint's mark.
 * - A segment is deleted only when no tablet needs any record in it (every tablet's first record after
 *   its checkpoint lies in a later segment); the active segment is never deleted.
 * - Recovery stops at the first torn or corrupt frame: the segment is cut there and later segments are
 *   deleted; nothing after a bad frame is applied. A tablet whose records do not continue its
 *   checkpoint (records lost) is reported; it is repaired by a checkpoint as soon as it loads.
 * - Segments are recycled: a segment no tablet needs becomes a spare (`spare-<n>.log`, at most
 *   MAX_SPARES) instead of being deleted, and the next new segment is a spare renamed and overwritten
 *   from byte 0. Overwriting blocks a file already has needs no block allocation and no journal commit
 *   for each O_DSYNC write (1 KiB O_DSYNC writes: ~100 instead of ~190 us).
 *   A recycled file holds frames of its earlier life after the new ones: their seqs are all below the
 *   segment's start, so they never continue the new frames, and recovery ends the log there (only the
 *   active segment can have such a tail: a recycled segment is cut to its length when the log moves
 *   on to the next one, and at close; at start-up, bytes after the padding of a segment's last write are
 *   cut too).
 */
import { BlockWriter } from './block-writer.js';
import { COLD_READ_BYTES, ReadBudget, VALUE_FILE_BYTES, ValueFiles } from './value-files.js';
import { open, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CHECKPOINT_TMP,
  decodeLogPayload,
  encodeLogFrameParts,
  encodeLogFrameRef,
  type LogFrame,
  errorMessage,
  FRAME_HEADER_BYTES,
  listSegments,
  mkdirDurable,
  readCheckpointFile,
  readCheckpointHeader,
  scanFile,
  segmentName,
  syncDir,
  unlinkIfExists,
  writeCheckpointFile,
  type CellValue,
  ColdValue,
  type LogRecord,
  type LoggedRecord,
  type Segment,
} from './wal.js';

export function tabletDir(dataDir: string, id: number): string {
  return join(dataDir, `tablet-${String(id).padStart(4, '0')}`);
}

export function logDir(dataDir: string, worker: number): string {
  return join(dataDir, `log-${worker}`);
}

export interface WorkerLogOptions {
  dataDir: string;
  worker: number;
  /** Which tablets this worker owns (their checkpoints bound the log's sequence numbers). */
  owns: (tablet: number) => boolean;
  /**
   * Largest encoded record payload that append accepts and recovery believes; i.e. max value size +
   * max row/col sizes + some slack.
   */
  maxRecordBytes: number;
  /** The active segment is closed and a new one started beyond this many bytes. */
  segmentBytes: number;
  /** A tablet's value file (big checkpoint values, value-files.ts) is closed beyond this many bytes (default 16 MiB). */
  valueFileBytes?: number;
  /** A value file nothing references any more is deleted this long after (default 0: by the checkpoint that found it so). */
  deadValueFileMs?: number;
  /** Told about every recovery problem and about an I/O failure of the log. */
  onProblem?: (msg: string) => void;
}

export interface Recovered {
  checkpointLsn: number;
  checkpointEpoch: number;
  cells: Array<[row: string, col: string, value: CellValue]>;
  /** A put's value of VALUE_FILE_BYTES or more comes back cold: the log wrote it to a value file. */
  records: LoggedRecord[];
  /** Non-empty: the tablet lost records (or the log had damage that touched it); checkpoint it before use. */
  problems: string[];
}

/** What the log holds for a tablet beyond its checkpoint. */
interface Held {
  firstSeq: number;
  bytes: number;
}

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

interface LiveSegment extends Segment {
  bytes: number;
}

/** Retired segments kept for reuse, at most. */
const MAX_SPARES = 4;
const SPARE_RE = /^spare-(\d+)\.log$/;

/** Upper bound on bytes handed to one write; the rest waits for the next round. */
const MAX_FLUSH_BYTES = 8 << 20;

export class WorkerLog {
  private lastSeq: number;
  private _durableSeq: number;
  private handedSeq: number;
  /** Frames appended but not yet handed to the writer; queue[0] has seq handedSeq+1. */
  private queue: LogFrame[] = [];
  private waiters: Waiter[] = [];
  private flushScheduled = false;
  private flushing: Promise<void> | null = null;
  private failure: Error | null = null;
  private closing = false;
  private closed = false;
  private syncs = 0;
  /** File operations other than appends (segment deletion), one at a time. */
  private fileOps: Promise<void> = Promise.resolve();
  /** Retired segments to overwrite instead of creating files (paths). */
  private spares: string[] = [];
  /** The active segment is a recycled file: bytes of its earlier life may follow ours. */
  private activeRecycled = false;
  private readonly held = new Map<number, Held>();
  /** Checkpoints being written, by tablet: what the tablet appended meanwhile (above the mark) stays held. */
  private readonly checkpointing = new Map<number, { firstAfter: number | null; bytesAfter: number }>();
  /** Each tablet's value files (big values: appended ones, and checkpoints'), opened on first use. */
  private readonly valueFiles = new Map<number, ValueFiles>();
  /** Per open tablet: the lowest value file its catch-up ring needs (setRingFloor). */
  private readonly ringFloors = new Map<number, () => number | null>();
  /** Value files with values reserved by appends since the last flush began: written before its log write. */
  private valueWrites = new Set<ValueFiles>();
  /** Cold values being read at once, all tablets together. */
  private readonly coldReads = new ReadBudget(COLD_READ_BYTES);
  /** Records found at start-up for tablets not loaded since, and why some tablets need repair. */
  private readonly backlog = new Map<number, LoggedRecord[]>();
  private readonly damaged = new Map<number, string>();
  private readonly openTablets = new Set<number>();

  private constructor(
    private readonly dir: string,
    private readonly opts: WorkerLogOptions,
    private readonly segments: LiveSegment[],
    private active: BlockWriter,
    lastSeq: number,
  ) {
    this.lastSeq = this._durableSeq = this.handedSeq = lastSeq;
  }

  /** Opens (creating if needed) the worker's log and recovers it: what every tablet still needs from it. */
  static async open(opts: WorkerLogOptions): Promise<WorkerLog> {
    const dir = logDir(opts.dataDir, opts.worker);
    await mkdirDurable(dir);
    const report = (msg: string): void => opts.onProblem?.(`log-${opts.worker}: ${msg}`);
    const marks = await ownedCheckpointMarks(opts);
    const found = await recoverLog(dir, marks, opts.maxRecordBytes, report);
    const foreign = [...found.tablets.keys()].filter((t) => !opts.owns(t));
    if (foreign.length > 0) {
      // Only a change of layout puts them here (node.ts refuses that): never guess whose they are.
      throw new Error(`${dir} holds records of tablets ${foreign.join(', ')}, which worker ${opts.worker} does not own`);
    }
    const maxMark = Math.max(0, ...[...marks.values()].map((m) => m.logMark));
    // Continue in the last segment if nothing must be skipped; otherwise start a new one above both.
    const last = found.segments.at(-1);
    let active: BlockWriter;
    let lastSeq = found.lastSeq;
    if (last && found.lastSeq >= maxMark) {
      active = await BlockWriter.open(last.file, 'existing', last.bytes);
    } else {
      lastSeq = Math.max(found.lastSeq, maxMark);
      const file = join(dir, segmentName(lastSeq + 1));
      active = await BlockWriter.open(file, 'create');
      await syncDir(dir);
      found.segments.push({ start: lastSeq + 1, file, bytes: 0 });
    }
    const log = new WorkerLog(dir, opts, found.segments, active, lastSeq);
    const spares = (await readdir(dir)).filter((n) => SPARE_RE.test(n)).map((n) => join(dir, n));
    for (const extra of spares.splice(MAX_SPARES)) await unlink(extra);
    log.spares = spares;
    for (const [tablet, t] of found.tablets) {
      log.held.set(tablet, { firstSeq: t.firstSeq, bytes: t.bytes });
      log.backlog.set(tablet, t.records);
      if (t.problem) log.damaged.set(tablet, t.problem);
    }
    return log;
  }

  get durableSeq(): number {
    return this._durableSeq;
  }
  get failed(): boolean {
    return this.failure !== null;
  }
  /** Log writes (each one a flush) so far. */
  get syncCount(): number {
    return this.syncs;
  }
  /** Bytes in all segments. */
  get bytes(): number {
    let n = 0;
    for (const s of this.segments) n += s.bytes;
    return n;
  }
  /** Bytes of `tablet`'s records beyond its checkpoint. */
  heldBytes(tablet: number): number {
    return this.held.get(tablet)?.bytes ?? 0;
  }

  /** Tablets with records in the oldest segment: checkpointing them lets it be deleted. Empty when there is one segment. */
  oldestHolders(): number[] {
    if (this.segments.length < 2) return [];
    const end = this.segments[1]!.start;
    const out: number[] = [];
    for (const [t, h] of this.held) if (h.firstSeq < end) out.push(t);
    return out;
  }

  /**
   * Opens a tablet: its checkpoint plus its records from the log. One incarnation at a time; the
   * returned TabletLog is how it appends from then on.
   */
  async openTablet(tablet: number): Promise<{ log: TabletLog; recovered: Recovered }> {
    this.assertUsable('openTablet');
    if (this.openTablets.has(tablet)) throw new Error(`tablet ${tablet} is already open`);
    this.openTablets.add(tablet);
    try {
      const recovered = await this.recoverTablet(tablet);
      const lastLsn = recovered.records.at(-1)?.lsn ?? recovered.checkpointLsn;
      return { log: new TabletLog(this, tablet, lastLsn), recovered };
    } catch (e) {
      this.openTablets.delete(tablet);
      throw e;
    }
  }

  /**
   * Folds a tablet that is not open into a fresh checkpoint (its checkpoint plus its log records), so
   * that the log no longer holds anything for it. `apply` replays records onto the checkpoint's cells.
   */
  async foldTablet(tablet: number, apply: (r: Recovered) => { lsn: number; epoch: number; cells: Iterable<[string, string, CellValue]> }): Promise<void> {
    if (!this.held.has(tablet)) return;
    const { log, recovered } = await this.openTablet(tablet);
    try {
      const s = apply(recovered);
      await this.checkpointTablet(tablet, s.lsn, s.epoch, s.cells);
    } finally {
      log.release();
    }
  }

  private async recoverTablet(tablet: number): Promise<Recovered> {
    const dir = tabletDir(this.opts.dataDir, tablet);
    await unlinkIfExists(join(dir, CHECKPOINT_TMP)).catch(() => undefined);
    const checkpoint = await readCheckpointFile(dir, this.opts.maxRecordBytes, await this.valuesOf(tablet));
    const base = { lsn: checkpoint?.lsn ?? 0, mark: checkpoint?.logMark ?? 0 };
    const problems: string[] = []; // (start-up damage was reported when the log was opened)
    let records: LoggedRecord[] = [];
    if (this.held.has(tablet)) {
      const backlog = this.backlog.get(tablet);
      this.backlog.delete(tablet);
      const damage = this.damaged.get(tablet);
      this.damaged.delete(tablet);
      if (damage) problems.push(damage);
      if (backlog) records = backlog; // already cut where it stops following the checkpoint
      else {
        const scanned = await this.scanTablet(tablet, base.mark);
        const followed = followingCheckpoint(tablet, scanned.records, base.lsn);
        const problem = scanned.problem ?? followed.problem;
        records = followed.records;
        if (problem) {
          problems.push(problem);
          this.opts.onProblem?.(problem);
        }
      }
      const missing = withValuesPresent(tablet, records, await this.valuesOf(tablet));
      if (missing.problem) {
        records = missing.records;
        problems.push(missing.problem);
        this.opts.onProblem?.(missing.problem);
      }
    }
    return { checkpointLsn: base.lsn, checkpointEpoch: checkpoint?.epoch ?? 0, cells: checkpoint?.cells ?? [], records, problems };
  }

  /** Reads `tablet`'s records above `mark` back from the segments (a reload without a checkpoint: rare). */
  private async scanTablet(tablet: number, mark: number): Promise<{ records: LoggedRecord[]; problem?: string }> {
    await this.whenDurable(this.lastSeq);
    const from = Math.max(mark + 1, this.held.get(tablet)?.firstSeq ?? Infinity);
    const records: LoggedRecord[] = [];
    const segs = this.segments.filter((s, i) => (this.segments[i + 1]?.start ?? Infinity) > from);
    for (const seg of segs) {
      const fh = await open(seg.file, 'r');
      try {
        const scan = await scanFile(fh, seg.bytes, { expectFirstLsn: seg.start, maxPayload: this.opts.maxRecordBytes }, (seq, payload) => {
          if (seq < from) return;
          const r = decodeLogPayload(payload);
          if (r.tablet === tablet) records.push(r.rec);
        });
        if (scan.problem) return { records, problem: `tablet ${tablet}: reading back ${seg.file}: ${scan.problem}` };
      } finally {
        await fh.close();
      }
    }
    return { records };
  }

  // -- appends (through TabletLog) ------------------------------------------------------------

  /**
   * @internal Buffers a record for the next group commit; returns its position. A put's value of
   * VALUE_FILE_BYTES or more goes to the tablet's value file, written before the log write that holds
   * the record (which holds its reference): a checkpoint later references it where it lies, so a big
   * value is written once.
   */
  append(tablet: number, rec: LogRecord): { seq: number; bytes: number; toValueFile: boolean } {
    this.assertUsable('append');
    const seq = this.lastSeq + 1;
    const big = rec.kind === 'put' && rec.value !== undefined && rec.value.length >= VALUE_FILE_BYTES ? rec.value : null;
    const values = big ? this.valueFiles.get(tablet) : undefined; // (open since openTablet)
    const tooBig = (n: number): RangeError => new RangeError(`append: record of ${n} bytes exceeds maxRecordBytes ${this.opts.maxRecordBytes}`);
    let frame: LogFrame;
    let bytes: number; // what the record adds to the tablet's log: its frame, and a value it wrote elsewhere
    if (big && values) {
      if (big.length > this.opts.maxRecordBytes) throw tooBig(big.length);
      frame = encodeLogFrameRef(seq, tablet, rec, values.reserve(big, seq));
      this.valueWrites.add(values);
      bytes = frame.bytes + big.length;
    } else {
      frame = encodeLogFrameParts(seq, tablet, rec);
      if (frame.bytes - FRAME_HEADER_BYTES > this.opts.maxRecordBytes) throw tooBig(frame.bytes - FRAME_HEADER_BYTES);
      bytes = frame.bytes;
    }
    this.queue.push(frame);
    this.lastSeq = seq;
    const h = this.held.get(tablet);
    if (h) h.bytes += bytes;
    else this.held.set(tablet, { firstSeq: seq, bytes });
    const c = this.checkpointing.get(tablet);
    if (c) {
      c.firstAfter ??= seq;
      c.bytesAfter += bytes;
    }
    this.scheduleFlush();
    return { seq, bytes, toValueFile: values !== undefined };
  }

  /** Resolves once durableSeq >= seq; rejects if the log failed or was closed first. */
  whenDurable(seq: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (seq <= this._durableSeq) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error('worker log closed'));
    return new Promise((resolve, reject) => addWaiter(this.waiters, { seq, resolve, reject }));
  }

  /**
   * Writes `tablet`'s checkpoint: `cells` is its state as of (lsn, epoch), taken in the same turn as
   * this call, so that it holds exactly the tablet's records appended so far (seq <= the mark, read
   * now, before any await). The file is written once those records are durable, so a checkpoint never
   * holds a write that a crash would have lost from the log. The tablet may go on appending meanwhile:
   * those records are above the mark, stay in the log and are replayed on top of the checkpoint.
   * Afterwards old segments nobody needs are deleted.
   */
  async checkpointTablet(tablet: number, lsn: number, epoch: number, cells: Iterable<[string, string, CellValue]>): Promise<void> {
    this.assertUsable('checkpoint');
    if (this.checkpointing.has(tablet)) throw new Error(`checkpoint: tablet ${tablet} is already being checkpointed`);
    const logMark = this.lastSeq;
    const after = { firstAfter: null as number | null, bytesAfter: 0 };
    this.checkpointing.set(tablet, after);
    try {
      await this.whenDurable(logMark);
      const dir = tabletDir(this.opts.dataDir, tablet);
      await mkdirDurable(dir);
      await writeCheckpointFile(dir, { lsn, epoch, logMark }, cells, this.opts.maxRecordBytes, await this.valuesOf(tablet));
    } finally {
      this.checkpointing.delete(tablet);
    }
    if (after.firstAfter === null) this.held.delete(tablet);
    else this.held.set(tablet, { firstSeq: after.firstAfter, bytes: after.bytesAfter });
    this.backlog.delete(tablet);
    this.damaged.delete(tablet);
    await this.deleteUnneededSegments();
  }

  private async valuesOf(tablet: number): Promise<ValueFiles> {
    let v = this.valueFiles.get(tablet);
    if (!v) {
      v = await ValueFiles.open(tabletDir(this.opts.dataDir, tablet), this.opts.valueFileBytes, this.coldReads, this.opts.deadValueFileMs);
      v.keepFrom = () => this.ringFloors.get(tablet)?.() ?? null;
      this.valueFiles.set(tablet, v);
    }
    return v;
  }

  /**
   * The open tablet's catch-up ring holds values cold from value file `floor()` on: those files stay
   * (ValueFiles.keepFrom).
   */
  setRingFloor(tablet: number, floor: () => number | null): void {
    this.ringFloors.set(tablet, floor);
  }

  /** Forgets `floor` (set by a tablet actor that is closing), unless a successor has set its own. */
  dropRingFloor(tablet: number, floor: () => number | null): void {
    if (this.ringFloors.get(tablet) === floor) this.ringFloors.delete(tablet);
  }

  /**
   * What a cell of an open tablet holding `value` should hold after a checkpoint (ValueFiles.coldOf):
   * bytes made durable become cold; a cold value whose file was compacted points to its new place.
   */
  coldOf(tablet: number, value: CellValue): ColdValue | null {
    return this.valueFiles.get(tablet)?.coldOf(value) ?? null;
  }

  /** Reads cold values of an open tablet (each checked against its crc). Its files are pinned at once. */
  readCold(tablet: number, cold: ColdValue[]): Promise<Uint8Array[]> {
    const v = this.valueFiles.get(tablet);
    if (!v) return Promise.reject(new Error(`tablet ${tablet} has no value files open`));
    return v.readCold(cold);
  }

  /** Bytes in the value files of `tablet` (for tests and reports). */
  async valueFileBytes(tablet: number): Promise<number> {
    return (await this.valuesOf(tablet)).bytesOnDisk;
  }

  private async closeValueFiles(): Promise<void> {
    for (const v of this.valueFiles.values()) await v.close();
    this.valueFiles.clear();
  }

  /** @internal A TabletLog closed: the tablet may be opened again. */
  release(tablet: number): void {
    this.openTablets.delete(tablet);
  }

  /**
   * Behaves like a crash: what is appended but not yet written is lost; a write already in progress
   * finishes (so it cannot land after a successor reopened the files).
   */
  async abandon(): Promise<void> {
    this.closing = true;
    this.queue = [];
    this.lastSeq = this.handedSeq;
    await this.flushing;
    await this.fileOps;
    this.closed = true;
    rejectAll(this.waiters, new Error('worker log abandoned'));
    await this.closeValueFiles();
    await this.active.close().catch(() => undefined);
  }

  /** Writes everything appended, waits for it, and closes the files. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (!this.failure) await this.whenDurable(this.lastSeq).catch(() => undefined);
    await this.flushing;
    await this.fileOps;
    this.closed = true;
    rejectAll(this.waiters, this.failure ?? new Error('worker log closed'));
    await this.closeValueFiles();
    if (!this.failure) await this.cutRecycledActive().catch(() => undefined); // else recovery cuts it
    await this.active.close().catch(() => undefined);
  }

  // -- group commit ---------------------------------------------------------------------------

  /** Starts a flush on the next turn (so every append of this turn shares it) unless one is pending or running. */
  private scheduleFlush(): void {
    if (this.flushScheduled || this.flushing) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.startFlush();
    });
  }

  private startFlush(): void {
    if (this.flushing || this.failure || this.queue.length === 0) return;
    // The writer copies the frames into its staging buffer: big values are not gathered first.
    let n = 0;
    let bytes = 0;
    const parts: Buffer[] = [];
    while (n < this.queue.length && (n === 0 || bytes + this.queue[n]!.bytes <= MAX_FLUSH_BYTES)) {
      const f = this.queue[n]!;
      parts.push(...f.parts);
      bytes += f.bytes;
      n++;
    }
    this.queue.splice(0, n);
    this.handedSeq += n;
    const values = [...this.valueWrites];
    this.valueWrites = new Set();
    this.flushing = this.writeAndSync(parts, bytes, this.handedSeq, values);
  }

  /** Writes the values the batch's records reference (and any reserved since), then the batch. */
  private async writeAndSync(parts: Buffer[], bytes: number, lastSeq: number, values: ValueFiles[]): Promise<void> {
    try {
      await Promise.all(values.map((v) => v.flushReserved()));
      await this.active.append(parts, bytes);
      this.segments.at(-1)!.bytes += bytes;
      if (this.segments.at(-1)!.bytes >= this.opts.segmentBytes) await this.rotate(lastSeq + 1);
    } catch (e) {
      this.flushing = null;
      this.fail(e);
      return;
    }
    this.syncs++;
    this.flushing = null;
    this._durableSeq = lastSeq;
    resolveUpTo(this.waiters, lastSeq);
    this.startFlush(); // whatever accumulated meanwhile
  }

  /**
   * Starts a new active segment at `start` (between writes, so no append is in flight): a spare
   * renamed and overwritten, or a new file. A recycled segment being left is first cut to its length,
   * so only the active segment can hold bytes of an earlier life.
   */
  private async rotate(start: number): Promise<void> {
    await this.cutRecycledActive();
    const file = join(this.dir, segmentName(start));
    const spare = this.spares.pop();
    let fh: BlockWriter;
    if (spare !== undefined) {
      await rename(spare, file);
      fh = await BlockWriter.open(file, 'existing', 0); // overwritten from byte 0, not truncated
    } else {
      fh = await BlockWriter.open(file, 'create');
    }
    await syncDir(this.dir);
    const old = this.active;
    this.active = fh;
    this.activeRecycled = spare !== undefined;
    this.segments.push({ start, file, bytes: 0 });
    await old.close();
  }

  /** Cuts a recycled active segment to the bytes written in this life (durably). */
  private async cutRecycledActive(): Promise<void> {
    if (!this.activeRecycled) return;
    await this.active.cut();
    this.activeRecycled = false;
  }

  /** Deletes old segments no tablet needs any more (oldest first, never the active one). */
  private deleteUnneededSegments(): Promise<void> {
    const run = this.fileOps.then(async () => {
      let needFrom = Infinity;
      for (const h of this.held.values()) needFrom = Math.min(needFrom, h.firstSeq);
      let deleted = 0;
      while (this.segments.length > 1 && this.segments[1]!.start <= needFrom) {
        const old = this.segments[0]!;
        if (this.spares.length < MAX_SPARES && old.bytes >= this.opts.segmentBytes / 2) {
          const spare = join(this.dir, `spare-${old.start}.log`);
          await rename(old.file, spare);
          this.spares.push(spare);
        } else {
          await unlink(old.file);
        }
        this.segments.shift();
        deleted++;
      }
      if (deleted > 0) await syncDir(this.dir);
    });
    this.fileOps = run.catch((e: unknown) => this.fail(e));
    return this.fileOps;
  }

  /** Enters the failed state: every waiter and every later call is rejected. */
  private fail(e: unknown): void {
    if (this.failure) return;
    this.failure = new Error(`worker log ${this.dir} failed: ${errorMessage(e)}`, { cause: e });
    this.queue = [];
    this.opts.onProblem?.(this.failure.message);
    rejectAll(this.waiters, this.failure);
  }

  private assertUsable(op: string): void {
    if (this.failure) throw this.failure;
    if (this.closing) throw new Error(`${op}: worker log closed`);
  }
}

/**
 * One tablet's view of the worker log, with the interface of a private log: consecutive lsns,
 * "durable up to lsn", checkpoint, install (replace everything by a snapshot), close, abandon.
 */
export class TabletLog {
  private _lastLsn: number;
  /** Known durable up to here; seqs[k] is the log position of lsn durLsn + 1 + k. */
  private durLsn: number;
  private seqs: number[] = [];
  private closed = false;

  constructor(
    private readonly log: WorkerLog,
    readonly tablet: number,
    lastLsn: number,
  ) {
    this._lastLsn = this.durLsn = lastLsn;
  }

  get lastLsn(): number {
    return this._lastLsn;
  }
  get durableLsn(): number {
    const durableSeq = this.log.durableSeq;
    let n = 0;
    while (n < this.seqs.length && this.seqs[n]! <= durableSeq) n++;
    if (n > 0) {
      this.seqs.splice(0, n);
      this.durLsn += n;
    }
    return this.durLsn;
  }
  get failed(): boolean {
    return this.log.failed;
  }
  get bytesSinceCheckpoint(): number {
    return this.log.heldBytes(this.tablet);
  }
  /**
   * Buffers a record for the next group commit. rec.lsn must be lastLsn+1. Does not wait. True when its
   * value goes to a value file: once the record is durable, a cell may hold it cold (WorkerLog.coldOf).
   */
  append(rec: LogRecord): boolean {
    if (this.closed) throw new Error(`append: tablet ${this.tablet}'s log is closed`);
    if (rec.lsn !== this._lastLsn + 1) throw new Error(`append: lsn ${rec.lsn} is not lastLsn+1 (${this._lastLsn + 1})`);
    const { seq, toValueFile } = this.log.append(this.tablet, rec);
    this.seqs.push(seq);
    this._lastLsn = rec.lsn;
    return toValueFile;
  }

  /** Resolves once every record up to lsn is durable. */
  whenDurable(lsn: number): Promise<void> {
    if (this.log.failed) return this.log.whenDurable(Infinity);
    if (lsn <= this.durableLsn) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error(`tablet ${this.tablet}'s log is closed`));
    if (lsn > this._lastLsn) return Promise.reject(new RangeError(`whenDurable(${lsn}): not appended yet (lastLsn ${this._lastLsn})`));
    return this.log.whenDurable(this.seqs[lsn - this.durLsn - 1]!);
  }

  /**
   * Checkpoints the tablet's state as of `lsn`, which must be lastLsn now; `cells` must be a copy of
   * that state (the tablet may append again before this resolves: those records stay in the log).
   */
  checkpoint(lsn: number, epoch: number, cells: Array<[string, string, CellValue]>): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`checkpoint: tablet ${this.tablet}'s log is closed`));
    if (lsn !== this._lastLsn) return Promise.reject(new Error(`checkpoint: lsn ${lsn} is not lastLsn (${this._lastLsn})`));
    return this.log.checkpointTablet(this.tablet, lsn, epoch, cells); // reads the mark before its first await
  }

  /**
   * Replaces the tablet's durable state by a snapshot as of (lsn, epoch), whatever its log held before
   * (a replica whose log diverged, or fell behind the primary's memory).
   */
  async install(lsn: number, epoch: number, cells: Iterable<[string, string, CellValue]>): Promise<void> {
    if (this.closed) throw new Error(`install: tablet ${this.tablet}'s log is closed`);
    await this.whenDurable(this._lastLsn);
    await this.log.checkpointTablet(this.tablet, lsn, epoch, cells);
    this._lastLsn = this.durLsn = lsn;
    this.seqs = [];
  }

  /** Waits for what was appended, then closes this tablet's view (the worker log stays open). */
  async close(): Promise<void> {
    if (this.closed) return;
    if (!this.log.failed) await this.whenDurable(this._lastLsn).catch(() => undefined);
    this.release();
  }

  /** A crash of the tablet: stops using the log at once (the worker log decides what was written). */
  abandon(): void {
    this.release();
  }

  /** @internal */
  release(): void {
    if (this.closed) return;
    this.closed = true;
    this.log.release(this.tablet);
  }
}

// ---------------------------------------------------------------------------------------------
// Recovery of the log at start-up
// ---------------------------------------------------------------------------------------------

interface TabletFound {
  firstSeq: number;
  bytes: number;
  records: LoggedRecord[];
  problem?: string;
}

/** Checkpoint headers of the tablets this worker owns that have a directory. */
async function ownedCheckpointMarks(opts: WorkerLogOptions): Promise<Map<number, { lsn: number; logMark: number }>> {
  const marks = new Map<number, { lsn: number; logMark: number }>();
  for (const name of await readdir(opts.dataDir)) {
    const m = /^tablet-(\d{4,})$/.exec(name);
    if (!m || !opts.owns(Number(m[1]))) continue;
    const head = await readCheckpointHeader(join(opts.dataDir, name));
    if (head) marks.set(Number(m[1]), head);
  }
  return marks;
}

/**
 * Reads every segment in order and collects, per tablet, the records its checkpoint does not cover.
 * At the first bad frame the segment is cut to its valid prefix (and synced) and later segments are
 * deleted; a segment that overlaps the one before is treated the same way.
 */
async function recoverLog(
  dir: string,
  marks: Map<number, { lsn: number; logMark: number }>,
  maxPayload: number,
  report: (msg: string) => void,
): Promise<{ segments: LiveSegment[]; lastSeq: number; tablets: Map<number, TabletFound> }> {
  const segs = await listSegments(dir);
  const out: LiveSegment[] = [];
  const tablets = new Map<number, TabletFound>();
  let lastSeq = 0;
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    let problem: string | undefined;
    if (seg.start <= lastSeq) problem = `${seg.file} starts at ${seg.start}, inside the segment before (which ends at ${lastSeq})`;
    else {
      const fh = await open(seg.file, 'r+');
      try {
        const size = (await fh.stat()).size;
        const scan = await scanFile(fh, size, { expectFirstLsn: seg.start, maxPayload }, (seq, payload, frameBytes) => {
          const { tablet, rec } = decodeLogPayload(payload);
          if (seq <= (marks.get(tablet)?.logMark ?? 0)) return;
          let t = tablets.get(tablet);
          if (!t) tablets.set(tablet, (t = { firstSeq: seq, bytes: 0, records: [] }));
          t.bytes += frameBytes;
          t.records.push(rec);
        });
        lastSeq = scan.lastLsn ?? seg.start - 1;
        out.push({ ...seg, bytes: scan.validBytes });
        // Cut at the first bad frame, and after the zero padding of our last write (bytes of a recycled
        // segment's earlier life: a later write ending on a block boundary must never be followed by them).
        if (scan.problem || scan.moreAfterPadding) {
          await fh.truncate(scan.validBytes);
          await fh.sync();
        }
        if (scan.problem) {
          const where = i === segs.length - 1 ? ' (after the last complete write: a write cut off by a crash, or bytes of a recycled segment\'s earlier life)' : '';
          problem = `${seg.file}: ${scan.problem}${where}; truncated from ${size} to ${scan.validBytes} bytes`;
        }
      } finally {
        await fh.close();
      }
    }
    if (problem) {
      const later = segs.slice(i + (out.at(-1)?.start === seg.start ? 1 : 0));
      for (const s of later) await unlink(s.file);
      if (later.length > 0) await syncDir(dir);
      report(later.length > 0 ? `${problem}; deleted ${later.map((s) => s.file).join(', ')}` : problem);
      break;
    }
  }
  // A tablet's records must continue its checkpoint; where they do not, keep the prefix and say so.
  for (const [tablet, t] of tablets) {
    const followed = followingCheckpoint(tablet, t.records, marks.get(tablet)?.lsn ?? 0);
    t.records = followed.records;
    if (followed.problem) {
      t.problem = followed.problem;
      report(t.problem);
    }
  }
  return { segments: out, lastSeq, tablets };
}

/**
 * The prefix of a tablet's log records that continues its checkpoint at `checkpointLsn` without a gap,
 * and what was dropped when some do not (records were lost).
 */
function followingCheckpoint(tablet: number, records: LoggedRecord[], checkpointLsn: number): { records: LoggedRecord[]; problem?: string } {
  let n = 0;
  while (n < records.length && records[n]!.lsn === checkpointLsn + 1 + n) n++;
  if (n === records.length) return { records };
  const before = n > 0 ? records[n - 1]!.lsn : checkpointLsn;
  return {
    records: records.slice(0, n),
    problem: `tablet ${tablet}: log record lsn ${records[n]!.lsn} does not follow lsn ${before} (records lost); ${records.length - n} later records dropped`,
  };
}

/**
 * The prefix of a tablet's log records whose values in value files are there: a record is written only
 * after its value is durable, so a missing one is damage; the records from there on are dropped. The
 * values found count as possibly live (ValueFiles.logged), so their files are not taken for dead.
 */
function withValuesPresent(tablet: number, records: LoggedRecord[], values: ValueFiles): { records: LoggedRecord[]; problem?: string } {
  for (let i = 0; i < records.length; i++) {
    const v = records[i]!.value;
    if (!(v instanceof ColdValue)) continue;
    try {
      values.logged(v.ref);
    } catch (e) {
      return {
        records: records.slice(0, i),
        problem: `tablet ${tablet}: log record lsn ${records[i]!.lsn}: ${errorMessage(e)}; it and ${records.length - i - 1} later records dropped`,
      };
    }
  }
  return { records };
}

function addWaiter(ws: Waiter[], w: Waiter): void {
  if (ws.length === 0 || ws[ws.length - 1]!.seq <= w.seq) {
    ws.push(w);
    return;
  }
  let lo = 0;
  let hi = ws.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ws[mid]!.seq <= w.seq) lo = mid + 1;
    else hi = mid;
  }
  ws.splice(lo, 0, w);
}

function resolveUpTo(ws: Waiter[], seq: number): void {
  let n = 0;
  while (n < ws.length && ws[n]!.seq <= seq) n++;
  for (const w of ws.splice(0, n)) w.resolve();
}

function rejectAll(ws: Waiter[], err: Error): void {
  for (const w of ws.splice(0)) w.reject(err);
}
