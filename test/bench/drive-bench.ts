// `penncloud bench drive` (npm run bench -- drive; plain `npm run bench` runs it with the other suites): upload and download of one large random file
// through one frontend, on a cluster with replication 3 whose replicas all share this machine's disk,
// next to what the disk itself can do, measured in the same run:
//   disk      1 MiB appends + fdatasync (fsync-probe.ts): the durable write bandwidth B; with R replicas
//             on one disk an upload can reach at most B / R  (target: upload >= 60% of that)
//   cp        a plain `cp` of the file on the same disk (page cache), and cp + fdatasync of the copy
//   upload    multipart POST to /drive/upload, timed until the reply (every chunk durable on R replicas)
//   download  GET /drive/file/<id>, streamed through sha256 (target >= 150 MB/s), checked byte-identical
// It also reports the frontend's peak memory growth and CPU, and the whole machine's CPU use (other
// work on the machine skews every figure).
//
//   node dist/test/bench/drive-bench.js [--mb 200] [--warmup 1] [--runs 3] [--port 25400] [--keep]   (other options are ignored)
//
// The first upload into a fresh cluster also creates its log segments (later ones overwrite retired
// segments), JIT-compiles the whole path and faults in every process's buffers: it ran at 60-65 % of
// the later ones here. So `--warmup` rounds (upload + download, reported, not counted) go first, as the
// disk probe also drops its first round; the figures are then the best and the median of `--runs`.
//
// Output: a table on stdout, progress on stderr, and last one line `BENCH_JSON {...}`.
import { execFileSync } from 'node:child_process';
import { closeSync, fdatasyncSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DriveHttp, writeRandomFile } from '../drive-helpers.js';
import { TestCluster } from '../support/cluster.js';
import { WebClient } from '../support/web-client.js';
import { probeFsync } from './fsync-probe.js';
import { parseBenchOptions, runSuite } from './options.js';
import { machineBusyPct, sampleMachine, sampleProcess, usageBetween } from './proc-stats.js';

interface Options {
  mb: number;
  warmup: number;
  runs: number;
  basePort: number;
  keep: boolean;
}

const log = (s: string): void => void process.stderr.write(`${s}\n`);

function parseArgs(argv: string[]): Options {
  const o = parseBenchOptions('drive-bench', argv, {
    numbers: [
      { flag: '--mb', default: 200, min: 1, max: 4000 },
      { flag: '--warmup', default: 1, min: 0, max: 5 },
      { flag: '--runs', default: 3, min: 1, max: 10 },
      { flag: '--port', default: 25400, min: 1024, max: 64_000 },
    ],
    flags: ['--keep'],
  });
  return { mb: o.numbers['--mb']!, warmup: o.numbers['--warmup']!, runs: o.numbers['--runs']!, basePort: o.numbers['--port']!, keep: o.flags.has('--keep') };
}

const MB = 1_000_000;
const round1 = (x: number): number => Math.round(x * 10) / 10;
const mbps = (bytes: number, ms: number): number => round1(bytes / MB / (ms / 1000));

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

/**
 * Durable write bandwidth of the disk under `dir`: 1 MiB appends, each followed by fdatasync, after one
 * unmeasured round (the first round on a fresh file runs at a third of the steady rate here: 245 vs
 * 700+ MB/s; the steady rate is the stricter limit).
 */
async function diskBandwidth(dir: string): Promise<{ syncMBps: number; asyncMBps: number }> {
  await probeFsync(dir, 64, 1 << 20, 2);
  const p = await probeFsync(dir, 64, 1 << 20, 2);
  return { syncMBps: round1(1.048576 / (p.sync.meanMs / 1000)), asyncMBps: round1(1.048576 / (p.async.meanMs / 1000)) };
}

