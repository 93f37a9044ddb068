#!/usr/bin/env node
// The penncloud command line: up, node, status, kv, bench.
// User mistakes: one line on stderr, exit 2. Not found / CPUT mismatch: exit 1.
import { Command, CommanderError } from 'commander';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { localNodes, readClusterFile, up } from './actors/launcher.js';
import { StoreClient, StoreError } from './actors/session.js';
import { allNodes, ConfigError, dataRoot, endpoint, loadTopology, storageNode, type Topology } from './transport/topology.js';

class UsageError extends Error {}
/** Exit 1 with a message: the cell is missing or a CPUT did not match. */
class NegativeAnswer extends Error {}

interface CommonOpts {
  topology: string;
  data?: string;
}

const DEFAULT_TOPOLOGY = process.env['PENNCLOUD_TOPOLOGY'] ?? 'topology.toml';

function topologyOf(o: CommonOpts): Topology {
  return loadTopology(o.topology);
}

async function withClient<T>(o: CommonOpts, fn: (c: StoreClient, topo: Topology) => Promise<T>): Promise<T> {
  const topo = topologyOf(o);
  const client = StoreClient.fromTopology(topo, { maxAttempts: 6 });
  try {
    return await fn(client, topo);
  } finally {
    await client.close();
  }
}

/** Reads a value from stdin, refusing (without buffering the rest) one larger than a frame may carry. */
async function readStdin(limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new UsageError(`the value on stdin exceeds ${limit} bytes (limits.max_message_bytes); store big data in chunks`);
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts);
}

function writeOut(data: Uint8Array | string): Promise<void> {
  return new Promise((resolve, reject) => process.stdout.write(data, (e) => (e ? reject(e) : resolve())));
}

function waitForSignal(): Promise<string> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

const program = new Command();
program
  .name('penncloud')
  .description('penncloud: webmail and a web drive on a replicated key-value store')
  .exitOverride()
  .configureOutput({ outputError: (str, write) => write(str.split('\n')[0] + '\n') });

const withTopology = (c: Command): Command => c.option('--topology <file>', 'topology file', DEFAULT_TOPOLOGY);

withTopology(program.command('up'))
  .description('start every node of the topology that lives on this machine, and supervise them')
  .option('--data <dir>', 'data directory (default: cluster.data_dir of the topology)')
  .action(async (o: CommonOpts) => {
    const topo = topologyOf(o);
    const root = dataRoot(topo, o.data);
    const nodes = localNodes(topo);
    const cluster = await up(topo, { topologyFile: topo.file, dataRoot: root, say: (l) => console.log(l) });
    const b = topo.balancer;
    const open = b ? `open http://${b.host}:${b.port}/` : `master at ${endpoint(topo.master.host, topo.master.port)}`;
    console.log(`penncloud is up (${nodes.length} nodes, data in ${root}): ${open}`);
    const signal = await Promise.race([waitForSignal(), cluster.done.then(() => 'exit')]);
    if (signal !== 'exit') console.log(`\n${signal}: stopping every node...`);
    await cluster.stop();
    console.log('stopped');
  });

withTopology(program.command('node'))
  .description('run one node of the topology in this process (master, storage, frontend, smtp or balancer)')
  .argument('<name>', 'node name from the topology')
  .option('--data <dir>', 'data directory')
  .action(async (name: string, o: CommonOpts) => {
    const topo = topologyOf(o);
    const root = dataRoot(topo, o.data);
    const node = allNodes(topo).find((n) => n.name === name);
    if (!node) throw new UsageError(`no node named '${name}' in ${topo.file} (nodes: ${allNodes(topo).map((n) => n.name).join(', ')})`);
    // Each kind loads only its own modules: a storage node has no use for hono or mailparser.
    let handle: { stop(): Promise<void> };
    switch (node.kind) {
      case 'master':
        handle = await (await import('./actors/master.js')).runMaster(topo, root);
        break;
      case 'storage':
        handle = await (await import('./actors/storage/node.js')).runStorageNode(topo, name, root);
        break;
      case 'frontend':
        handle = await (await import('./web/frontend.js')).runFrontend(topo, name);
        break;
      case 'balancer':
        handle = await (await import('./web/balancer.js')).runBalancer(topo);
        break;
      case 'smtp':
        handle = await (await import('./mail/smtp-node.js')).runSmtpNode(topo, name);
        break;
    }
    await waitForSignal();
    await handle.stop();
    process.exit(0);
  });

