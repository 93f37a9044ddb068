// The one message schema of penncloud: every request and reply that crosses a socket.
// Both ends import these types; servers validate every incoming request with `validateRequest`.

/** Cursor for paging through a tablet: the last (row, column) already returned. */
export type Cursor = [row: string, col: string];
export type Cell = [row: string, col: string, value: Uint8Array];

// ---- data path: session actor -> tablet actor (a storage node's worker socket) ----
export interface GetReq { t: 'get'; tablet: number; row: string; col: string }
export interface PutReq { t: 'put'; tablet: number; row: string; col: string; value: Uint8Array }
/** Compare-and-put: write `value` only if the cell currently holds `expect` (null: the cell must be absent). */
export interface CputReq { t: 'cput'; tablet: number; row: string; col: string; expect: Uint8Array | null; value: Uint8Array }
export interface DelReq { t: 'del'; tablet: number; row: string; col: string }
export interface ColsReq { t: 'cols'; tablet: number; row: string }
/** Admin paging: up to `limit` cells strictly after `after`, in (row, col) order. */
export interface ScanReq { t: 'scan'; tablet: number; after: Cursor | null; limit: number }

// ---- replication: tablet actor <-> tablet actor (worker sockets), master -> tablet actor ----
/** A log record on the wire: [lsn, epoch, put?1:0, row, col, value|null]. */
export type WireRecord = [lsn: number, epoch: number, put: 0 | 1, row: string, col: string, value: Uint8Array | null];
/** Primary -> replica: records prevLsn+1.. of the primary's log (empty: a probe). */
export interface ReplReq { t: 'repl'; tablet: number; epoch: number; from: string; prevLsn: number; prevEpoch: number; records: WireRecord[]; commit: number }
/** Replica -> primary (reply to repl). `durable`: the replica's log is on disk up to here. */
export interface ReplAckRep { t: 'repl_ack'; epoch: number; ok: boolean; reason: 'ok' | 'gap' | 'diverged' | 'stale'; lastLsn: number; durable: number }
/** Recovering replica -> primary: "my log ends at (lastLsn, lastEpoch)"; or the next chunk of a snapshot. */
export interface CatchupReq { t: 'catchup'; tablet: number; epoch: number; from: string; lastLsn: number; lastEpoch: number; snapshot: [id: number, offset: number] | null }
export type CatchupRep =
  | { t: 'catchup_rep'; mode: 'tail'; records: WireRecord[]; joined: boolean }
  | { t: 'catchup_rep'; mode: 'snapshot'; id: number; lsn: number; epoch: number; cells: Cell[]; offset: number; done: boolean }
  | { t: 'catchup_rep'; mode: 'in_sync' | 'restart' };
/** Master -> replica during failover: report your log end; from now on refuse anything older than `epoch`. */
export interface PositionReq { t: 'position'; tablet: number; epoch: number }
export interface PositionRep { t: 'position_rep'; lsn: number; lastEpoch: number }

// ---- primary -> master ----
/** A joining replica has acknowledged everything up to its join point: mark it in sync. */
export interface InSyncReq { t: 'in_sync'; tablet: number; node: string; epoch: number }
/** An in-sync replica stopped acknowledging: take it out of the in-sync set so writes can go on. */
export interface DropReq { t: 'drop'; tablet: number; node: string; epoch: number }

// ---- control: anyone -> a storage node's control socket ----
export interface NodeInfoReq { t: 'node_info' }
/** One-way liveness probe from a client socket (sent with request id 0; servers ignore it). */
export interface PingReq { t: 'ping' }
/** Fault injection: `stop` makes the node behave as crashed; `restart` brings it back through recovery. */
export interface AdminReq { t: 'admin'; action: 'stop' | 'restart' }

// ---- master ----
/** Storage node -> master, every heartbeat period. The reply carries the current tablet map. */
export interface HeartbeatReq { t: 'heartbeat'; node: string; pid: number; tablets: TabletReport[]; stopped: boolean }
export interface MapReq { t: 'map'; known: number }
export interface StatusReq { t: 'status' }

// ---- services (frontends, SMTP nodes) -> balancer ----
/** A frontend or SMTP node reports that it is up and how loaded it is (every web.heartbeat_ms); where it listens, the balancer takes from the topology. */
export interface ServiceHeartbeatReq { t: 'svc_heartbeat'; node: string; kind: ServiceKind; pid: number; load: ServiceLoad }
/** Who is up, as the balancer sees it (for the admin console). */
export interface ServicesReq { t: 'services' }

export type DataRequest = GetReq | PutReq | CputReq | DelReq | ColsReq | ScanReq;
export type ReplicationRequest = ReplReq | CatchupReq | PositionReq;
export type Request = DataRequest | ReplicationRequest | NodeInfoReq | AdminReq | HeartbeatReq | MapReq | StatusReq | InSyncReq | DropReq | PingReq | ServiceHeartbeatReq | ServicesReq;

