// Request/reply over ZeroMQ: RpcServer (ROUTER) and RpcClient (DEALER).
// Every request has an id and a deadline; outstanding requests and frame sizes are bounded;
// a malformed frame is counted and answered with an error (or dropped) and never throws.
//
// Framing. A frame is one encoded request or reply (`encodeFrameParts(id, body)`, transport/codec.ts):
// one part, followed by a part per attachment (a byte string of 64 KiB or more, sent from its own
// buffer instead of being copied into the frame). One zmq message carries one or more frames, several
// of them packed into one bundle part with their attachments after it (`messageParts`, `forEachFrame`):
//   client -> server   DEALER sends [frame, frame, ...]; the ROUTER reads [identity, frame, frame, ...]
//   server -> client   ROUTER sends [identity, reply, reply, ...]; the DEALER reads [reply, reply, ...]
// Each frame is handled on its own and in order, exactly as if it had come alone (decoded, validated,
// answered, counted in the stats); replies match requests by id, never by position. The send loops
// write whatever is queued when they run as one message, at most MAX_FRAMES_PER_MESSAGE frames and
// about MAX_BYTES_PER_MESSAGE (or maxMessageBytes, if smaller) per message; a bigger frame goes alone
// (attachments count towards its size).
// The server groups queued replies by the requester's identity, keeping their order. A send starts on
// the next tick after the first frame is queued, so the frames produced together (every request read
// from one message, a group commit's acknowledgements) share a message: one zmq send and one receive
// per batch instead of per frame. A client with requests already awaiting replies waits for the end of
// the event-loop turn instead (RpcClient.kick), so requests made in separate callbacks of that turn
// (a frontend's HTTP requests) share one message too. Size limits apply to each frame with its
// attachments (maxMessageBytes) and to each part (zmq's maxMessageSize); the server handles at most
// MAX_FRAMES_PER_MESSAGE frames of a message and answers the rest `too_big` unexecuted.
import * as zmq from 'zeromq';
import { encodeFrameParts, forEachFrame, isProblem, MAX_FRAMES_PER_MESSAGE, messageParts, partsBytes, type Body, type Frame, type FrameProblem } from './codec.js';
import { errorReply, validateRequest, type Reply, type Request } from './messages.js';

export const MAX_BYTES_PER_MESSAGE = 4 << 20;

export interface ServerStats {
  received: number;
  malformed: number;
  oversized: number;
  dropped: number;
}

/** Sends `reply` back to the requester; may be called later (after a disk sync). Only the first call counts. */
export type Respond = (reply: Reply) => void;
export type Handler = (req: Request, respond: Respond) => void;

/** How many of the frames at the front (sizes given by `size`, `count` of them) go in one message: at least one. */
function batchLength(count: number, size: (i: number) => number, maxBytes: number): number {
  let n = 0;
  let bytes = 0;
  while (n < count && n < MAX_FRAMES_PER_MESSAGE) {
    bytes += size(n);
    if (n > 0 && bytes > maxBytes) break;
    n++;
  }
  return n;
}

interface PeerQueue {
  identity: Buffer;
  frames: Buffer[][]; // each: a frame's parts
}

/**
 * The server's replies waiting to be written, by requester; bounded. zeromq.js allows one send in
 * flight per socket: the drain loop writes one message per requester in turn, each with as many of
 * its replies as fit.
 */
class Outbox {
  private readonly peers = new Map<string, PeerQueue>(); // by identity bytes
  private readonly turns: string[] = []; // peers with replies waiting, in turn
  private queued = 0;
  private sending = false;
  private scheduled = false;
  dropped = 0;

  constructor(
    private readonly socket: zmq.Router,
    private readonly limit: number,
    private readonly maxBytes: number,
  ) {}

