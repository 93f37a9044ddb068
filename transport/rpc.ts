// Request/reply over ZeroMQ: RpcServer (ROUTER) and RpcClient (DEALER).
// Every request has an id and a deadline; outstanding requests and frame sizes are bounded;
// a malformed frame is counted and answered with an error (or dropped) and never throws.
import * as zmq from 'zeromq';
import { decodeFrame, encodeFrame, isProblem, type Body } from './codec.js';
import { errorReply, validateRequest, type Reply, type Request } from './messages.js';

export interface ServerStats {
  received: number;
  malformed: number;
  oversized: number;
  dropped: number;
}

/** Sends `reply` back to the requester; may be called later (after a disk sync). Only the first call counts. */
export type Respond = (reply: Reply) => void;
export type Handler = (req: Request, respond: Respond) => void;

/** zeromq.js allows one send in flight per socket: this queue serialises them, with a bound. */
class Outbox {
  private queue: zmq.MessageLike[][] = [];
  private sending = false;
  dropped = 0;

  constructor(private readonly socket: zmq.Router | zmq.Dealer, private readonly limit: number) {}

  push(frames: zmq.MessageLike[]): boolean {
    if (this.queue.length >= this.limit) {
      this.dropped++;
      return false;
    }
    this.queue.push(frames);
    if (!this.sending) void this.drain();
    return true;
  }

  private async drain(): Promise<void> {
    this.sending = true;
    try {
      while (this.queue.length > 0 && !this.socket.closed) {
        const frames = this.queue.shift()!;
        try {
          await this.socket.send(frames);
        } catch {
          this.dropped++; // peer gone or socket closing: the requester's deadline covers it
        }
      }
    } finally {
      this.sending = false;
    }
  }
}

const PROBLEM_WINDOW_MS = 10_000;
const PROBLEMS_PER_WINDOW = 20;

export interface ServerOptions {
  endpoint: string;
  maxMessageBytes: number;
  handler: Handler;
  /** Replies waiting to be written; beyond this they are dropped (the client times out). */
  maxQueued?: number;
  onProblem?: (reason: string) => void;
}

export class RpcServer {
  readonly stats: ServerStats = { received: 0, malformed: 0, oversized: 0, dropped: 0 };
  // Problem reports in the current window (see report()).
  private windowStart = 0;
  private reported = 0;
  private suppressed = 0;
  private readonly socket: zmq.Router;
  private readonly outbox: Outbox;
  private loop: Promise<void> | null = null;

  constructor(private readonly opts: ServerOptions) {
    this.socket = new zmq.Router({
      linger: 0,
      // zmq itself disconnects peers that send absurd frames; frames between the two limits are answered.
      maxMessageSize: opts.maxMessageBytes * 2 + 1024,
      sendHighWaterMark: 100_000,
      receiveHighWaterMark: 100_000,
    });
    this.outbox = new Outbox(this.socket, opts.maxQueued ?? 100_000);
  }

  /**
   * Reports a bad frame or a failed handler, at most PROBLEMS_PER_WINDOW times per window: a peer
   * throwing garbage must not flood the logs. The stats still count every one.
   */
  private report(reason: string): void {
    const now = Date.now();
    if (now - this.windowStart > PROBLEM_WINDOW_MS) {
      if (this.suppressed > 0) this.opts.onProblem?.(`${this.suppressed} more problems in the last ${PROBLEM_WINDOW_MS / 1000} s not reported`);
      this.windowStart = now;
      this.reported = 0;
      this.suppressed = 0;
    }
    if (this.reported < PROBLEMS_PER_WINDOW) {
      this.reported++;
      this.opts.onProblem?.(reason);
    } else {
      this.suppressed++;
    }
  }
  async start(): Promise<void> {
    await this.socket.bind(this.opts.endpoint);
    this.loop = this.receiveLoop();
  }