// ---- replies ----
export interface OkRep { t: 'ok' }
export interface ValueRep { t: 'value'; value: Uint8Array }
export interface NotFoundRep { t: 'not_found' }
export interface MismatchRep { t: 'mismatch'; current: Uint8Array | null }
export interface ColsRep { t: 'cols'; cols: string[] }
export interface ScanRep { t: 'scan'; cells: Cell[]; next: Cursor | null }
export interface NodeInfoRep { t: 'node_info'; node: string; pid: number; stopped: boolean; tablets: TabletReport[]; stats: NodeStats; metrics: NodeMetrics }
/** The map; in reply to a heartbeat also a lease: the node may act as primary until (its send time + leaseMs). */
export interface MapRep { t: 'map'; map: TabletMap | null; leaseMs: number }
export interface StatusRep { t: 'status'; map: TabletMap; nodes: NodeStatus[] }
export interface ServicesRep { t: 'services'; balancer: { name: string; url: string; pid: number; redirects: number; noFrontend: number }; nodes: ServiceStatus[] }

export type ErrorCode =
  | 'bad_request' // malformed or invalid message: do not retry
  | 'too_big' // frame over the size limit
  | 'not_mine' // this node/worker does not serve that tablet: refresh the map and retry
  | 'not_primary' // this node is not (or no longer) the tablet's primary, or has no lease: refresh and retry
  | 'unavailable' // the tablet cannot serve right now (loading, stopping): retry later
  | 'busy' // a queue is full: retry later
  | 'internal'; // the server failed; the outcome of a write is unknown
export interface ErrorRep { t: 'error'; code: ErrorCode; message: string; epoch?: number }

export type Reply =
  | OkRep
  | ValueRep
  | NotFoundRep
  | MismatchRep
  | ColsRep
  | ScanRep
  | NodeInfoRep
  | MapRep
  | StatusRep
  | ServicesRep
  | ReplAckRep
  | CatchupRep
  | PositionRep
  | ErrorRep;

// ---- shared structures ----
export type ServiceKind = 'frontend' | 'smtp';
export interface ServiceLoad {
  /** Requests (or SMTP sessions) being served right now. */
  inflight: number;
  /** Event-loop delay, p99 over the last period, ms. */
  loopDelayMs: number;
  /** Requests (or messages) served since the process started. */
  served: number;
  /** Resident memory, bytes. */
  rssBytes: number;
}
export interface ServiceStatus {
  name: string;
  kind: ServiceKind;
  url: string;
  pid: number;
  alive: boolean;
  load: ServiceLoad;
  lastHeartbeatMs: number; // ms since the balancer last heard from it
}

export interface TabletReport { id: number; resident: boolean; lsn: number; cells: number | null; epoch: number; role: 'primary' | 'replica' | 'catching_up' | 'idle' }

export interface NodeStats { received: number; malformed: number; oversized: number; ops: number }

/** A storage node's data requests (get/put/cput/del/cols/scan) over the last minute, for the admin console. */
export interface NodeMetrics {
  /** Unix second of the last entry (the last complete second). */
  endSec: number;
  /** Requests answered in each second, oldest first (60 entries). */
  ops: number[];
  /** p99 latency of each second in ms (a histogram bucket's upper bound; null: no requests). */
  p99Ms: Array<number | null>;
  /** Over the whole minute. */
  minuteOps: number;
  minuteP99Ms: number | null;
}

export type NodeState = 'alive' | 'dead' | 'recovering' | 'stopped' | 'unknown';

export interface NodeStatus {
  name: string;
  kind: 'master' | 'storage';
  address: string;
  state: NodeState;
  pid: number | null;
  lastHeartbeatMs: number | null; // ms since the master last heard from it
}

export interface TabletAssignment {
  id: number;
  /** Replica set, primary included. */
  replicas: string[];
  /** null while a failover is electing the next primary. */
  primary: string | null;
  epoch: number;
  /** Replicas known to hold every acknowledged write (primary included); only they can be promoted. */
  inSync: string[];
  /** Log position per replica, as last reported by heartbeats. */
  lsn: Record<string, number>;
}

export interface MapNode {
  name: string;
  control: string; // tcp endpoint of the node's control socket
  workers: string[]; // tcp endpoints of its tablet workers
  state: NodeState;
}

/** Where every tablet lives. Versioned: a higher version replaces a lower one. */
export interface TabletMap {
  version: number;
  tablets: number;
  replication: number;
  assignments: TabletAssignment[];
  nodes: MapNode[];
}

