// `penncloud up`: starts every node of the topology that lives on this machine, one OS process each,
// supervises them (a node that dies is restarted after timeouts.restart_delay_ms), prints the URL to
// open, and stops everything cleanly on Ctrl-C / SIGTERM. Each node's output goes to <data>/logs/<node>.log;
// <data>/cluster.json records the pids so `penncloud status` can show them.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { allNodes, endpoint, type NodeKind, type Topology } from '../transport/topology.js';
import { StoreClient } from './session.js';

export interface LaunchedNode {
  name: string;
  kind: NodeKind;
}

/** True when `host` names this machine. */
export function isLocalHost(host: string): boolean {
  if (['127.0.0.1', 'localhost', '::1', '0.0.0.0', hostname()].includes(host) || host.startsWith('127.')) return true;
  return Object.values(networkInterfaces()).some((list) => list?.some((i) => i.address === host));
}

export function localNodes(topo: Topology): LaunchedNode[] {
  return allNodes(topo)
    .filter((n) => isLocalHost(n.host))
    .map(({ name, kind }) => ({ name, kind }));
}

export interface ClusterFile {
  launcherPid: number;
  topology: string;
  pids: Record<string, number>;
}

export function clusterFilePath(dataRoot: string): string {
  return join(dataRoot, 'cluster.json');
}

export function readClusterFile(dataRoot: string): ClusterFile | null {
  try {
    return JSON.parse(readFileSync(clusterFilePath(dataRoot), 'utf8')) as ClusterFile;
  } catch {
    return null;
  }
}

const CLI = fileURLToPath(new URL('../penncloud.js', import.meta.url));

/**
 * A frontend's old generation is left to grow to this many MiB before V8 runs a full (mark-compact) GC
 * for its size alone. Its live heap is 15-25 MiB, so V8's own limit sat just above that and an upload
 * started a mark-compact every 50-120 ms, each freeing 1-2 MiB: 38 of them per three 200 MB uploads,
 * with the concurrent marking threads as busy as the frontend's own thread (docs/benchmarks.md,
 * "Session 10"). With the floor, the same uploads run none, and the old generation grows ~2 MiB per
 * 200 MB uploaded, so memory stays bounded by it.
 */
export const FRONTEND_OLD_SPACE_FLOOR_MB = 64;

/**
 * V8 flags of a node's process, by kind. (A storage node sets its workers' heap itself, in node.ts, with
 * setFlagsFromString before they start: a worker isolate is created later, so that holds however the
 * node was started. A frontend's heap is its main isolate's, which only a command-line flag reaches.)
 */
function v8Flags(kind: NodeKind | undefined): string[] {
  return kind === 'frontend' ? [`--initial-old-space-size=${FRONTEND_OLD_SPACE_FLOOR_MB}`] : [];
}

/**
 * glibc malloc settings of a storage node's process (read once, at its start). A storage node receives
 * every drive chunk into a fresh 1 MiB buffer (libzmq's), and frees it milliseconds later. With glibc's
 * defaults, freeing a chunk that big moves its thresholds up to about it, so the arenas are trimmed
 * back to the kernel whenever 2 MiB lie free at their top, and the next chunks land on pages the kernel
 * must zero again (`clear_page_erms`: 5 % of a storage node's samples during uploads). Setting them
 * turns that adjustment off and keeps freed memory for reuse: storage CPU per MB uploaded -1.5 to
 * -11 % (mean -7 %) over eight same-time pairs, RSS after four 200 MB uploads +8 to +17 MB
 * (benchmarks.md, session 11).
 */
export const STORAGE_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_TRIM_THRESHOLD_: String(512 << 20), // give memory back only when 512 MiB lie free at the top
  MALLOC_TOP_PAD_: String(64 << 20), // grow the heap in steps of 64 MiB (pages are used only once touched)
  MALLOC_MMAP_THRESHOLD_: String(32 << 20), // allocations under 32 MiB (drive chunks, mail parts) come from the heap
};

function kindOf(topo: Topology, name: string): NodeKind | undefined {
  return allNodes(topo).find((n) => n.name === name)?.kind;
}

/** The environment of node `name`'s process: `base` (the launcher's own) plus its kind's settings. */
export function nodeProcessEnv(topo: Topology, name: string, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return kindOf(topo, name) === 'storage' ? { ...base, ...STORAGE_MALLOC_ENV } : { ...base };
}

/**
 * The arguments (after the node binary) that start node `name` of `topo`, as `up` and the tests do
 * (`cli`: the compiled penncloud.js, which tests running from the sources name themselves).
 */
export function nodeProcessArgs(topo: Topology, name: string, topologyFile: string, dataRoot: string, cli = CLI): string[] {
  return [...v8Flags(kindOf(topo, name)), cli, 'node', name, '--topology', topologyFile, '--data', dataRoot];
}

