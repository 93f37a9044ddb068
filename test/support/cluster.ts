// Starts a real cluster for tests and benchmarks: every node its own OS process (`penncloud node NAME`),
// on its own ports, with its data in a fresh temporary directory. Nodes can be killed (-9) and restarted.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { nodeProcessArgs, nodeProcessEnv } from '../../actors/launcher.js';
import { StoreClient, type StoreClientOptions } from '../../actors/session.js';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { loadTopology, type Topology } from '../../transport/topology.js';

export const ROOT = resolve(import.meta.dirname, '..', '..').replace(/[/\\]dist$/, '');
export const CLI = join(ROOT, 'dist', 'penncloud.js');

export interface ClusterSpec {
  basePort: number;
  storageNodes: number;
  tablets?: number;
  replication?: number;
  tabletsInMemory?: number;
  workerThreads?: number;
  checkpointBytes?: number;
  catchupRecords?: number;
  requestMs?: number;
  /** Web frontends (ports basePort+500+i), named web1, web2, ... */
  frontends?: number;
  /** A balancer on basePort+600 (control basePort+601). */
  balancer?: boolean;
  /** SMTP nodes (ports basePort+700+i), named smtp1, ... */
  smtp?: number;
  /** More TOML appended as is (e.g. a [web] or [mail] table). */
  extraToml?: string;
}

export function topologyText(spec: ClusterSpec): string {
  const lines = [
    '[cluster]',
    `tablets = ${spec.tablets ?? 16}`,
    `replication = ${spec.replication ?? 1}`,
    `tablets_in_memory = ${spec.tabletsInMemory ?? 16}`,
    `worker_threads = ${spec.workerThreads ?? 2}`,
    '',
    '[timeouts]',
    'heartbeat_ms = 100',
    'node_dead_ms = 400',
    'lease_ms = 400',
    `request_ms = ${spec.requestMs ?? 5000}`,
    'restart_delay_ms = 200',
    '',
    '[limits]',
    `checkpoint_bytes = ${spec.checkpointBytes ?? 64 << 20}`,
    `catchup_records = ${spec.catchupRecords ?? 200_000}`,
    '',
    '[master]',
    `port = ${spec.basePort}`,
  ];
  for (let i = 1; i <= spec.storageNodes; i++) {
    lines.push('', '[[storage]]', `name = "s${i}"`, `port = ${spec.basePort + i * 10}`);
  }
  for (let i = 1; i <= (spec.frontends ?? 0); i++) {
    lines.push('', '[[frontend]]', `name = "web${i}"`, `port = ${spec.basePort + 500 + i}`);
  }
  for (let i = 1; i <= (spec.smtp ?? 0); i++) {
    lines.push('', '[[smtp]]', `name = "smtp${i}"`, `port = ${spec.basePort + 700 + i}`);
  }
  if (spec.balancer) lines.push('', '[balancer]', `port = ${spec.basePort + 600}`, `control_port = ${spec.basePort + 601}`);
  if (spec.extraToml) lines.push('', spec.extraToml);
  return lines.join('\n') + '\n';
}

export class TestCluster {
  readonly dir: string;
  readonly topologyFile: string;
  readonly topo: Topology;
  private readonly procs = new Map<string, ChildProcess>();

