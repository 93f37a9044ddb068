// A young-generation GC every so many bytes received, for a storage worker.
//
// Why: zeromq.js hands every received part over 128 B to JS as a buffer V8 did not allocate, and
// reports its size to V8 as external memory, on top of V8's own count of the buffer (so a 1 MiB drive
// chunk counts about 2 MiB). V8 starts a full mark-compact when external memory has grown 64 MB past
// its lowest point since the last one. A worker that receives 200 MB/s of chunks allocates little on
// its JS heap, so its young-generation GCs, which free the chunks already done with, come seldom: the
// count climbed past that mark every ~30 MB received, and a full GC followed every ~150 ms during
// uploads (15-20 % of a storage node's CPU, most of it concurrent marking). A young GC costs what
// survives it (little: the chunks of the moment), so one every SCAVENGE_EVERY_BYTES keeps the count
// below the mark. Session 11: 24 -> 0 full GCs per worker over three 200 MB uploads, storage CPU
// per MB uploaded -6 to -10 % in same-time pairs (with the catch-up ring holding chunks cold once
// durable, replica-core.ts; without that the chunks it held outlived young GCs and the full GCs stayed).
//
// The GC function exists when the process runs with --expose-gc; a storage node sets that flag for its
// worker isolates before it starts them (node.ts). Without it, this does nothing.

/** Received bytes between two young GCs: well under the 32 MB of real bytes that reach V8's mark. */
export const SCAVENGE_EVERY_BYTES = 16 << 20;

type GcFunction = (options: { type: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;

export class ScavengePacer {
  private since = 0;
  private readonly gc: GcFunction | null;

  constructor(
    private readonly everyBytes = SCAVENGE_EVERY_BYTES,
    gc: GcFunction | null = ((globalThis as { gc?: GcFunction }).gc ?? null),
  ) {
    this.gc = gc;
  }

  /** Whether young GCs can be asked for here. */
  get active(): boolean {
    return this.gc !== null;
  }

  received(bytes: number): void {
    if (this.gc === null) return;
    this.since += bytes;
    if (this.since < this.everyBytes) return;
    this.since = 0;
    this.gc({ type: 'minor' });
  }
}