function timeCp(src: string, dst: string, bytes: number): { cpMBps: number; cpDurableMBps: number } {
  const t0 = performance.now();
  execFileSync('cp', [src, dst]);
  const t1 = performance.now();
  const fd = openSync(dst, 'r+');
  fdatasyncSync(fd);
  closeSync(fd);
  const t2 = performance.now();
  rmSync(dst, { force: true });
  return { cpMBps: mbps(bytes, t1 - t0), cpDurableMBps: mbps(bytes, t2 - t0) };
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const replication = 3;
  const cluster = new TestCluster({
    basePort: o.basePort,
    storageNodes: 3,
    workerThreads: 1,
    tablets: 8,
    replication,
    frontends: 1,
    extraToml: `[web]\ndrive_quota_mb = ${Math.max(1024, o.mb * (o.runs + 1))}`,
  });
  log(`starting a cluster (3 storage nodes, replication ${replication}, 1 frontend) in ${cluster.dir}`);
  await cluster.start();
  const file = join(cluster.dir, 'bench-upload.bin');
  try {
    const web = new WebClient(cluster.url('web1'));
    await web.signUp('bench', 'bench password');
    const drive = new DriveHttp(web);
    const root = await drive.root();
    const bytes = o.mb * MB;
    log(`writing ${o.mb} MB of random data`);
    const sum = await writeRandomFile(file, bytes);

    log('measuring the disk: 1 MiB appends with fdatasync');
    const disk = await diskBandwidth(cluster.dir);
    const cp = timeCp(file, `${file}.copy`, bytes);
    const limit = disk.asyncMBps / replication;
    // The generator sends the file from memory: streaming it from disk cost the generator a quarter of
    // this 2-core machine (a fresh 1 MiB buffer per read, with page faults and major GCs in the bench
    // process), CPU the cluster under test then lacked. The cluster's work is the same either way.
    const content = readFileSync(file);

    const web1 = cluster.pid('web1')!;
    const storagePids = cluster.storageNames.map((n) => cluster.pid(n)!);
    const runs: Array<Record<string, unknown>> = [];
    const warmups: Array<Record<string, unknown>> = [];
    for (let run = 1 - o.warmup; run <= o.runs; run++) {
      const name = run < 1 ? `warm-up ${run + o.warmup}` : `run ${run}`;
      log(`${name}: upload`);
      const idle = rssMb(web1);
      let peak = idle;
      const sampler = setInterval(() => (peak = Math.max(peak, rssMb(web1))), 50);
      const [m0, f0, s0] = [sampleMachine(), sampleProcess(web1), storagePids.map(sampleProcess)];
      const t0 = performance.now();
      const up = await drive.upload(root, [{ name: `bench-${run}.bin`, size: bytes, data: content }]).finally(() => clearInterval(sampler));
      const upMs = performance.now() - t0;
      const [m1, f1, s1] = [sampleMachine(), sampleProcess(web1), storagePids.map(sampleProcess)];
      if (up.status !== 200) throw new Error(`upload failed: HTTP ${up.status} ${up.body.toString()}`);
      const id = (JSON.parse(up.body.toString()) as { files: Array<{ id: string }> }).files[0]!.id;

      log(`${name}: download`);
      const m2 = sampleMachine();
      const f2 = sampleProcess(web1);
      const t1 = performance.now();
      const down = await drive.downloadHash(id);
      const downMs = performance.now() - t1;
      const [m3, f3] = [sampleMachine(), sampleProcess(web1)];
      if (down.sha !== sum || down.bytes !== bytes) throw new Error(`download differs: ${down.bytes} bytes, sha ${down.sha} (want ${sum})`);
      const uploadMBps = mbps(bytes, upMs);
      (run < 1 ? warmups : runs).push({
        run: name,
        uploadMBps,
        uploadOfLimitPct: round1((uploadMBps / limit) * 100),
        downloadMBps: mbps(bytes, downMs),
        uploadSeconds: round1(upMs / 1000),
        downloadSeconds: round1(downMs / 1000),
        frontendRssGrowthMb: Math.round(peak - idle),
        frontendCpuUploadPct: usageBetween(f0, f1, upMs)?.pct ?? null,
        storageCpuUploadPct: s0.map((a, i) => usageBetween(a, s1[i]!, upMs)?.pct ?? null),
        frontendCpuDownloadPct: usageBetween(f2, f3, downMs)?.pct ?? null,
        machineBusyUploadPct: machineBusyPct(m0, m1),
        machineBusyDownloadPct: machineBusyPct(m2, m3),
      });
      // make room for the next run
      await drive.remove(id);
    }
    const best = (k: string): number => Math.max(...runs.map((r) => r[k] as number));
    const median = (k: string): number => {
      const v = runs.map((r) => r[k] as number).sort((a, b) => a - b);
      return v.length % 2 === 1 ? v[(v.length - 1) / 2]! : round1((v[v.length / 2 - 1]! + v[v.length / 2]!) / 2);
    };
    const report = {
      fileMB: o.mb,
      replication,
      diskSyncMBps: disk.syncMBps,
      diskAsyncMBps: disk.asyncMBps,
      uploadLimitMBps: round1(limit),
      cpMBps: cp.cpMBps,
      cpDurableMBps: cp.cpDurableMBps,
      uploadMBps: best('uploadMBps'),
      uploadOfLimitPct: best('uploadOfLimitPct'),
      downloadMBps: best('downloadMBps'),
      median: { uploadMBps: median('uploadMBps'), uploadOfLimitPct: median('uploadOfLimitPct'), downloadMBps: median('downloadMBps') },
      targets: { uploadOfLimitPct: 60, downloadMBps: 150 },
      met: { upload: best('uploadOfLimitPct') >= 60, download: best('downloadMBps') >= 150 },
      cores: Number(execFileSync('nproc', { encoding: 'utf8' }).trim()),
      warmups,
      runs,
    };
    const rows: Array<[string, string]> = [
      ['disk: 1 MiB append + fdatasync', `${disk.asyncMBps} MB/s (sync syscalls ${disk.syncMBps} MB/s)`],
      [`upload limit: disk / ${replication} replicas`, `${round1(limit)} MB/s`],
      ['cp (page cache) / cp + fdatasync', `${cp.cpMBps} MB/s / ${cp.cpDurableMBps} MB/s`],
      [`upload ${o.mb} MB (best of ${o.runs})`, `${report.uploadMBps} MB/s = ${report.uploadOfLimitPct}% of the limit (target 60%)`],
      [`upload: median of ${o.runs}`, `${report.median.uploadMBps} MB/s = ${report.median.uploadOfLimitPct}% of the limit`],
      [`upload: ${o.warmup} warm-up round(s), not counted`, `${warmups.map((r) => `${r['uploadMBps']} MB/s`).join(', ') || '-'}`],
      [`download ${o.mb} MB (best of ${o.runs})`, `${report.downloadMBps} MB/s (target 150); median ${report.median.downloadMBps}`],
      // The warm-up rounds too: the first upload into a fresh frontend is where its memory grows.
      ['frontend memory growth (upload)', `${[...warmups, ...runs].map((r) => `${r['frontendRssGrowthMb']}${r === warmups[0] ? ' (warm-up)' : ''}`).join(', ')} MB`],
      ['machine busy during upload', `${runs.map((r) => r['machineBusyUploadPct']).join(', ')} % of ${report.cores} cores`],
    ];
    for (const [k, v] of rows) process.stdout.write(`${k.padEnd(42)} ${v}\n`);
    process.stdout.write(`BENCH_JSON ${JSON.stringify(report)}\n`);
  } finally {
    rmSync(file, { force: true });
    await cluster.stop(o.keep);
  }
}

runSuite('drive-bench', main);