  constructor(readonly spec: ClusterSpec) {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run 'npm run build' first (npm test does)`);
    this.dir = mkdtempSync(join(tmpdir(), 'penncloud-test-'));
    this.topologyFile = join(this.dir, 'topology.toml');
    writeFileSync(this.topologyFile, topologyText(spec));
    this.topo = loadTopology(this.topologyFile);
  }

  get storageNames(): string[] {
    return this.topo.storage.map((s) => s.name);
  }

  /** Starts every node (master, storage, frontends, SMTP, balancer) and waits until all are up. */
  async start(): Promise<void> {
    this.startNode(this.topo.master.name);
    for (const s of this.storageNames) this.startNode(s);
    await this.waitAlive(this.storageNames);
    for (const f of this.topo.frontends) this.startNode(f.name);
    for (const s of this.topo.smtp) this.startNode(s.name);
    if (this.topo.balancer) this.startNode(this.topo.balancer.name);
    await Promise.all(this.topo.frontends.map((f) => this.waitHttp(f.name)));
  }

  /** http://host:port of a frontend, or of the balancer when no name is given. */
  url(name?: string): string {
    if (name === undefined) {
      const b = this.topo.balancer;
      if (!b) throw new Error('this cluster has no balancer');
      return `http://${b.host}:${b.port}`;
    }
    const f = this.topo.frontends.find((x) => x.name === name);
    if (!f) throw new Error(`no frontend named ${name}`);
    return `http://${f.host}:${f.port}`;
  }

  /** Waits until a frontend answers its health check. */
  async waitHttp(name: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ok = await fetch(`${this.url(name)}/healthz`, { signal: AbortSignal.timeout(1000) }).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`frontend ${name} not up within ${timeoutMs} ms; logs in ${this.dir}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  startNode(name: string): ChildProcess {
    if (this.procs.has(name)) throw new Error(`${name} is already running`);
    const fd = openSync(join(this.dir, `${name}.log`), 'a');
    const child = spawn(process.execPath, nodeProcessArgs(this.topo, name, this.topologyFile, join(this.dir, 'data'), CLI), {
      stdio: ['ignore', fd, fd],
      env: nodeProcessEnv(this.topo, name),
    });
    closeSync(fd);
    this.procs.set(name, child);
    child.once('exit', () => {
      if (this.procs.get(name) === child) this.procs.delete(name);
    });
    return child;
  }

  pid(name: string): number | undefined {
    return this.procs.get(name)?.pid;
  }

  /** kill -9: no chance to flush or checkpoint anything. */
  async kill(name: string): Promise<void> {
    const p = this.procs.get(name);
    if (!p) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }

  async restart(name: string): Promise<void> {
    await this.kill(name);
    this.startNode(name);
    if (this.topo.frontends.some((f) => f.name === name)) await this.waitHttp(name);
    else if (this.storageNames.includes(name)) await this.waitAlive([name]);
  }

  client(overrides: Partial<StoreClientOptions> = {}): StoreClient {
    return StoreClient.fromTopology(this.topo, overrides);
  }

  async waitAlive(names: string[], timeoutMs = 20_000): Promise<void> {
    const client = this.client({ timeoutMs: 500, maxAttempts: 1 });
    const deadline = Date.now() + timeoutMs;
    try {
      for (;;) {
        try {
          const st = await client.status();
          const alive = names.every((n) => st.nodes.find((x) => x.name === n)?.state === 'alive');
          // A restarted node is alive once its new process has heartbeated.
          const fresh = names.every((n) => {
            const pid = this.pid(n);
            return pid === undefined || st.nodes.find((x) => x.name === n)?.pid === pid;
          });
          if (alive && fresh) return;
        } catch {
          // master not up yet
        }
        if (Date.now() > deadline) throw new Error(`nodes ${names.join(', ')} not alive within ${timeoutMs} ms; logs in ${this.dir}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await client.close();
    }
  }

  /** Prints the last `lines` lines of a node's log to stderr, with the directory that keeps them all. */
  printLogTail(name: string, lines = 80): void {
    const file = join(this.dir, `${name}.log`);
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      text = '(no log)';
    }
    process.stderr.write(`--- last ${lines} lines of ${file} (every log is kept in ${this.dir}) ---\n${text.split('\n').slice(-lines).join('\n')}\n`);
  }

  /** SIGTERM every node, wait for them, and remove the data unless `keep`. */
  async stop(keep = false): Promise<void> {
    const exits = [...this.procs.values()].map((p) => new Promise((r) => p.once('exit', r)));
    for (const p of this.procs.values()) p.kill('SIGTERM');
    const timer = setTimeout(() => {
      for (const p of this.procs.values()) p.kill('SIGKILL');
    }, 10_000);
    await Promise.all(exits);
    clearTimeout(timer);
    if (!keep) rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Starts a cluster before the tests of the enclosing describe and stops it after them; `client` is a
 * session actor on it, valid inside the tests.
 */
export function useCluster(spec: ClusterSpec): { cluster: TestCluster; readonly client: StoreClient } {
  const cluster = new TestCluster(spec);
  let client: StoreClient | null = null;
  beforeAll(async () => {
    await cluster.start();
    client = cluster.client();
  });
  // A failed test keeps the cluster's directory and prints the master's last log lines (its view of
  // node states, elections and handovers), so a failure seen only in CI can be read afterwards.
  let failed = false;
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') failed = true;
  });
  afterAll(async () => {
    await client?.close();
    await cluster.stop(failed);
    if (failed) cluster.printLogTail(cluster.topo.master.name);
  });
  return {
    cluster,
    get client(): StoreClient {
      if (!client) throw new Error('the cluster is not started yet');
      return client;
    },
  };
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}
