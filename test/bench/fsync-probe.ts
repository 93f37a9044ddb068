// Measures the raw cost of making a small append durable on the disk the cluster writes to: the floor
// under every PUT's latency (a write is acknowledged only after its log record is fdatasync'd).
// Two flavours: synchronous syscalls (the disk alone), and through fs/promises as the WAL does it
// (adds the hop to libuv's thread pool and back).
import { closeSync, fdatasyncSync, openSync, rmSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LatencyHistogram, type LatencySummary } from './histogram.js';

export interface FsyncProbe {
  appends: number;
  appendBytes: number;
  /** write(1 KiB) + fdatasync with blocking syscalls. */
  sync: LatencySummary;
  /** FileHandle.write + FileHandle.datasync (libuv thread pool), like actors/storage/wal.ts. */
  async: LatencySummary;
  /**
   * `files` files appended + datasync'd at the same time, each in its own sequential loop (like one
   * WAL per tablet, all flushing at once): the per-flush latency and the total flushes per second
   * the disk (and libuv's pool of UV_THREADPOOL_SIZE threads, default 4) sustains.
   */
  parallel: { files: number; flushesPerSec: number; latency: LatencySummary };
}

export async function probeFsync(dir: string, appends = 300, appendBytes = 1024, parallelFiles = 16): Promise<FsyncProbe> {
  const chunk = Buffer.alloc(appendBytes, 0x5a);

  const syncFile = join(dir, 'fsync-probe-sync.tmp');
  const syncHist = new LatencyHistogram();
  const fd = openSync(syncFile, 'a');
  try {
    for (let i = 0; i < appends; i++) {
      const t = performance.now();
      writeSync(fd, chunk);
      fdatasyncSync(fd);
      syncHist.recordMs(performance.now() - t);
    }
  } finally {
    closeSync(fd);
    rmSync(syncFile, { force: true });
  }

  const asyncFile = join(dir, 'fsync-probe-async.tmp');
  const asyncHist = new LatencyHistogram();
  const fh = await open(asyncFile, 'a');
  try {
    for (let i = 0; i < appends; i++) {
      const t = performance.now();
      await fh.write(chunk);
      await fh.datasync();
      asyncHist.recordMs(performance.now() - t);
    }
  } finally {
    await fh.close();
    rmSync(asyncFile, { force: true });
  }

  const parallel = await probeParallel(dir, parallelFiles, Math.max(20, Math.round(appends / 4)), chunk);
  return { appends, appendBytes, sync: syncHist.summary(), async: asyncHist.summary(), parallel };
}

async function probeParallel(dir: string, files: number, appendsPerFile: number, chunk: Buffer): Promise<FsyncProbe['parallel']> {
  const hist = new LatencyHistogram();
  const handles = await Promise.all(Array.from({ length: files }, (_, i) => open(join(dir, `fsync-probe-par-${i}.tmp`), 'a')));
  const started = performance.now();
  try {
    await Promise.all(
      handles.map(async (fh) => {
        for (let i = 0; i < appendsPerFile; i++) {
          const t = performance.now();
          await fh.write(chunk);
          await fh.datasync();
          hist.recordMs(performance.now() - t);
        }
      }),
    );
  } finally {
    await Promise.all(handles.map((fh) => fh.close()));
    for (let i = 0; i < files; i++) rmSync(join(dir, `fsync-probe-par-${i}.tmp`), { force: true });
  }
  const seconds = (performance.now() - started) / 1000;
  return { files, flushesPerSec: Math.round((files * appendsPerFile) / seconds), latency: hist.summary() };
}