  get endpoint(): string {
    return this.opts.endpoint;
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const frames of this.socket) this.onFrames(frames);
    } catch (e) {
      if (!this.socket.closed) this.report(`receive loop ended: ${(e as Error).message}`);
    }
  }

  private onFrames(frames: Buffer[]): void {
    this.stats.received++;
    const identity = frames[0]!;
    if (frames.length !== 2) {
      this.stats.malformed++;
      this.report(`dropped a message of ${frames.length} frames (expected 1)`);
      return;
    }
    const payload = frames[1]!;
    const frame = decodeFrame(payload, this.opts.maxMessageBytes);
    if (isProblem(frame)) {
      if (payload.length > this.opts.maxMessageBytes) this.stats.oversized++;
      else this.stats.malformed++;
      this.report(frame.reason);
      // Without an id the client cannot match a reply; answer with id 0 so a debugging peer sees why.
      const code = payload.length > this.opts.maxMessageBytes ? 'too_big' : 'bad_request';
      this.send(identity, frame.id ?? 0, errorReply(code, frame.reason));
      return;
    }
    const req = validateRequest(frame.body);
    if (typeof req !== 'string' && req.t === 'ping') return; // liveness probe: nothing to do
    if (typeof req === 'string') {
      this.stats.malformed++;
      this.report(req);
      this.send(identity, frame.id, errorReply('bad_request', req));
      return;
    }
    let answered = false;
    const respond: Respond = (reply) => {
      if (answered) return;
      answered = true;
      if (frame.id !== 0) this.send(identity, frame.id, reply);
    };
    try {
      this.opts.handler(req, respond);
    } catch (e) {
      this.report(`handler failed on ${req.t}: ${(e as Error).stack ?? e}`);
      respond(errorReply('internal', `server error on ${req.t}`));
    }
  }

  private send(identity: Buffer, id: number, body: Body): void {
    if (!this.outbox.push([identity, encodeFrame(id, body)])) this.stats.dropped++;
  }

  async close(): Promise<void> {
    this.socket.close();
    await this.loop;
  }
}

export type RpcErrorKind = 'timeout' | 'busy' | 'closed' | 'unreachable' | 'protocol';

/**
 * A request that failed in transport. `kind` says whether it may have been executed:
 * 'busy', 'closed' and 'unreachable' mean it never left this process; 'timeout' means unknown.
 */
export class RpcError extends Error {
  override name = 'RpcError';
  constructor(readonly kind: RpcErrorKind, message: string) {
    super(message);
  }
  get notSent(): boolean {
    return this.kind !== 'timeout' && this.kind !== 'protocol';
  }
}

export interface ClientOptions {
  timeoutMs: number;
  maxInflight: number;
  maxMessageBytes: number;
  /** A request that could not be handed to a connected peer for this long fails as 'unreachable' (default 250). */
  connectWaitMs?: number;
}

/** A one-way liveness probe (request id 0: never answered). */
const PING = encodeFrame(0, { t: 'ping' });
const PING_AFTER_MS = 150;

interface Pending {
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  frame: Buffer | null; // still to be sent (null once written to the socket)
  created: number;
}

/** One DEALER socket to one endpoint, multiplexing many outstanding requests by id. */
export class RpcClient {
  private readonly socket: zmq.Dealer;
  private readonly pending = new Map<number, Pending>();
  private readonly sendQueue: number[] = [];
  private sending = false;
  private nextId = 1;
  private readonly loop: Promise<void>;
  private watch: NodeJS.Timeout | null = null;

  constructor(readonly endpoint: string, private readonly opts: ClientOptions) {
    this.socket = new zmq.Dealer({
      linger: 0,
      // Never queue a request on a connection that is not up: it would be delivered late, after its deadline.
      immediate: true,
      sendTimeout: 0,
      maxMessageSize: opts.maxMessageBytes * 2 + 1024,
      sendHighWaterMark: 100_000,
      receiveHighWaterMark: 100_000,
      reconnectInterval: 50,
      reconnectMaxInterval: 1000,
    });
    this.socket.connect(endpoint);
    this.loop = this.receiveLoop();
  }

  /**
   * A lost connection loses every reply still owed on it (a reconnect gets a new identity at the
   * ROUTER). While a reply has been owed for a while, send a one-way `ping` now and then: with
   * `immediate`, a DEALER refuses to send (EAGAIN) only when no connection is up, and then those
   * requests fail at once (outcome unknown) rather than each at its deadline. (zmq's event monitor
   * keeps worker threads from exiting cleanly, and polling `writable` starves the receive loop.)
   */
  private watchConnection(): void {
    if (this.watch !== null) return;
    this.watch = setInterval(() => {
      let oldest = Infinity;
      for (const p of this.pending.values()) if (p.frame === null) oldest = Math.min(oldest, p.created);
      if (oldest === Infinity) {
        clearInterval(this.watch!);
        this.watch = null;
        return;
      }
      if (Date.now() - oldest < PING_AFTER_MS || this.sending || this.socket.closed) return;
      this.sending = true;
      this.socket.send(PING).then(
        () => {
          this.sending = false;
          if (this.sendQueue.length > 0) void this.drain();
        },
        (e: unknown) => {
          this.sending = false;
          if ((e as { code?: string }).code === 'EAGAIN') this.failSent(`connection to ${this.endpoint} lost`);
          if (this.sendQueue.length > 0) void this.drain();
        },
      );
    }, PING_AFTER_MS);
  }

