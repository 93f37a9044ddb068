/**
 * Appends to a file in whole blocks, opened O_DIRECT | O_DSYNC where the file system allows it: the
 * bytes go from one reused staging buffer straight to the disk instead of being copied into the page
 * cache first. On this VM that copy was the largest cost of an upload (a 1 MiB durable append: ~0.06-0.1
 * instead of 0.35-2.8 ms of kernel CPU; page-cache pages are fresh memory to the host).
 *
 * O_DIRECT wants the file offset, the length and the buffer's address aligned. So every write starts
 * at the block holding the end of the file, rewrites that block's bytes (kept in memory), and is
 * zero-padded to a block boundary: the file is a prefix of valid bytes followed by fewer than BLOCK
 * zero bytes (wal.ts scanFile takes a zero frame header followed by zeros to the block end as the end).
 * Rewriting a block with the same bytes it held changes nothing on disk if the write is cut off.
 *
 * The staging buffer's address is not visible from JavaScript: the first direct write with a new buffer
 * tries the candidate offsets in it, in steps of 16 bytes, until the kernel stops refusing (EINVAL) the
 * first block; that block's bytes are what the write stores anyway. Staging buffers are shared by the
 * writers of a thread (taken for one write, then given back; at most four are kept: with fewer, the log
 * and the value files written at once kept allocating new ones, each probed again), so a worker with
 * many value files open does not hold a buffer for each.
 *
 * Where O_DIRECT is refused at open (tmpfs), the same writes go through the page cache (O_DSYNC):
 * slower, equally durable.
 */
