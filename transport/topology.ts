// topology.toml: every node of the cluster and every tunable, parsed and validated.
// A bad file is a ConfigError whose message names the offending key.
import { readFileSync } from 'node:fs';
import { resolve, isAbsolute } from 'node:path';
import { parse as parseToml } from 'smol-toml';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface NodeAddress {
  name: string;
  host: string;
  port: number;
}

export interface StorageNodeConfig extends NodeAddress {
  /** Tablet worker sockets listen on port+1 .. port+workerThreads. */
  workerPorts: number[];
}

export interface Topology {
  file: string;
  cluster: {
    tablets: number;
    replication: number;
    tabletsInMemory: number;
    workerThreads: number;
    dataDir: string;
    mailDomain: string;
  };
  timeouts: {
    heartbeatMs: number;
    nodeDeadMs: number;
    leaseMs: number;
    requestMs: number;
    restartDelayMs: number;
    rebalanceAfterMs: number;
  };
  limits: {
    maxMessageBytes: number;
    maxInflight: number;
    checkpointBytes: number;
    catchupRecords: number;
    /** MiB of recent records a storage worker keeps for catch-up, split evenly over its tablets. */
    catchupMb: number;
  };
  master: NodeAddress;
  storage: StorageNodeConfig[];
  /** Web frontends (Hono), one process each. */
  frontends: NodeAddress[];
  /** The load balancer: `port` is the one URL users are given; `controlPort` takes heartbeats (ZeroMQ). */
  balancer: (NodeAddress & { controlPort: number }) | null;
  /** SMTP ingress processes; each also runs the outbound sender. */
  smtp: NodeAddress[];
  web: {
    /** A session lives this long after the last login. */
    sessionHours: number;
    /** Accounts that may open the admin console; when empty, the first account signed up is the admin. */
    admins: string[];
    /** Failed logins per account within `loginWindowS` before further attempts are refused. */
    loginAttempts: number;
    loginWindowS: number;
    /** Per-user drive quota. */
    driveQuotaBytes: number;
    /** Frontend -> balancer heartbeat period; a frontend silent for 3 periods is out. */
    heartbeatMs: number;
  };
  mail: {
    /** Largest message SMTP ingress accepts (552 beyond). */
    maxMessageBytes: number;
    /** DNS servers for MX lookups ("host" or "host:port"); empty: the system's resolver. */
    dnsServers: string[];
    /** Port of remote SMTP servers (25; tests point it elsewhere). */
    remotePort: number;
    /** Outbound delivery: first retry delay, doubling each time, for at most `retryForS`. */
    retryFirstS: number;
    retryForS: number;
  };
}

type Table = Record<string, unknown>;

function table(root: Table, key: string, required: boolean): Table {
  const v = root[key];
  if (v === undefined) {
    if (required) throw new ConfigError(`missing table [${key}]`);
    return {};
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`[${key}] must be a table`);
  return v as Table;
}

function int(t: Table, path: string, key: string, def: number | undefined, min: number, max: number): number {
  const v = t[key] ?? def;
  if (v === undefined) throw new ConfigError(`missing key ${path}.${key}`);
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new ConfigError(`${path}.${key} must be an integer, got ${JSON.stringify(v)}`);
  if (v < min || v > max) throw new ConfigError(`${path}.${key} must be between ${min} and ${max}, got ${v}`);
  return v;
}

function str(t: Table, path: string, key: string, def: string | undefined): string {
  const v = t[key] ?? def;
  if (v === undefined) throw new ConfigError(`missing key ${path}.${key}`);
  if (typeof v !== 'string' || v.length === 0) throw new ConfigError(`${path}.${key} must be a non-empty string`);
  return v;
}

function rejectUnknown(t: Table, path: string, known: string[]): void {
  for (const k of Object.keys(t)) {
    if (!known.includes(k)) throw new ConfigError(`unknown key ${path}.${k} (known: ${known.join(', ')})`);
  }
}

function address(t: Table, path: string, defName?: string): NodeAddress {
  rejectUnknown(t, path, ['name', 'host', 'port']);
  const name = str(t, path, 'name', defName);
  if (!/^[a-zA-Z0-9_-]{1,32}$/.test(name)) throw new ConfigError(`${path}.name must be 1-32 letters, digits, '-' or '_'`);
  return { name, host: str(t, path, 'host', '127.0.0.1'), port: int(t, path, 'port', undefined, 1, 65535) };
}