  private failSent(why: string): void {
    for (const [id, p] of this.pending) {
      if (p.frame !== null) continue;
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new RpcError('timeout', `${why}; no reply`));
    }
  }

  get inflight(): number {
    return this.pending.size;
  }

  request(body: Request, timeoutMs = this.opts.timeoutMs): Promise<Reply> {
    if (this.socket.closed) return Promise.reject(new RpcError('closed', `connection to ${this.endpoint} is closed`));
    if (this.pending.size >= this.opts.maxInflight) {
      return Promise.reject(new RpcError('busy', `${this.pending.size} requests already outstanding to ${this.endpoint}`));
    }
    const id = this.allocId();
    const frame = encodeFrame(id, body);
    if (frame.length > this.opts.maxMessageBytes) {
      return Promise.reject(new RpcError('busy', `request of ${frame.length} bytes exceeds the limit of ${this.opts.maxMessageBytes}`));
    }
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => this.expire(id), timeoutMs);
      this.pending.set(id, { resolve, reject, timer, frame, created: Date.now() });
      this.sendQueue.push(id);
      if (!this.sending) void this.drain();
    });
  }

  private allocId(): number {
    const id = this.nextId;
    this.nextId = id >= 0x7fffffff ? 1 : id + 1;
    return id;
  }

  private expire(id: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (p.frame !== null) p.reject(new RpcError('unreachable', `no connection to ${this.endpoint}`));
    else p.reject(new RpcError('timeout', `no reply from ${this.endpoint} in time`));
  }

  /** Writes queued requests one at a time; while the peer is not connected, waits and retries until the deadline. */
  private async drain(): Promise<void> {
    this.sending = true;
    try {
      while (this.sendQueue.length > 0 && !this.socket.closed) {
        const id = this.sendQueue[0]!;
        const p = this.pending.get(id);
        if (!p || p.frame === null) {
          this.sendQueue.shift();
          continue;
        }
        try {
          await this.socket.send(p.frame);
          p.frame = null;
          this.sendQueue.shift();
          this.watchConnection();
        } catch (e) {
          const waited = Date.now() - p.created;
          if ((e as { code?: string }).code !== 'EAGAIN' || waited > (this.opts.connectWaitMs ?? 250)) {
            this.sendQueue.shift();
            this.pending.delete(id);
            clearTimeout(p.timer);
            p.reject(new RpcError('unreachable', `cannot send to ${this.endpoint}: ${(e as { code?: string }).code === 'EAGAIN' ? `not connected after ${waited} ms` : (e as Error).message}`));
            continue;
          }
          // Not connected (yet): the request has not left; try again shortly.
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    } finally {
      this.sending = false;
    }
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const frames of this.socket) {
        if (frames.length !== 1) continue;
        const frame = decodeFrame(frames[0]!, this.opts.maxMessageBytes);
        if (isProblem(frame)) continue;
        const p = this.pending.get(frame.id);
        if (!p) continue; // late reply to an expired request
        this.pending.delete(frame.id);
        clearTimeout(p.timer);
        const body = frame.body as Reply;
        if (typeof body !== 'object' || body === null || typeof body.t !== 'string') {
          p.reject(new RpcError('protocol', `malformed reply from ${this.endpoint}`));
        } else {
          p.resolve(body);
        }
      }
    } catch {
      // socket closed
    }
  }

  async close(): Promise<void> {
    if (this.socket.closed) return;
    if (this.watch !== null) clearInterval(this.watch);
    this.socket.close();
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new RpcError(p.frame === null ? 'timeout' : 'closed', `connection to ${this.endpoint} closed`));
      this.pending.delete(id);
    }
    await this.loop;
  }
}