withTopology(program.command('status'))
  .description('every node and its state; every tablet with its primary, replicas and epoch')
  .option('--json', 'machine-readable output')
  .option('--data <dir>', 'data directory (to find pids of nodes started by up)')
  .action(async (o: CommonOpts & { json?: boolean }) => {
    await withClient(o, async (client, topo) => {
      const st = await client.status();
      const launched = readClusterFile(dataRoot(topo, o.data));
      const nodes = st.nodes.map((n) => ({ ...n, pid: launched?.pids[n.name] ?? null, reportedPid: n.pid }));
      const tablets = st.map.assignments.map((a) => ({ id: a.id, primary: a.primary, replicas: a.replicas, inSync: a.inSync, epoch: a.epoch, lsn: a.lsn }));
      // Frontends and SMTP nodes as the balancer sees them (their heartbeats go there, not to the master).
      const source = (await import('./web/admin/services.js')).balancerServices(topo);
      const svc = await source.fetch();
      await source.close();
      const services = (svc.rep?.nodes ?? []).map((n) => ({ name: n.name, kind: n.kind, state: n.alive ? 'alive' : 'dead', pid: n.pid, address: n.url, load: n.load, lastHeartbeatMs: n.lastHeartbeatMs }));
      if (o.json) {
        await writeOut(JSON.stringify({ mapVersion: st.map.version, nodes, services, servicesProblem: svc.problem, tablets }, null, 2) + '\n');
        return;
      }
      const lines = ['NODE       KIND      STATE       PID      ADDRESS'];
      for (const n of nodes) lines.push(`${n.name.padEnd(10)} ${n.kind.padEnd(9)} ${n.state.padEnd(11)} ${String(n.pid ?? '-').padEnd(8)} ${n.address}`);
      for (const n of services) lines.push(`${n.name.padEnd(10)} ${n.kind.padEnd(9)} ${n.state.padEnd(11)} ${String(n.pid).padEnd(8)} ${n.address}  (${n.load.inflight} in flight, ${n.load.served} served)`);
      if (svc.rep && topo.balancer) lines.push(`${topo.balancer.name.padEnd(10)} ${'balancer'.padEnd(9)} ${'alive'.padEnd(11)} ${String(svc.rep.balancer.pid).padEnd(8)} ${svc.rep.balancer.url}`);
      if (svc.problem && topo.balancer) lines.push(`(${svc.problem})`);
      lines.push('', 'TABLET  EPOCH  PRIMARY    REPLICAS (log position; * = not in sync)');
      for (const t of tablets) {
        const reps = t.replicas.map((r) => `${r}(${t.lsn[r] ?? '?'})${t.inSync.includes(r) ? '' : '*'}`).join(' ');
        lines.push(`${String(t.id).padEnd(7)} ${String(t.epoch).padEnd(6)} ${(t.primary ?? '(electing)').padEnd(10)} ${reps}`);
      }
      await writeOut(lines.join('\n') + '\n');
    });
  });

const kv = program.command('kv').description('read and write cells of the store');
withTopology(kv.command('put'))
  .description('write a cell; VALUE from stdin when left out (binary-safe)')
  .argument('<row>')
  .argument('<col>')
  .argument('[value]')
  .action(async (row: string, col: string, value: string | undefined, o: CommonOpts) => {
    const limit = topologyOf(o).limits.maxMessageBytes - 64 * 1024; // room for the row, column and framing
    const bytes = value === undefined ? await readStdin(limit) : Buffer.from(value, 'utf8');
    await withClient(o, (c) => c.put(row, col, bytes));
  });
withTopology(kv.command('get'))
  .description('print a cell\'s raw bytes to stdout')
  .argument('<row>')
  .argument('<col>')
  .action(async (row: string, col: string, o: CommonOpts) => {
    const v = await withClient(o, (c) => c.get(row, col));
    if (v === null) throw new NegativeAnswer(`no cell (${row}, ${col})`);
    await writeOut(v);
  });
