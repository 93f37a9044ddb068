// The session (client) actor: what every other component uses to reach the store.
// It caches the tablet map, sends each request straight to the worker of the node that holds the row,
// and when a node answers "not mine" / "unavailable" or cannot be reached, refreshes the map and
// retries, a bounded number of times. A write whose reply never came is reported as outcome unknown
// (StoreError 'unknown') and never retried blindly: it may have been applied.
import type { Cursor, DataRequest, NodeInfoRep, Reply, ScanRep, StatusRep, TabletMap } from '../transport/messages.js';
import { mapNode, tabletOf, workerEndpoint } from '../transport/partition.js';
import { RpcClient, RpcError } from '../transport/rpc.js';
import { endpoint, type Topology } from '../transport/topology.js';

export type StoreErrorCode = 'unavailable' | 'unknown' | 'bad_request' | 'too_big' | 'internal';

export class StoreError extends Error {
  override name = 'StoreError';
  constructor(readonly code: StoreErrorCode, message: string) {
    super(message);
  }
}

export interface StoreClientOptions {
  master: string; // tcp endpoint of the master
  timeoutMs: number; // per attempt
  maxInflight: number; // per socket
  maxMessageBytes: number;
  maxAttempts?: number; // default 60 (retries also stop at the request deadline)
}

export type Bytes = Uint8Array | string;