// ---- validation ----
type FieldType = 'int' | 'str' | 'bytes' | 'bytes?' | 'cursor?' | 'reports' | 'records' | 'bool' | 'snap?' | 'action' | 'svc' | 'load';
const REQUEST_FIELDS: Record<Request['t'], Record<string, FieldType>> = {
  get: { tablet: 'int', row: 'str', col: 'str' },
  put: { tablet: 'int', row: 'str', col: 'str', value: 'bytes' },
  cput: { tablet: 'int', row: 'str', col: 'str', expect: 'bytes?', value: 'bytes' },
  del: { tablet: 'int', row: 'str', col: 'str' },
  cols: { tablet: 'int', row: 'str' },
  scan: { tablet: 'int', after: 'cursor?', limit: 'int' },
  repl: { tablet: 'int', epoch: 'int', from: 'str', prevLsn: 'int', prevEpoch: 'int', records: 'records', commit: 'int' },
  catchup: { tablet: 'int', epoch: 'int', from: 'str', lastLsn: 'int', lastEpoch: 'int', snapshot: 'snap?' },
  position: { tablet: 'int', epoch: 'int' },
  in_sync: { tablet: 'int', node: 'str', epoch: 'int' },
  drop: { tablet: 'int', node: 'str', epoch: 'int' },
  node_info: {},
  ping: {},
  admin: { action: 'action' },
  heartbeat: { node: 'str', pid: 'int', tablets: 'reports', stopped: 'bool' },
  map: { known: 'int' },
  status: {},
  svc_heartbeat: { node: 'str', kind: 'svc', pid: 'int', load: 'load' },
  services: {},
};

/** The same, as lists: validation runs for every frame, and Object.entries made a new array each time. */
const FIELD_LISTS = Object.fromEntries(Object.entries(REQUEST_FIELDS).map(([t, fields]) => [t, Object.entries(fields)])) as Record<Request['t'], Array<[string, FieldType]>>;

/** Longest row or column name, in UTF-16 code units. */
export const MAX_NAME_LENGTH = 4096;
export const MAX_SCAN_LIMIT = 1000;
/**
 * A scan page stops once its values pass this many bytes (it holds at least one cell): a page of 1000
 * drive chunks would be 1 GiB, read from disk for one reply and far beyond any message limit.
 */
export const MAX_SCAN_BYTES = 4 << 20;

function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

function isWireRecord(r: unknown): r is WireRecord {
  return (
    Array.isArray(r) &&
    r.length === 6 &&
    Number.isSafeInteger(r[0]) &&
    Number.isSafeInteger(r[1]) &&
    (r[2] === 0 || r[2] === 1) &&
    typeof r[3] === 'string' &&
    typeof r[4] === 'string' &&
    (r[5] === null || isBytes(r[5]))
  );
}

function checkField(v: unknown, type: FieldType): boolean {
  switch (type) {
    case 'int':
      return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
    case 'str':
      return typeof v === 'string' && v.length <= MAX_NAME_LENGTH;
    case 'bytes':
      return isBytes(v);
    case 'bytes?':
      return v === null || isBytes(v);
    case 'cursor?':
      return v === null || (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string');
    case 'reports':
      return Array.isArray(v) && v.every((r) => typeof r === 'object' && r !== null && Number.isSafeInteger((r as TabletReport).id));
    case 'records':
      return Array.isArray(v) && v.every(isWireRecord);
    case 'bool':
      return typeof v === 'boolean';
    case 'snap?':
      return v === null || (Array.isArray(v) && v.length === 2 && Number.isSafeInteger(v[0]) && Number.isSafeInteger(v[1]));
    case 'action':
      return v === 'stop' || v === 'restart';
    case 'svc':
      return v === 'frontend' || v === 'smtp';
    case 'load':
      return typeof v === 'object' && v !== null && ['inflight', 'loopDelayMs', 'served', 'rssBytes'].every((k) => typeof (v as Record<string, unknown>)[k] === 'number' && Number.isFinite((v as Record<string, unknown>)[k]));
  }
}

/**
 * Why a peer's catch-up reply cannot be used (records or cells that are not well-formed), or null.
 * Requests are checked where they arrive (validateRequest); this is the one reply a node takes data from.
 */
export function catchupRepProblem(rep: CatchupRep): string | null {
  if (rep.mode === 'tail' && !(Array.isArray(rep.records) && rep.records.every(isWireRecord))) return 'a catch-up tail with malformed records';
  if (rep.mode === 'snapshot' && !(Array.isArray(rep.cells) && rep.cells.every((c) => Array.isArray(c) && c.length === 3 && typeof c[0] === 'string' && typeof c[1] === 'string' && isBytes(c[2])))) {
    return 'a catch-up snapshot chunk with malformed cells';
  }
  return null;
}

/** Returns the request if `body` is a well-formed request, otherwise a reason it is not. */
export function validateRequest(body: unknown): Request | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'a request must be a map';
  const t = (body as { t?: unknown }).t;
  if (typeof t !== 'string' || !Object.hasOwn(REQUEST_FIELDS, t)) return `unknown request type ${JSON.stringify(t)}`;
  for (const [name, type] of FIELD_LISTS[t as Request['t']]) {
    if (!checkField((body as Record<string, unknown>)[name], type)) return `${t}.${name} must be ${type}`;
  }
  return body as Request;
}

export function errorReply(code: ErrorCode, message: string): ErrorRep {
  return { t: 'error', code, message };
}
