// Web benchmark: logged-in `GET /` (the menu) through one frontend and then through two, with
// autocannon at 64 connections, on a cluster started just for the run (4 storage nodes, replication 3,
// 2 frontends). Also counts what one page costs in store round trips (data ops on the storage nodes
// divided by pages served).
//
//   node dist/test/bench/web-bench.js [--seconds N] [--connections N] [--port P] [--keep]
//
// Output: a table on stderr and last one line `BENCH_JSON {...}` on stdout.
import autocannon from 'autocannon';
import { cpus } from 'node:os';
import { TestCluster } from '../support/cluster.js';
import { WebClient } from '../support/web-client.js';
import { parseBenchOptions, runSuite } from './options.js';

interface Options {
  seconds: number;
  connections: number;
  basePort: number;
  keep: boolean;
}

function parseArgs(argv: string[]): Options {
  const o = parseBenchOptions('web-bench', argv, {
    numbers: [
      { flag: '--seconds', default: 5, min: 1, max: 600 },
      { flag: '--connections', default: 64, min: 1, max: 4096 },
      { flag: '--port', default: 17400, min: 1024, max: 64_000 },
    ],
    flags: ['--keep'],
  });
  return { seconds: o.numbers['--seconds']!, connections: o.numbers['--connections']!, basePort: o.numbers['--port']!, keep: o.flags.has('--keep') };
}

interface RunResult {
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  non2xx: number;
}

async function load(urls: string[], cookie: string, o: Options): Promise<RunResult> {
  // One autocannon instance per frontend, connections split evenly, run together.
  const per = Math.max(1, Math.floor(o.connections / urls.length));
  const results = await Promise.all(urls.map((url) => autocannon({ url: url + '/', connections: per, duration: o.seconds, headers: { cookie } })));
  const total = results.reduce((s, r) => s + r.requests.total, 0);
  return {
    requestsPerSec: Math.round(total / o.seconds),
    p50Ms: Math.max(...results.map((r) => r.latency.p50)),
    p99Ms: Math.max(...results.map((r) => r.latency.p99)),
    errors: results.reduce((s, r) => s + r.errors + r.timeouts, 0),
    non2xx: results.reduce((s, r) => s + r.non2xx, 0),
  };
}

async function storeOps(cluster: TestCluster): Promise<number> {
  const client = cluster.client();
  try {
    const infos = await Promise.all(cluster.storageNames.map((n) => client.nodeInfo(n)));
    return infos.reduce((s, i) => s + i.stats.ops, 0);
  } finally {
    await client.close();
  }
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const cluster = new TestCluster({ basePort: o.basePort, storageNodes: 4, workerThreads: 1, replication: 3, tablets: 32, frontends: 2, balancer: false });
  const say = (s: string): boolean => process.stderr.write(s + '\n');
  try {
    say(`web-bench: starting a cluster (4 storage nodes, R=3, 2 frontends) in ${cluster.dir}`);
    await cluster.start();
    const user = new WebClient(cluster.url('web1'));
    const signed = await user.signUp('benchuser', 'bench password');
    if (!signed.text.includes('Hello, benchuser')) throw new Error('could not sign up the bench user');
    const cookie = `pc_sid=${user.cookies.get('pc_sid')}`;
    // Warm up both frontends (JIT, sockets to every storage worker).
    await load([cluster.url('web1'), cluster.url('web2')], cookie, { ...o, seconds: 1 });

    const opsBefore = await storeOps(cluster);
    const one = await load([cluster.url('web1')], cookie, o);
    const opsAfter = await storeOps(cluster);
    const pages = one.requestsPerSec * o.seconds;
    const roundTrips = pages > 0 ? (opsAfter - opsBefore) / pages : NaN;
    const two = await load([cluster.url('web1'), cluster.url('web2')], cookie, o);

    const result = {
      bench: 'web',
      machine: { cpus: cpus().length },
      setup: { storageNodes: 4, replication: 3, connections: o.connections, seconds: o.seconds, page: 'GET / logged in (menu)' },
      oneFrontend: one,
      twoFrontends: two,
      scaling: Math.round((two.requestsPerSec / Math.max(1, one.requestsPerSec)) * 100) / 100,
      storeRoundTripsPerPage: Math.round(roundTrips * 100) / 100,
      targets: { requestsPerSec: 5000, p99Ms: 50, pass: one.requestsPerSec >= 5000 && one.p99Ms < 50 },
    };
    say('');
    say(`  one frontend : ${one.requestsPerSec} req/s, p50 ${one.p50Ms} ms, p99 ${one.p99Ms} ms (errors ${one.errors}, non-2xx ${one.non2xx})`);
    say(`  two frontends: ${two.requestsPerSec} req/s, p50 ${two.p50Ms} ms, p99 ${two.p99Ms} ms (x${result.scaling})`);
    say(`  store round trips per page: ${result.storeRoundTripsPerPage}`);
    say(`  target 5000 req/s with p99 < 50 ms through one frontend: ${result.targets.pass ? 'PASS' : 'MISS'}`);
    process.stdout.write(`BENCH_JSON ${JSON.stringify(result)}\n`);
    if (one.errors + one.non2xx + two.errors + two.non2xx > 0) process.exitCode = 1;
  } finally {
    await cluster.stop(o.keep);
  }
}

runSuite('web-bench', main);