function toBytes(v: Bytes): Uint8Array {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A scan of one node's copy is sent up to this many times while the node cannot be connected to (~200 ms apart). */
const SCAN_CONNECT_TRIES = 8;

export class StoreClient {
  private cachedMap: TabletMap | null = null;
  private refreshing: Promise<TabletMap> | null = null;
  private readonly sockets = new Map<string, RpcClient>();
  private readonly master: RpcClient;
  private readonly maxAttempts: number;
  /** Counters a caller can read: requests sent, retries, map refreshes. */
  readonly counters = { requests: 0, retries: 0, refreshes: 0 };

  constructor(private readonly opts: StoreClientOptions) {
    this.maxAttempts = opts.maxAttempts ?? 60;
    this.master = this.socket(opts.master);
  }

  static fromTopology(topo: Topology, overrides: Partial<StoreClientOptions> = {}): StoreClient {
    return new StoreClient({
      master: endpoint(topo.master.host, topo.master.port),
      timeoutMs: topo.timeouts.requestMs,
      maxInflight: topo.limits.maxInflight,
      maxMessageBytes: topo.limits.maxMessageBytes,
      ...overrides,
    });
  }

  // ---- the data API ----

  /** The cell's bytes, or null when it does not exist. */
  async get(row: string, col: string): Promise<Uint8Array | null> {
    const rep = await this.data(row, (tablet) => ({ t: 'get', tablet, row, col }));
    if (rep.t === 'value') return rep.value;
    if (rep.t === 'not_found') return null;
    throw unexpected(rep);
  }

  /**
   * Writes the cell. `sends`, if given, counts the attempts that handed the value to a socket (a caller
   * may reuse the value's buffer only when one send was answered: zeromq sends it without copying).
   */
  async put(row: string, col: string, value: Bytes, sends?: { count: number }): Promise<void> {
    const rep = await this.data(row, (tablet) => ({ t: 'put', tablet, row, col, value: toBytes(value) }), sends);
    if (rep.t !== 'ok') throw unexpected(rep);
  }

  /** Writes `value` only if the cell holds `expect` (null: only if absent). True when it did. */
  async cput(row: string, col: string, expect: Bytes | null, value: Bytes): Promise<boolean> {
    const rep = await this.data(row, (tablet) => ({ t: 'cput', tablet, row, col, expect: expect === null ? null : toBytes(expect), value: toBytes(value) }));
    if (rep.t === 'ok') return true;
    if (rep.t === 'mismatch') return false;
    throw unexpected(rep);
  }

  /** Deletes the cell; false when it did not exist. */
  async delete(row: string, col: string): Promise<boolean> {
    const rep = await this.data(row, (tablet) => ({ t: 'del', tablet, row, col }));
    if (rep.t === 'ok') return true;
    if (rep.t === 'not_found') return false;
    throw unexpected(rep);
  }

  /** Column names of a row, sorted. */
  async cols(row: string): Promise<string[]> {
    const rep = await this.data(row, (tablet) => ({ t: 'cols', tablet, row }));
    if (rep.t === 'cols') return rep.cols;
    throw unexpected(rep);
  }

  // ---- admin ----

  /**
   * The current map: the cached one, or with `fresh` the master's map now. A fresh map that cannot be
   * had fails (the data path's refreshes keep going with the cached map instead; a caller asking for
   * a fresh one wants to see a change, and must not be handed an old map as if it were new).
   */
  async map(fresh = false): Promise<TabletMap> {
    if (!fresh) return this.cachedMap ?? this.refreshMap();
    return this.fetchMap();
  }

  async status(): Promise<StatusRep> {
    const rep = await this.master.request({ t: 'status' });
    if (rep.t !== 'status') throw unexpected(rep);
    if (this.cachedMap === null || rep.map.version > this.cachedMap.version) this.cachedMap = rep.map;
    return rep;
  }

  /** Tablets held by a node, with their log positions. */
  async nodeInfo(node: string): Promise<NodeInfoRep> {
    const n = mapNode(await this.map(), node);
    if (!n) throw new StoreError('bad_request', `no storage node named '${node}'`);
    const rep = await this.socket(n.control).request({ t: 'node_info' });
    if (rep.t !== 'node_info') throw unexpected(rep);
    return rep;
  }

  /** Fault injection: `stop` makes a storage node behave as crashed; `restart` brings it back through recovery. */
  async admin(node: string, action: 'stop' | 'restart'): Promise<void> {
    const n = mapNode(await this.map(), node);
    if (!n) throw new StoreError('bad_request', `no storage node named '${node}'`);
    const rep = await this.socket(n.control).request({ t: 'admin', action }, Math.max(this.opts.timeoutMs, 15_000));
    if (rep.t !== 'ok') throw unexpected(rep);
  }

  /** One page of a tablet's cells on a given node, after `after`. */
  async scan(node: string, tablet: number, after: Cursor | null, limit: number): Promise<ScanRep> {
    const map = await this.map();
    const n = mapNode(map, node);
    if (!n) throw new StoreError('bad_request', `no storage node named '${node}'`);
    if (tablet < 0 || tablet >= map.tablets) throw new StoreError('bad_request', `no tablet ${tablet} (there are ${map.tablets})`);
    // Addressed to one node, so not retried elsewhere. A node back from a restart is connected to again
    // within zmq's reconnect back-off (250 ms, rpc.ts), later on a busy machine, while a request waits
    // 100 ms for a connection: so a scan that finds the node unreachable is asked again a few times.
    for (let attempt = 1; ; attempt++) {
      try {
        const rep = await this.socket(workerEndpoint(map, n, tablet)).request({ t: 'scan', tablet, after, limit });
        if (rep.t === 'scan') return rep;
        throw unexpected(rep);
      } catch (e) {
        if (!(e instanceof RpcError) || e.kind !== 'unreachable' || attempt >= SCAN_CONNECT_TRIES) throw e;
        await sleep(100);
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.sockets.values()].map((s) => s.close()));
    this.sockets.clear();
  }

  // ---- routing and retries ----

  private socket(ep: string): RpcClient {
    let s = this.sockets.get(ep);
    if (!s) {
      s = new RpcClient(ep, { timeoutMs: this.opts.timeoutMs, maxInflight: this.opts.maxInflight, maxMessageBytes: this.opts.maxMessageBytes, connectWaitMs: 100 });
      this.sockets.set(ep, s);
    }
    return s;
  }

  /** The master's map now (kept as the cached one unless older); fails when the master cannot be asked. */
  private async fetchMap(): Promise<TabletMap> {
    let rep: Reply;
    try {
      rep = await this.master.request({ t: 'map', known: this.cachedMap?.version ?? 0 });
    } catch (e) {
      if (e instanceof RpcError) throw new StoreError('unavailable', `cannot reach the master at ${this.opts.master}: ${e.message}`);
      throw e;
    }
    if (rep.t !== 'map' || rep.map === null) throw unexpected(rep);
    if (this.cachedMap === null || rep.map.version >= this.cachedMap.version) this.cachedMap = rep.map;
    return rep.map;
  }

  /** The data path's refresh: one at a time, and the cached map when the master cannot be asked. */
  private refreshMap(): Promise<TabletMap> {
    if (this.refreshing) return this.refreshing;
    this.counters.refreshes++;
    this.refreshing = (async () => {
      try {
        await this.fetchMap();
        return this.cachedMap!;
      } catch (e) {
        if (this.cachedMap !== null) return this.cachedMap; // keep going with what we know
        throw e;
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  private async data(row: string, build: (tablet: number) => DataRequest, sends?: { count: number }): Promise<Reply> {
    let map = await this.map();
    const req = build(tabletOf(row, map.tablets));
    const isRead = req.t === 'get' || req.t === 'cols' || req.t === 'scan';
    // Retries ride over failover: bounded by attempts and by one request deadline overall.
    const deadline = Date.now() + Math.max(this.opts.timeoutMs, 3000);
    let lastProblem = '';
    for (let attempt = 0; attempt < this.maxAttempts && (attempt === 0 || Date.now() < deadline); attempt++) {
      if (attempt > 0) {
        this.counters.retries++;
        await sleep(Math.min(100, 5 * 2 ** (attempt - 1)));
        map = await this.refreshMap();
      }
      const assignment = map.assignments[req.tablet];
      const primary = assignment?.primary ?? null;
      const node = primary === null ? undefined : mapNode(map, primary);
      if (!node) {
        lastProblem = `tablet ${req.tablet} has no primary right now (failover in progress)`;
        continue;
      }
      this.counters.requests++;
      if (sends) sends.count++;
      let rep: Reply;
      try {
        rep = await this.socket(workerEndpoint(map, node, req.tablet)).request(req);
      } catch (e) {
        if (!(e instanceof RpcError)) throw e;
        // A request that never left, or a read, can be retried; a write that may have landed cannot.
        if (e.notSent || isRead) {
          lastProblem = e.message;
          continue;
        }
        throw new StoreError('unknown', `${req.t} on ${node.name}: ${e.message}; the write may or may not have been applied`);
      }
      if (rep.t !== 'error') return rep;
      if (rep.code === 'not_mine' || rep.code === 'not_primary' || rep.code === 'unavailable' || rep.code === 'busy') {
        lastProblem = `${node.name}: ${rep.message}`;
        continue;
      }
      if (rep.code === 'internal' && !isRead) throw new StoreError('unknown', `${node.name}: ${rep.message}; the write may or may not have been applied`);
      throw new StoreError(rep.code === 'too_big' ? 'too_big' : rep.code === 'bad_request' ? 'bad_request' : 'internal', `${node.name}: ${rep.message}`);
    }
    throw new StoreError('unavailable', `tablet ${req.tablet} unavailable: ${lastProblem}`);
  }
}

function unexpected(rep: Reply): StoreError {
  if (rep.t === 'error') return new StoreError(rep.code === 'bad_request' ? 'bad_request' : 'internal', rep.message);
  return new StoreError('internal', `unexpected reply '${rep.t}'`);
}