export function parseTopology(text: string, file = '<inline>'): Topology {
  let root: Table;
  try {
    root = parseToml(text) as Table;
  } catch (e) {
    throw new ConfigError(`${file}: not valid TOML: ${(e as Error).message.split('\n')[0]}`);
  }
  rejectUnknown(root, 'topology', ['cluster', 'timeouts', 'limits', 'master', 'storage', 'frontend', 'balancer', 'smtp', 'web', 'mail']);
  const c = table(root, 'cluster', true);
  rejectUnknown(c, 'cluster', ['tablets', 'replication', 'tablets_in_memory', 'worker_threads', 'data_dir', 'mail_domain']);
  const cluster = {
    tablets: int(c, 'cluster', 'tablets', undefined, 1, 4096),
    replication: int(c, 'cluster', 'replication', 1, 1, 7),
    tabletsInMemory: int(c, 'cluster', 'tablets_in_memory', 16, 1, 4096),
    workerThreads: int(c, 'cluster', 'worker_threads', 2, 1, 64),
    dataDir: str(c, 'cluster', 'data_dir', 'data'),
    mailDomain: str(c, 'cluster', 'mail_domain', 'penncloud.local'),
  };
  const t = table(root, 'timeouts', false);
  rejectUnknown(t, 'timeouts', ['heartbeat_ms', 'node_dead_ms', 'lease_ms', 'request_ms', 'restart_delay_ms', 'rebalance_after_ms']);
  const timeouts = {
    heartbeatMs: int(t, 'timeouts', 'heartbeat_ms', 100, 10, 60_000),
    nodeDeadMs: int(t, 'timeouts', 'node_dead_ms', 400, 50, 600_000),
    leaseMs: int(t, 'timeouts', 'lease_ms', 400, 30, 600_000),
    requestMs: int(t, 'timeouts', 'request_ms', 2000, 10, 600_000),
    restartDelayMs: int(t, 'timeouts', 'restart_delay_ms', 500, 0, 600_000),
    rebalanceAfterMs: int(t, 'timeouts', 'rebalance_after_ms', 5000, 0, 86_400_000),
  };
  if (timeouts.nodeDeadMs <= 2 * timeouts.heartbeatMs) {
    throw new ConfigError(`timeouts.node_dead_ms (${timeouts.nodeDeadMs}) must exceed twice timeouts.heartbeat_ms`);
  }
  if (timeouts.leaseMs < 3 * timeouts.heartbeatMs) {
    throw new ConfigError(`timeouts.lease_ms (${timeouts.leaseMs}) must be at least three heartbeats (timeouts.heartbeat_ms = ${timeouts.heartbeatMs})`);
  }
  const l = table(root, 'limits', false);
  rejectUnknown(l, 'limits', ['max_message_bytes', 'max_inflight', 'checkpoint_bytes', 'catchup_records', 'catchup_mb']);
  const limits = {
    maxMessageBytes: int(l, 'limits', 'max_message_bytes', 32 << 20, 1024, 1 << 30),
    maxInflight: int(l, 'limits', 'max_inflight', 4096, 1, 1 << 20),
    checkpointBytes: int(l, 'limits', 'checkpoint_bytes', 64 << 20, 4096, 2 ** 40),
    catchupRecords: int(l, 'limits', 'catchup_records', 200_000, 10, 10_000_000),
    catchupMb: int(l, 'limits', 'catchup_mb', 64, 1, 1 << 20),
  };
  const master = address(table(root, 'master', true), 'master', 'master');
  const rawStorage = root['storage'];
  if (!Array.isArray(rawStorage) || rawStorage.length === 0) {
    throw new ConfigError('missing [[storage]] entries: at least one storage node is needed');
  }
  const storage = rawStorage.map((s, i) => {
    if (typeof s !== 'object' || s === null) throw new ConfigError(`storage[${i}] must be a table`);
    const a = address(s as Table, `storage[${i}]`);
    const workerPorts = Array.from({ length: cluster.workerThreads }, (_, w) => a.port + 1 + w);
    if (workerPorts[workerPorts.length - 1]! > 65535) throw new ConfigError(`storage[${i}].port leaves no room for ${cluster.workerThreads} worker ports`);
    return { ...a, workerPorts };
  });
  if (cluster.replication > storage.length) {
    throw new ConfigError(`cluster.replication (${cluster.replication}) exceeds the number of storage nodes (${storage.length})`);
  }
  const frontends = list(root, 'frontend').map((f, i) => address(f, `frontend[${i}]`));
  const smtp = list(root, 'smtp').map((f, i) => address(f, `smtp[${i}]`));
  let balancer: Topology['balancer'] = null;
  if (root['balancer'] !== undefined) {
    const b = table(root, 'balancer', false);
    const { control_port: _cp, ...rest } = b;
    const a = address(rest, 'balancer', 'balancer');
    balancer = { ...a, controlPort: int(b, 'balancer', 'control_port', a.port + 1, 1, 65535) };
  }
  const w = table(root, 'web', false);
  rejectUnknown(w, 'web', ['session_hours', 'admins', 'login_attempts', 'login_window_s', 'drive_quota_mb', 'heartbeat_ms']);
  const web = {
    sessionHours: int(w, 'web', 'session_hours', 24 * 7, 1, 24 * 366),
    admins: strList(w, 'web', 'admins'),
    loginAttempts: int(w, 'web', 'login_attempts', 5, 1, 1000),
    loginWindowS: int(w, 'web', 'login_window_s', 300, 1, 86_400),
    driveQuotaBytes: int(w, 'web', 'drive_quota_mb', 10 * 1024, 1, 1 << 30) * 1024 * 1024,
    heartbeatMs: int(w, 'web', 'heartbeat_ms', 1000, 50, 60_000),
  };
  const m = table(root, 'mail', false);
  rejectUnknown(m, 'mail', ['max_message_mb', 'dns_servers', 'remote_port', 'retry_first_s', 'retry_for_s']);
  const mail = {
    maxMessageBytes: int(m, 'mail', 'max_message_mb', 25, 1, 1024) * 1024 * 1024,
    dnsServers: strList(m, 'mail', 'dns_servers'),
    remotePort: int(m, 'mail', 'remote_port', 25, 1, 65535),
    retryFirstS: int(m, 'mail', 'retry_first_s', 60, 1, 86_400),
    retryForS: int(m, 'mail', 'retry_for_s', 4 * 86_400, 1, 30 * 86_400),
  };
  const services: Array<NodeAddress & { workerPorts?: number[] }> = [...frontends, ...smtp];
  if (balancer) services.push({ ...balancer, workerPorts: [balancer.controlPort] });
  checkUnique([master, ...storage, ...services]);
  return { file, cluster, timeouts, limits, master, storage, frontends, balancer, smtp, web, mail };
}

