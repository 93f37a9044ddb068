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

// ---- control: anyone -> a storage node's control socket ----
export interface NodeInfoReq { t: 'node_info' }

// ---- master ----
/** Storage node -> master, every heartbeat period. The reply carries the current tablet map. */
export interface HeartbeatReq { t: 'heartbeat'; node: string; pid: number; tablets: TabletReport[] }
export interface MapReq { t: 'map'; known: number }
export interface StatusReq { t: 'status' }

export type DataRequest = GetReq | PutReq | CputReq | DelReq | ColsReq | ScanReq;
export type Request = DataRequest | NodeInfoReq | HeartbeatReq | MapReq | StatusReq;

// ---- replies ----
export interface OkRep { t: 'ok' }
export interface ValueRep { t: 'value'; value: Uint8Array }
export interface NotFoundRep { t: 'not_found' }
export interface MismatchRep { t: 'mismatch'; current: Uint8Array | null }
export interface ColsRep { t: 'cols'; cols: string[] }
export interface ScanRep { t: 'scan'; cells: Cell[]; next: Cursor | null }
export interface NodeInfoRep { t: 'node_info'; node: string; pid: number; tablets: TabletReport[]; stats: NodeStats }
export interface MapRep { t: 'map'; map: TabletMap | null }
export interface StatusRep { t: 'status'; map: TabletMap; nodes: NodeStatus[] }

export type ErrorCode =
  | 'bad_request' // malformed or invalid message: do not retry
  | 'too_big' // frame over the size limit
  | 'not_mine' // this node/worker does not serve that tablet: refresh the map and retry
  | 'unavailable' // the tablet cannot serve right now (loading, stopping): retry later
  | 'busy' // a queue is full: retry later
  | 'internal'; // the server failed; the outcome of a write is unknown
export interface ErrorRep { t: 'error'; code: ErrorCode; message: string }

export type Reply = OkRep | ValueRep | NotFoundRep | MismatchRep | ColsRep | ScanRep | NodeInfoRep | MapRep | StatusRep | ErrorRep;

// ---- shared structures ----
export interface TabletReport { id: number; resident: boolean; lsn: number; cells: number | null }

export interface NodeStats { received: number; malformed: number; oversized: number; ops: number }

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
  primary: string;
  epoch: number;
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
type FieldType = 'int' | 'str' | 'bytes' | 'bytes?' | 'cursor?' | 'reports';
const REQUEST_FIELDS: Record<Request['t'], Record<string, FieldType>> = {
  get: { tablet: 'int', row: 'str', col: 'str' },
  put: { tablet: 'int', row: 'str', col: 'str', value: 'bytes' },
  cput: { tablet: 'int', row: 'str', col: 'str', expect: 'bytes?', value: 'bytes' },
  del: { tablet: 'int', row: 'str', col: 'str' },
  cols: { tablet: 'int', row: 'str' },
  scan: { tablet: 'int', after: 'cursor?', limit: 'int' },
  node_info: {},
  heartbeat: { node: 'str', pid: 'int', tablets: 'reports' },
  map: { known: 'int' },
  status: {},
};

/** Longest row or column name, in UTF-16 code units. */
export const MAX_NAME_LENGTH = 4096;
export const MAX_SCAN_LIMIT = 1000;

function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
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
  }
}

/** Returns the request if `body` is a well-formed request, otherwise a reason it is not. */
export function validateRequest(body: unknown): Request | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'a request must be a map';
  const t = (body as { t?: unknown }).t;
  if (typeof t !== 'string' || !Object.hasOwn(REQUEST_FIELDS, t)) return `unknown request type ${JSON.stringify(t)}`;
  const fields = REQUEST_FIELDS[t as Request['t']];
  for (const [name, type] of Object.entries(fields)) {
    if (!checkField((body as Record<string, unknown>)[name], type)) return `${t}.${name} must be ${type}`;
  }
  return body as Request;
}

export function errorReply(code: ErrorCode, message: string): ErrorRep {
  return { t: 'error', code, message };
}
