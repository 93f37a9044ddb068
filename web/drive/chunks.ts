// File contents in the store: a file is cut into CHUNK_SIZE pieces, one cell each (`chunk:<id>:<i>`).
// ChunkWriter stores a stream of bytes with a bounded number of chunk writes in flight (the caller
// awaits `write`, which is the backpressure that keeps a frontend's memory flat); chunkStream reads a
// byte range back as a web ReadableStream, fetching a few chunks ahead.
import type { StoreClient } from '../../actors/session.js';
import { chunkRow, CHUNK_COL } from './rows.js';
import { deleteSure, eachLimited, putSure } from '../../actors/store-writes.js';

/** Chunk writes in flight per upload. */
export const WRITES_IN_FLIGHT = 4;
/** Chunk reads in flight per download. */
export const READS_AHEAD = 4;
/** Chunk deletes in flight when a file is removed. */
const DELETES_IN_FLIGHT = 8;

/**
 * Chunk buffers given back once their write was answered on its only send, and taken again by the next
 * chunk of any upload. Each chunk had its own new 1 MiB buffer, and that allocation rate kept a
 * frontend's V8 in major collections during uploads (55-60 per two 200 MB upload+download rounds, half
 * its CPU; 26-35 with reuse). A buffer whose write was sent more than once is never reused: an earlier
 * send may still sit in a socket's queue, and zeromq sends the bytes without copying them.
 */
class SpareChunks {
  private readonly free: Buffer[] = [];
  constructor(private readonly keep: number) {}

  take(size: number): Buffer {
    const b = this.free.pop();
    return b !== undefined && b.length === size ? b : Buffer.allocUnsafe(size);
  }

  give(b: Buffer): void {
    if (this.free.length < this.keep) this.free.push(b);
  }
}

/** At most this many spare chunk buffers per frontend (16 MiB at 1 MiB chunks). */
const spareChunks = new SpareChunks(16);

export class ChunkWriter {
  private buf: Buffer;
  private fill = 0;
  private index = 0;
  private readonly inflight = new Set<Promise<void>>();
  private failure: unknown = null;
  /** Bytes accepted so far. */
  size = 0;

  constructor(
    private readonly store: StoreClient,
    private readonly file: string,
    private readonly chunkSize: number,
    private readonly maxInFlight = WRITES_IN_FLIGHT,
  ) {
    this.buf = spareChunks.take(chunkSize);
  }

  /** Chunks handed to the store so far (some may still be in flight). */
  get chunksStarted(): number {
    return this.index;
  }

  /** Takes `data`; resolves once it is buffered (waiting while too many chunk writes are in flight). */
  async write(data: Uint8Array): Promise<void> {
    let off = 0;
    while (off < data.length) {
      const n = Math.min(this.chunkSize - this.fill, data.length - off);
      this.buf.set(data.subarray(off, off + n), this.fill);
      this.fill += n;
      off += n;
      this.size += n;
      if (this.fill === this.chunkSize) await this.flush();
    }
  }

  private async flush(): Promise<void> {
    if (this.failure !== null) throw this.failure;
    while (this.inflight.size >= this.maxInFlight) await Promise.race(this.inflight);
    if (this.failure !== null) throw this.failure;
    const body = this.fill === this.chunkSize ? this.buf : this.buf.subarray(0, this.fill);
    const row = chunkRow(this.file, this.index++);
    this.buf = spareChunks.take(this.chunkSize);
    this.fill = 0;
    const sends = { count: 0 };
    const p: Promise<void> = putSure(this.store, row, CHUNK_COL, body, sends).then(
      () => {
        this.inflight.delete(p);
        if (sends.count === 1 && body.length === this.chunkSize) spareChunks.give(body); // nothing else holds it now
      },
      (e: unknown) => {
        this.failure ??= e;
        this.inflight.delete(p);
      },
    );
    this.inflight.add(p);
  }

  /** Stores what is left and waits for every chunk: then the whole file is durable. */
  async finish(): Promise<{ size: number; chunks: number }> {
    if (this.fill > 0) await this.flush();
    await Promise.all(this.inflight);
    if (this.failure !== null) throw this.failure;
    return { size: this.size, chunks: this.index };
  }

  /** Waits for the writes in flight and deletes every chunk this writer started. */
  async abort(): Promise<void> {
    await Promise.all(this.inflight);
    await deleteChunks(this.store, this.file, this.index);
  }
}

/** Deletes chunks 0 … count-1 of a file. */
export async function deleteChunks(store: StoreClient, file: string, count: number): Promise<void> {
  const indexes = Array.from({ length: count }, (_, i) => i);
  await eachLimited(indexes, DELETES_IN_FLIGHT, (i) => deleteSure(store, chunkRow(file, i), CHUNK_COL));
}

/**
 * Bytes `start` … `end` (inclusive) of a file of `size` bytes as a stream, chunk by chunk, with up to
 * READS_AHEAD chunk reads in flight. A missing or short chunk errors the stream (the client sees a
 * body shorter than its Content-Length, never wrong bytes).
 */
export function chunkStream(store: StoreClient, file: string, size: number, chunkSize: number, start: number, end: number): ReadableStream<Uint8Array> {
  const last = Math.floor(end / chunkSize);
  let nextFetch = Math.floor(start / chunkSize);
  let nextSend = nextFetch;
  const ahead: Array<Promise<Uint8Array>> = [];
  const fetchMore = (): void => {
    while (ahead.length < READS_AHEAD && nextFetch <= last) {
      const i = nextFetch++;
      const want = Math.min(chunkSize, size - i * chunkSize);
      const p = store.get(chunkRow(file, i), CHUNK_COL).then((v) => {
        if (v === null || v.length !== want) throw new Error(`chunk ${i} of file ${file} is ${v === null ? 'missing' : `${v.length} bytes, not ${want}`}`);
        return v;
      });
      p.catch(() => {}); // observed when its turn comes (or dropped on cancel)
      ahead.push(p);
    }
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        fetchMore();
        const chunk = await ahead.shift()!;
        const i = nextSend++;
        const from = i * chunkSize;
        const lo = Math.max(start - from, 0);
        const hi = Math.min(end - from + 1, chunk.length);
        controller.enqueue(lo === 0 && hi === chunk.length ? chunk : chunk.subarray(lo, hi));
        if (i === last) controller.close();
        else fetchMore();
      },
      cancel() {
        ahead.length = 0;
        nextFetch = last + 1;
      },
    },
    { highWaterMark: 0 },
  );
}