import { constants as fsConstants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/** File offsets and lengths are multiples of this (the largest logical block size of common disks). */
export const BLOCK = 4096;
const ADDRESS_STEP = 16;
/** A staging buffer is kept for later writes up to this size; a bigger one is dropped after use. */
const KEEP_STAGING_BYTES = 16 << 20;
/** Staging buffers kept between writes, per thread (shared by its writers: a log's, every value file's). */
const KEEP_SPARE = 4;

/** A staging buffer, and the offset in it whose address suits O_DIRECT (-1: not found yet). */
interface Staging {
  buf: Buffer;
  base: number;
}

/** Staging buffers not in use, on this thread (a module instance per worker thread). */
const spare: Staging[] = [];

function takeStaging(size: number): Staging {
  const i = spare.findIndex((s) => s.buf.length >= size);
  if (i >= 0) return spare.splice(i, 1)[0]!;
  return { buf: Buffer.allocUnsafeSlow(Math.max(size, 1 << 20)), base: -1 }; // never a slice of the shared pool
}

function giveBack(s: Staging): void {
  if (s.buf.length > KEEP_STAGING_BYTES + BLOCK) return;
  spare.push(s);
  if (spare.length > KEEP_SPARE) {
    spare.sort((a, b) => b.buf.length - a.buf.length);
    spare.pop(); // the smallest goes
  }
}

const O_DIRECT = fsConstants.O_DIRECT ?? 0;
const O_WRITE = fsConstants.O_WRONLY | fsConstants.O_DSYNC;

/** 'new': the file must not exist; 'create': made or emptied; 'existing': written from `end` on. */
export type OpenMode = 'new' | 'create' | 'existing';

const OPEN_FLAGS: Record<OpenMode, number> = {
  new: fsConstants.O_CREAT | fsConstants.O_EXCL,
  create: fsConstants.O_CREAT | fsConstants.O_TRUNC,
  existing: 0,
};

export class BlockWriter {
  /** Bytes [pos - pos % BLOCK, pos) of the file: the start of the block the next write rewrites. */
  private tail: Buffer;

  private constructor(
    readonly fh: FileHandle,
    readonly direct: boolean,
    private pos: number,
    tail: Buffer,
  ) {
    this.tail = tail;
  }

  /**
   * Opens `file` for appending at byte `end` ('existing': its valid length; what lies beyond is
   * overwritten). `pageCache`: do not ask for O_DIRECT (as where a file system refuses it).
   */
  static async open(file: string, mode: OpenMode, end = 0, opts: { pageCache?: boolean } = {}): Promise<BlockWriter> {
    const flags = O_WRITE | OPEN_FLAGS[mode];
    let fh: FileHandle;
    let direct = O_DIRECT !== 0 && opts.pageCache !== true; // (pageCache: the path where O_DIRECT is refused, for tests)
    try {
      fh = await open(file, flags | (direct ? O_DIRECT : 0), 0o644);
    } catch (e) {
      if (!direct || (e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
      direct = false;
      fh = await open(file, flags, 0o644);
    }
    if (mode !== 'existing') end = 0;
    const tailBytes = end % BLOCK;
    const tail = Buffer.alloc(tailBytes);
    if (tailBytes > 0) {
      const reader = await open(file, 'r');
      try {
        const { bytesRead } = await reader.read(tail, 0, tailBytes, end - tailBytes);
        if (bytesRead !== tailBytes) throw new Error(`${file}: ${bytesRead} of the ${tailBytes} bytes before byte ${end} could be read`);
      } finally {
        await reader.close();
      }
    }
    return new BlockWriter(fh, direct, end, tail);
  }

  /** Valid bytes in the file: where the next append goes. */
  get length(): number {
    return this.pos;
  }

  /** Appends `parts` durably (returns once they are on disk). `bytes` is their total length. */
  async append(parts: readonly Uint8Array[], bytes: number): Promise<void> {
    if (bytes === 0) return;
    const start = this.pos - this.tail.length;
    const used = this.tail.length + bytes;
    const padded = Math.ceil(used / BLOCK) * BLOCK;
    const staging = takeStaging(padded + BLOCK); // BLOCK to spare: the aligned start lies in the first block
    const buf = staging.buf;
    /** The first `length` bytes of what this write stores (the tail, the parts, zeros), put at `from`. */
    const fill = (into: Buffer, from: number, length: number): void => {
      const end = from + length;
      let k = from + this.tail.copy(into, from, 0, Math.min(this.tail.length, length));
      for (const p of parts) {
        if (k >= end) break;
        const n = Math.min(p.length, end - k);
        into.set(n === p.length ? p : p.subarray(0, n), k);
        k += n;
      }
      into.fill(0, k, end);
    };
    try {
      let at = staging.base;
      if (!this.direct) at = Math.max(0, at);
      else if (at < 0) at = staging.base = await this.findBase(buf, (from) => fill(buf, from, BLOCK), start);
      fill(buf, at, padded);
      await this.writeAt(buf, at, padded, start);
      this.pos += bytes;
      const tailBytes = this.pos % BLOCK;
      const tail = Buffer.allocUnsafe(tailBytes);
      buf.copy(tail, 0, at + used - tailBytes, at + used);
      this.tail = tail;
    } finally {
      giveBack(staging); // (a write in flight is over: resolved or failed)
    }
  }

  /** Cuts the file to its valid bytes (removing the zero padding and anything after) and syncs it. */
  async cut(): Promise<void> {
    await this.fh.truncate(this.pos);
    await this.fh.sync();
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  /**
   * Tries each candidate address with the first block of this write (only that block is copied for
   * each try) until the kernel takes one.
   */
  private async findBase(buf: Buffer, fillFirstBlock: (at: number) => void, start: number): Promise<number> {
    for (let at = 0; at < BLOCK; at += ADDRESS_STEP) { // (buf has BLOCK bytes to spare)
      fillFirstBlock(at);
      try {
        await this.writeAt(buf, at, BLOCK, start);
        return at;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
      }
    }
    throw new Error('O_DIRECT refused every buffer address of the staging buffer');
  }

  private async writeAt(buf: Buffer, at: number, length: number, position: number): Promise<void> {
    let done = 0;
    while (done < length) {
      const { bytesWritten } = await this.fh.write(buf, at + done, length - done, position + done);
      if (bytesWritten <= 0) throw new Error(`write at byte ${position + done} stored nothing`);
      done += bytesWritten;
    }
  }
}