  push(identity: Buffer, frame: Buffer[]): boolean {
    if (this.queued >= this.limit) {
      this.dropped++;
      return false;
    }
    const key = identity.toString('latin1');
    let peer = this.peers.get(key);
    if (peer === undefined) {
      peer = { identity, frames: [] };
      this.peers.set(key, peer);
      this.turns.push(key);
    }
    peer.frames.push(frame);
    this.queued++;
    if (this.sending) return true;
    if (this.queued >= MAX_FRAMES_PER_MESSAGE) {
      void this.drain(); // a full message is ready: no reason to wait
    } else if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(() => {
        this.scheduled = false;
        if (!this.sending) void this.drain();
      });
    }
    return true;
  }

  private async drain(): Promise<void> {
    this.sending = true;
    try {
      while (this.turns.length > 0 && !this.socket.closed) {
        const key = this.turns.shift()!;
        const peer = this.peers.get(key)!;
        const n = batchLength(peer.frames.length, (i) => partsBytes(peer.frames[i]!), this.maxBytes);
        let frames: Buffer[][];
        if (n === peer.frames.length) {
          frames = peer.frames;
          this.peers.delete(key);
        } else {
          frames = peer.frames.splice(0, n);
          this.turns.push(key); // the rest after the other peers' turns
        }
        this.queued -= n;
        try {
          await this.socket.send([peer.identity, ...messageParts(frames)]);
        } catch {
          this.dropped += n; // peer gone or socket closing: the requesters' deadlines cover it
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
  /** Told the bytes of every message received (all its parts), before its requests are handled. */
  onBytes?: (bytes: number) => void;
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
      // zmq itself disconnects peers that send absurd frames (the limit is per part, i.e. per frame);
      // frames between the two limits are answered.
      maxMessageSize: opts.maxMessageBytes * 2 + 1024,
      sendHighWaterMark: 100_000,
      receiveHighWaterMark: 100_000,
    });
    this.outbox = new Outbox(this.socket, opts.maxQueued ?? 100_000, Math.min(MAX_BYTES_PER_MESSAGE, opts.maxMessageBytes));
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
      const onBytes = this.opts.onBytes;
      for await (const parts of this.socket) {
        if (onBytes) {
          let n = 0;
          for (const p of parts) n += p.length;
          try {
            onBytes(n);
          } catch (e) {
            this.report(`onBytes failed: ${(e as Error).message}`); // (the receive loop goes on)
          }
        }
        this.onMessage(parts);
      }
    } catch (e) {
      if (!this.socket.closed) this.report(`receive loop ended: ${(e as Error).message}`);
    }
  }

  /** [identity, frame or bundle, ...]: each frame (with its attachments) is a request of its own. */
  private onMessage(parts: Buffer[]): void {
    const identity = parts[0]!;
    if (parts.length < 2) {
      this.stats.received++;
      this.stats.malformed++;
      this.report('dropped a message with no frames');
      return;
    }
    // Frames beyond MAX_FRAMES_PER_MESSAGE are answered too_big unexecuted; beyond twice that (only a
    // hand-made bundle has so many) the rest of the message is dropped unanswered.
    let frames = 0;
    forEachFrame(parts, 1, this.opts.maxMessageBytes, (frame) => {
      if (++frames <= MAX_FRAMES_PER_MESSAGE) {
        this.onFrame(identity, frame);
        return true;
      }
      this.stats.received++;
      this.stats.oversized++;
      if (frames > 2 * MAX_FRAMES_PER_MESSAGE) return false;
      this.send(identity, frame.id ?? 0, errorReply('too_big', `more than ${MAX_FRAMES_PER_MESSAGE} frames in one message`));
      return true;
    });
    if (frames > MAX_FRAMES_PER_MESSAGE) this.report(`a message of ${frames > 2 * MAX_FRAMES_PER_MESSAGE ? 'over ' : ''}${frames} frames: ${frames - MAX_FRAMES_PER_MESSAGE} of them not executed (at most ${MAX_FRAMES_PER_MESSAGE} per message)`);
  }

  private onFrame(identity: Buffer, frame: Frame | FrameProblem): void {
    this.stats.received++;
    if (isProblem(frame)) {
      if (frame.tooBig) this.stats.oversized++;
      else this.stats.malformed++;
      this.report(frame.reason);
      // Without an id the client cannot match a reply; answer with id 0 so a debugging peer sees why.
      this.send(identity, frame.id ?? 0, errorReply(frame.tooBig ? 'too_big' : 'bad_request', frame.reason));
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
    if (!this.outbox.push(identity, encodeFrameParts(id, body))) this.stats.dropped++;
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
  /**
   * While requests await replies, wait for the end of the event-loop turn before sending, so that
   * requests made in separate callbacks share a message (default true). A caller that already sends
   * everything of a turn together turns it off: waiting again only costs a loop iteration.
   */
  coalesceTurn?: boolean;
}

/** A one-way liveness probe (request id 0: never answered). */
const PING = encodeFrameParts(0, { t: 'ping' });
const PING_AFTER_MS = 150;

interface Pending {
  id: number;
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  frame: Buffer[] | null; // its parts, still to be sent (null once written to the socket)
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
      // A restarted peer is reachable again within 250 ms: with zmq's back-off up to 1 s, a primary could
      // not send to a replica that had been down a second or more for up to a second after it was back.
      reconnectInterval: 50,
      reconnectMaxInterval: 250,
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
          this.kick();
        },
        (e: unknown) => {
          this.sending = false;
          if ((e as { code?: string }).code === 'EAGAIN') this.failSent(`connection to ${this.endpoint} lost`);
          this.kick();
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
    const frame = encodeFrameParts(id, body);
    const bytes = partsBytes(frame);
    if (bytes > this.opts.maxMessageBytes) {
      return Promise.reject(new RpcError('busy', `request of ${bytes} bytes exceeds the limit of ${this.opts.maxMessageBytes}`));
    }
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => this.expire(id), timeoutMs);
      this.pending.set(id, { id, resolve, reject, timer, frame, created: Date.now() });
      this.sendQueue.push(id);
      this.kick();
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

  /**
   * Starts the send loop unless it runs (or a ping is being sent). A lone request goes on the next
   * tick (no added latency); while others await replies, the loop starts after this turn of the event
   * loop, so requests made by every callback of the turn share one message (a frontend parses each
   * HTTP request in its own callback: one zmq send per page cost ~15 % of its CPU). Without
   * `coalesceTurn` every send starts on the next tick.
   */
  private kick(): void {
    if (this.sending || this.sendQueue.length === 0) return;
    this.sending = true;
    if (this.opts.coalesceTurn !== false && this.pending.size - this.sendQueue.length > 0) setImmediate(() => void this.drain());
    else process.nextTick(() => void this.drain());
  }

  /**
   * Writes the queued requests, as many per message as the limits allow; while the peer is not
   * connected, waits and retries, failing each request whose connectWaitMs has passed.
   */
  private async drain(): Promise<void> {
    this.sending = true;
    const maxBytes = Math.min(MAX_BYTES_PER_MESSAGE, this.opts.maxMessageBytes);
    try {
      while (this.sendQueue.length > 0 && !this.socket.closed) {
        // Requests that expired (or were failed) meanwhile have left `pending`: skip them.
        let skip = 0;
        while (skip < this.sendQueue.length && this.pending.get(this.sendQueue[skip]!)?.frame == null) skip++;
        if (skip > 0) this.sendQueue.splice(0, skip);
        const batch: Pending[] = [];
        for (const id of this.sendQueue) {
          const p = this.pending.get(id);
          if (p?.frame == null) break;
          batch.push(p);
          if (batch.length === MAX_FRAMES_PER_MESSAGE) break;
        }
        if (batch.length === 0) continue;
        batch.length = batchLength(batch.length, (i) => partsBytes(batch[i]!.frame!), maxBytes);
        try {
          await this.socket.send(messageParts(batch.map((p) => p.frame!)));
          for (const p of batch) p.frame = null;
          this.sendQueue.splice(0, batch.length);
          this.watchConnection();
        } catch (e) {
          // zmq takes a message whole or not at all: none of these requests has left.
          const eagain = (e as { code?: string }).code === 'EAGAIN';
          const now = Date.now();
          let failed = 0;
          for (const p of batch) {
            const waited = now - p.created;
            if (eagain && waited <= (this.opts.connectWaitMs ?? 250)) continue;
            failed++;
            this.pending.delete(p.id);
            clearTimeout(p.timer);
            p.reject(new RpcError('unreachable', `cannot send to ${this.endpoint}: ${eagain ? `not connected after ${waited} ms` : (e as Error).message}`));
          }
          // Not connected (yet): try again shortly.
          if (failed < batch.length) await new Promise((r) => setTimeout(r, 5));
        }
      }
    } finally {
      this.sending = false;
    }
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const parts of this.socket) forEachFrame(parts, 0, this.opts.maxMessageBytes, this.onReply);
    } catch {
      // socket closed
    }
  }

  private readonly onReply = (frame: Frame | FrameProblem): void => {
    if (isProblem(frame)) return;
    const p = this.pending.get(frame.id);
    if (!p) return; // late reply to an expired request
    this.pending.delete(frame.id);
    clearTimeout(p.timer);
    const body = frame.body as Reply;
    if (typeof body !== 'object' || body === null || typeof body.t !== 'string') {
      p.reject(new RpcError('protocol', `malformed reply from ${this.endpoint}`));
    } else {
      p.resolve(body);
    }
  };

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
