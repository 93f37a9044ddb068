// The state of one tablet as a pure state machine: a sparse table row -> column -> bytes.
// `decide` turns a request into a reply and (for a write that changes something) a log record;
// `apply` applies a log record. No I/O here: the tablet actor persists records before replying.
// A big value may be cold (a ColdValue: its bytes lie in the tablet's value files, value-files.ts):
// replies can carry it, and the tablet actor reads its bytes before answering; a CPUT compares
// bytes, so the actor warms a cold cell before deciding one.
import { ATTACH_BYTES } from '../../transport/codec.js';
import { MAX_SCAN_BYTES, type Cell, type Cursor, type DataRequest, type Reply } from '../../transport/messages.js';
import { ColdValue, type CellValue, type LogRecord, type LoggedRecord } from './wal.js';

export interface Decision {
  reply: Reply;
  /** The write to log and apply, if the request changes the table. */
  record: LogRecord | null;
}

/**
 * A value to keep. A value decoded from a received message is a view into it, and libzmq decodes the
 * messages of one read out of one shared receive buffer (8 KiB and more), freed only once no view of
 * any of them is left: kept in the table or the record ring, a 1 KiB value pinned a whole buffer for
 * as long as the cell lived (and the I/O thread faulted in fresh memory for every read). So a value is
 * copied into a buffer of its own, unless it is an attachment (transport/codec.ts): a zmq part of its
 * own, at least ATTACH_BYTES long, which libzmq allocates for it alone. Not into Node's shared 8 KiB pool
 * (`Buffer.from`): there kept values sat between the short-lived buffers of frames and log records and
 * each pinned its slab of them (RSS growth per kept 1 KiB record at R=3: 3.9 KB in the pool, 1.8 KB in
 * a buffer of its own). A big value sent inline, inside a frame or a bundle, is copied too.
 */