withTopology(kv.command('cput'))
  .description('write NEW only if the cell holds OLD (with --absent: only if the cell does not exist; then give just NEW)')
  .argument('<row>')
  .argument('<col>')
  .argument('<old>')
  .argument('[new]')
  .option('--absent', 'expect the cell to be absent')
  .action(async (row: string, col: string, a: string, b: string | undefined, o: CommonOpts & { absent?: boolean }) => {
    if (o.absent ? b !== undefined : b === undefined) throw new UsageError(o.absent ? 'with --absent give ROW COL NEW' : 'give ROW COL OLD NEW');
    const ok = await withClient(o, (c) => (o.absent ? c.cput(row, col, null, a) : c.cput(row, col, a, b!)));
    if (!ok) throw new NegativeAnswer(`cput of (${row}, ${col}) did not happen: the current value differs`);
  });
withTopology(kv.command('delete'))
  .description('delete a cell')
  .argument('<row>')
  .argument('<col>')
  .action(async (row: string, col: string, o: CommonOpts) => {
    if (!(await withClient(o, (c) => c.delete(row, col)))) throw new NegativeAnswer(`no cell (${row}, ${col})`);
  });
withTopology(kv.command('cols'))
  .description('list the columns of a row, one per line')
  .argument('<row>')
  .action(async (row: string, o: CommonOpts) => {
    const cols = await withClient(o, (c) => c.cols(row));
    await writeOut(cols.map((c) => c + '\n').join(''));
  });

const adminCmd = program.command('admin').description('fault injection on storage nodes');
for (const action of ['stop', 'restart'] as const) {
  withTopology(adminCmd.command(action))
    .description(action === 'stop' ? 'make a storage node behave as crashed (drops memory, stops serving and heartbeating)' : 'bring a stopped storage node back through recovery')
    .argument('<node>', 'storage node name')
    .action(async (node: string, o: CommonOpts) => {
      await withClient(o, async (c, topo) => {
        if (!storageNode(topo, node)) throw new UsageError(`no storage node named '${node}' (storage nodes: ${topo.storage.map((s) => s.name).join(', ')})`);
        await c.admin(node, action);
      });
      await writeOut(`${node}: ${action === 'stop' ? 'stopped' : 'restarting'}\n`);
    });
}

const BENCH_SUITES = ['kv', 'web', 'drive', 'mail'];

program
  .command('bench')
  .description(`benchmarks on clusters started in temporary directories; each prints a table and a BENCH_JSON line. Suites: ${BENCH_SUITES.join(', ')} (default: all); other options go to the suite`)
  .allowUnknownOption()
  .allowExcessArguments()
  .action(async () => {
    const args = process.argv.slice(3);
    const chosen = args.filter((a) => BENCH_SUITES.includes(a));
    const rest = args.filter((a) => !BENCH_SUITES.includes(a));
    const suites = (chosen.length > 0 ? chosen : BENCH_SUITES).filter((s) => existsSync(fileURLToPath(new URL(`./test/bench/${s}-bench.js`, import.meta.url))));
    let worst = 0;
    for (const suite of suites) {
      const script = fileURLToPath(new URL(`./test/bench/${suite}-bench.js`, import.meta.url));
      const child = spawn(process.execPath, [script, ...rest], { stdio: 'inherit' });
      const code = await new Promise<number>((r) => child.on('exit', (c) => r(c ?? 1)));
      worst = Math.max(worst, code);
      if (code === 130) break;
    }
    process.exitCode = worst;
  });

async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
    process.exit(process.exitCode ?? 0);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exit(e.exitCode === 0 ? 0 : 2);
    }
    if (e instanceof NegativeAnswer) {
      process.stderr.write(`penncloud: ${e.message}\n`);
      process.exit(1);
    }
    if (e instanceof UsageError || e instanceof ConfigError || e instanceof StoreError) {
      const hint = e instanceof StoreError && e.code === 'unavailable' ? ' (is the cluster running? start it with: npm start)' : '';
      process.stderr.write(`penncloud: ${e.message}${hint}\n`);
      process.exit(2);
    }
    const err = e as Error;
    process.stderr.write(`penncloud: ${err.message}\n`);
    if (process.env['PENNCLOUD_DEBUG']) process.stderr.write(`${err.stack}\n`);
    process.exit(2);
  }
}

await main();