function list(root: Table, key: string): Table[] {
  const v = root[key];
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new ConfigError(`${key} must be an array of tables: write [[${key}]]`);
  return v.map((x, i) => {
    if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new ConfigError(`${key}[${i}] must be a table`);
    return x as Table;
  });
}

function strList(t: Table, path: string, key: string): string[] {
  const v = t[key] ?? [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x.length > 0)) throw new ConfigError(`${path}.${key} must be a list of non-empty strings`);
  return v as string[];
}

export type NodeKind = 'master' | 'storage' | 'frontend' | 'balancer' | 'smtp';

/** Every node of the topology with its kind, in start order (master first, balancer last). */
export function allNodes(topo: Topology): Array<{ name: string; host: string; kind: NodeKind }> {
  return [
    { ...topo.master, kind: 'master' as const },
    ...topo.storage.map((s) => ({ ...s, kind: 'storage' as const })),
    ...topo.frontends.map((s) => ({ ...s, kind: 'frontend' as const })),
    ...topo.smtp.map((s) => ({ ...s, kind: 'smtp' as const })),
    ...(topo.balancer ? [{ ...topo.balancer, kind: 'balancer' as const }] : []),
  ].map(({ name, host, kind }) => ({ name, host, kind }));
}

function checkUnique(nodes: Array<NodeAddress & { workerPorts?: number[] }>): void {
  const names = new Set<string>();
  const ports = new Map<string, string>();
  for (const n of nodes) {
    if (names.has(n.name)) throw new ConfigError(`node name '${n.name}' is used twice`);
    names.add(n.name);
    for (const p of [n.port, ...(n.workerPorts ?? [])]) {
      const key = `${n.host}:${p}`;
      const other = ports.get(key);
      if (other !== undefined) throw new ConfigError(`port ${key} of '${n.name}' is also used by '${other}'`);
      ports.set(key, n.name);
    }
  }
}

export function loadTopology(file: string): Topology {
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read topology file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseTopology(text, path);
}

/** The data directory: --data wins, then cluster.data_dir (relative to the working directory). */
export function dataRoot(topo: Topology, override?: string): string {
  const dir = override ?? topo.cluster.dataDir;
  return isAbsolute(dir) ? dir : resolve(process.cwd(), dir);
}

export function endpoint(host: string, port: number): string {
  return `tcp://${host}:${port}`;
}

export function storageNode(topo: Topology, name: string): StorageNodeConfig | undefined {
  return topo.storage.find((s) => s.name === name);
}