export function ownBytes(v: Uint8Array): Uint8Array {
  if (v.length >= ATTACH_BYTES && v.byteOffset === 0 && v.byteLength === v.buffer.byteLength) return v;
  const own = Buffer.allocUnsafeSlow(v.length);
  own.set(v);
  return own;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

function compareCells(ar: string, ac: string, br: string, bc: string): number {
  if (ar !== br) return ar < br ? -1 : 1;
  if (ac !== bc) return ac < bc ? -1 : 1;
  return 0;
}

export class TabletState {
  private readonly rows = new Map<string, Map<string, CellValue>>();
  private cellCount = 0;
  private byteCount = 0;
  /** Bytes of values held in memory (not cold). */
  private hotByteCount = 0;
  /** (row, col) pairs in order, built lazily for paging and dropped on any insert or delete. */
  private sorted: Cursor[] | null = null;

  constructor(readonly id: number, public lsn = 0, public epoch = 1) {}

  get cells(): number {
    return this.cellCount;
  }

  get bytes(): number {
    return this.byteCount;
  }

  /** Bytes of the values held in memory; cold ones (in value files) do not count. */
  get hotBytes(): number {
    return this.hotByteCount;
  }

  /** A cell's value as held: its bytes, or a cold value. */
  cell(row: string, col: string): CellValue | undefined {
    return this.rows.get(row)?.get(col);
  }

  /** A cell's bytes; a cold cell is a caller's bug (use cell() where one may be cold). */
  get(row: string, col: string): Uint8Array | undefined {
    const v = this.cell(row, col);
    if (v instanceof ColdValue) throw new Error(`tablet ${this.id}: ${row}/${col} is cold`);
    return v;
  }

  /**
   * The cell now holds `cold` instead of `value` (a checkpoint made it durable there, or moved it there),
   * if it still holds `value`.
   */
  cool(row: string, col: string, value: CellValue, cold: ColdValue): boolean {
    const cols = this.rows.get(row);
    if (cols?.get(col) !== value || cold.length !== value.length) return false;
    cols.set(col, cold);
    if (!(value instanceof ColdValue)) this.hotByteCount -= value.length;
    return true;
  }

  /** The cell holds `bytes` again instead of `cold`, if it still holds `cold`. */
  warm(row: string, col: string, cold: ColdValue, bytes: Uint8Array): boolean {
    const cols = this.rows.get(row);
    if (cols?.get(col) !== cold || cold.length !== bytes.length) return false;
    cols.set(col, bytes);
    this.hotByteCount += bytes.length;
    return true;
  }

  /** Decides a request against the current state. Writes get the next lsn but are not applied yet. */
  decide(req: DataRequest, maxScan: number): Decision {
    switch (req.t) {
      case 'get': {
        const v = this.cell(req.row, req.col);
        // A cold value goes out as it is: the tablet actor reads its bytes before sending the reply.
        return { reply: v === undefined ? { t: 'not_found' } : { t: 'value', value: v as Uint8Array }, record: null };
      }
      case 'cols': {
        const cols = this.rows.get(req.row);
        return { reply: { t: 'cols', cols: cols ? [...cols.keys()].sort() : [] }, record: null };
      }
      case 'scan':
        return { reply: this.scan(req.after, Math.min(req.limit, maxScan)), record: null };
      case 'put':
        return { reply: { t: 'ok' }, record: this.record('put', req.row, req.col, req.value) };
      case 'del': {
        if (this.cell(req.row, req.col) === undefined) return { reply: { t: 'not_found' }, record: null };
        return { reply: { t: 'ok' }, record: this.record('del', req.row, req.col) };
      }
      case 'cput': {
        const current = this.cell(req.row, req.col);
        if (current instanceof ColdValue) throw new Error(`tablet ${this.id}: cput on a cold cell ${req.row}/${req.col} (the actor warms it first)`);
        const matches = req.expect === null ? current === undefined : current !== undefined && sameBytes(current, req.expect);
        if (!matches) return { reply: { t: 'mismatch', current: current ?? null }, record: null };
        // CPUT is decided here and logged as its outcome: a plain put.
        return { reply: { t: 'ok' }, record: this.record('put', req.row, req.col, req.value) };
      }
    }
  }

  private record(kind: 'put' | 'del', row: string, col: string, value?: Uint8Array): LogRecord {
    const rec: LogRecord = { lsn: this.lsn + 1, epoch: this.epoch, kind, row, col };
    if (value !== undefined) rec.value = ownBytes(value);
    return rec;
  }

  /** Applies a logged write (a replayed one may hold its value cold). Records must come in lsn order without gaps. */
  apply(rec: LogRecord | LoggedRecord): void {
    if (rec.lsn !== this.lsn + 1) throw new Error(`tablet ${this.id}: record lsn ${rec.lsn} does not follow ${this.lsn}`);
    if (rec.kind === 'put') this.putCell(rec.row, rec.col, rec.value ?? new Uint8Array(0));
    else this.deleteCell(rec.row, rec.col);
    this.lsn = rec.lsn;
  }

  /** Loads a cell from a checkpoint (no lsn change). */
  putCell(row: string, col: string, value: CellValue): void {
    let cols = this.rows.get(row);
    if (!cols) {
      cols = new Map();
      this.rows.set(row, cols);
    }
    const old = cols.get(col);
    if (old === undefined) {
      this.cellCount++;
      this.sorted = null;
    } else {
      this.byteCount -= old.length;
      if (!(old instanceof ColdValue)) this.hotByteCount -= old.length;
    }
    this.byteCount += value.length;
    if (!(value instanceof ColdValue)) this.hotByteCount += value.length;
    cols.set(col, value);
  }

  private deleteCell(row: string, col: string): void {
    const cols = this.rows.get(row);
    const old = cols?.get(col);
    if (!cols || old === undefined) return;
    cols.delete(col);
    if (cols.size === 0) this.rows.delete(row);
    this.cellCount--;
    this.byteCount -= old.length;
    if (!(old instanceof ColdValue)) this.hotByteCount -= old.length;
    this.sorted = null;
  }

  *allCells(): Generator<[string, string, CellValue]> {
    for (const [row, cols] of this.rows) for (const [col, v] of cols) yield [row, col, v];
  }

  private sortedCells(): Cursor[] {
    if (this.sorted === null) {
      const all: Cursor[] = [];
      for (const [row, cols] of this.rows) for (const col of cols.keys()) all.push([row, col]);
      all.sort((a, b) => compareCells(a[0], a[1], b[0], b[1]));
      this.sorted = all;
    }
    return this.sorted;
  }

  /**
   * A page of cells strictly after `after`, and the cursor of the next page (null at the end): at most
   * `limit` cells, and no more once their values pass MAX_SCAN_BYTES (at least one cell).
   */
  scan(after: Cursor | null, limit: number): Reply {
    const all = this.sortedCells();
    let lo = 0;
    if (after !== null) {
      let hi = all.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        const c = all[mid]!;
        if (compareCells(c[0], c[1], after[0], after[1]) <= 0) lo = mid + 1;
        else hi = mid;
      }
    }
    const cells: Cell[] = [];
    let bytes = 0;
    for (let i = lo; i < all.length && cells.length < Math.max(1, limit) && (cells.length === 0 || bytes < MAX_SCAN_BYTES); i++) {
      const [r, c] = all[i]!;
      const v = this.cell(r, c)!;
      bytes += v.length;
      cells.push([r, c, v as Uint8Array]); // cold ones are read by the actor
    }
    const last = cells[cells.length - 1];
    const next = lo + cells.length < all.length && last ? ([last[0], last[1]] as Cursor) : null;
    return { t: 'scan', cells, next };
  }
}