export interface UpOptions {
  topologyFile: string;
  dataRoot: string;
  /** Where the launcher's own lines go (the URL line, restarts). */
  say: (line: string) => void;
}

export async function up(topo: Topology, opts: UpOptions): Promise<{ stop: () => Promise<void>; done: Promise<void> }> {
  const nodes = localNodes(topo);
  if (nodes.length === 0) throw new Error(`no node of ${topo.file} lives on this machine (${hostname()})`);
  await refuseIfRunning(topo);
  const logDir = join(opts.dataRoot, 'logs');
  mkdirSync(logDir, { recursive: true });
  const children = new Map<string, ChildProcess>();
  const pids: Record<string, number> = {};
  let stopping = false;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));

  const writeClusterFile = (): void => {
    const file: ClusterFile = { launcherPid: process.pid, topology: topo.file, pids };
    writeFileSync(clusterFilePath(opts.dataRoot), JSON.stringify(file, null, 2));
  };

  const start = (node: LaunchedNode): void => {
    const fd = openSync(join(logDir, `${node.name}.log`), 'a');
    const child = spawn(process.execPath, nodeProcessArgs(topo, node.name, opts.topologyFile, opts.dataRoot), {
      stdio: ['ignore', fd, fd],
      env: nodeProcessEnv(topo, node.name),
    });
    closeSync(fd);
    children.set(node.name, child);
    if (child.pid !== undefined) pids[node.name] = child.pid;
    writeClusterFile();
    child.on('exit', (code, signal) => {
      children.delete(node.name);
      delete pids[node.name];
      if (stopping) {
        if (children.size === 0) resolveDone();
        return;
      }
      writeClusterFile();
      opts.say(`node ${node.name} exited (${signal ?? `code ${code}`}); restarting in ${topo.timeouts.restartDelayMs} ms`);
      setTimeout(() => {
        if (!stopping) start(node);
      }, topo.timeouts.restartDelayMs);
    });
  };

  // The master first, so storage nodes find it on their first heartbeat.
  for (const n of nodes) start(n);

  const stop = async (): Promise<void> => {
    if (stopping) return done;
    stopping = true;
    if (children.size === 0) resolveDone();
    for (const c of children.values()) c.kill('SIGTERM');
    const killer = setTimeout(() => {
      for (const c of children.values()) c.kill('SIGKILL');
    }, 15_000);
    await done;
    clearTimeout(killer);
    rmSync(clusterFilePath(opts.dataRoot), { force: true });
  };

  try {
    await waitUntilReady(topo, nodes);
  } catch (e) {
    await stop();
    throw e;
  }
  return { stop, done };
}

async function refuseIfRunning(topo: Topology): Promise<void> {
  const client = StoreClient.fromTopology(topo, { timeoutMs: 300, maxAttempts: 1 });
  const answers = await client.status().then(
    () => true,
    () => false,
  );
  await client.close();
  if (answers) throw new Error(`a cluster is already running: the master at ${endpoint(topo.master.host, topo.master.port)} answers`);
}

/** True when every local frontend and the balancer answer HTTP. */
async function servicesAnswer(topo: Topology, nodes: LaunchedNode[]): Promise<boolean> {
  // A frontend answers its health check; the balancer redirects (it has heard from a frontend).
  const checks: Array<[url: string, status: number]> = [];
  for (const n of nodes) {
    const f = topo.frontends.find((x) => x.name === n.name);
    if (f) checks.push([`http://${f.host}:${f.port}/healthz`, 200]);
    if (n.kind === 'balancer' && topo.balancer && topo.frontends.length > 0) checks.push([`http://${topo.balancer.host}:${topo.balancer.port}/`, 307]);
  }
  const answers = await Promise.all(
    checks.map(([u, want]) =>
      fetch(u, { redirect: 'manual', signal: AbortSignal.timeout(1000) }).then(
        (r) => r.status === want,
        () => false,
      ),
    ),
  );
  return answers.every(Boolean);
}

/** Waits until the master answers and every local storage node is alive (bounded). */
async function waitUntilReady(topo: Topology, nodes: LaunchedNode[], timeoutMs = 60_000): Promise<void> {
  const client = StoreClient.fromTopology(topo, { timeoutMs: 500, maxAttempts: 1 });
  const want = nodes.filter((n) => n.kind === 'storage').map((n) => n.name);
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      try {
        const st = await client.status();
        if (want.every((name) => st.nodes.find((n) => n.name === name)?.state === 'alive') && (await servicesAnswer(topo, nodes))) return;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`cluster did not come up within ${timeoutMs / 1000} s; see the logs`);
  } finally {
    await client.close();
  }
}
