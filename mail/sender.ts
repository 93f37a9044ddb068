// The outbound sender, run by every SMTP node: every poll it looks at the queue in the store, claims due
// entries with a lease (CPUT, so two nodes never both send one), and delivers them to the recipient's
// domain. A temporary failure is retried after mail.retry_first_s, doubling each time, until
// mail.retry_for_s after the first attempt; a permanent failure or giving up puts a failure notice in
// the sender's inbox.
import type { Logger } from 'pino';
import { randomBytes } from 'node:crypto';
import type { StoreClient } from '../actors/session.js';
import type { Topology } from '../transport/topology.js';
import { domainOf } from './addresses.js';
import { sendFailureNotice } from './bounce.js';
import { makeResolver, route } from './mx.js';
import { claim, claimable, finish, queuedIds, readEntry, readMessage, reschedule, type QueueCell, type QueueEntry } from './queue.js';
import { transfer, type TransferResult } from './transfer.js';

export interface SenderOptions {
  /** How often the queue is looked at. */
  pollMs?: number;
  /** Deliveries in flight per node. */
  parallel?: number;
  /** Entries read per poll at most (the rest wait for later polls). */
  scanLimit?: number;
  /** SMTP step timeout (connect, greeting). */
  timeoutMs?: number;
  /** How long a claim holds; renewed every third of it while the delivery runs. */
  leaseMs?: number;
}

/**
 * When to try again after `attempts` failed attempts: on the schedule first, first+2*first,
 * first+2*first+4*first, ... after the entry was created (gaps of retry_first_s doubling each time, each
 * at most a day), and never sooner than retry_first_s from now.
 */
export function nextAttemptAt(created: number, firstS: number, attempts: number, now: number): number {
  const first = firstS * 1000;
  let at = created;
  for (let i = 0; i < attempts; i++) at += Math.min(first * 2 ** Math.min(i, 30), 86_400_000);
  return Math.max(at, now + first);
}

export class OutboundSender {
  readonly owner: string;
  private readonly pollMs: number;
  private readonly parallel: number;
  private readonly scanLimit: number;
  private readonly timeoutMs: number;
  private readonly leaseMs: number;
  private readonly resolver;
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;
  private readonly inflight = new Set<Promise<void>>();
  /** What we last saw of entries not yet due (skipped without a read until then). */
  private readonly notBefore = new Map<string, number>();
  private stopped = false;
  readonly stats = { sent: 0, retried: 0, bounced: 0, claimsLost: 0 };

  constructor(
    private readonly store: StoreClient,
    private readonly topo: Topology,
    node: string,
    private readonly log: Logger,
    o: SenderOptions = {},
  ) {
    this.owner = `${node}:${process.pid}:${randomBytes(4).toString('hex')}`;
    this.pollMs = o.pollMs ?? 1000;
    this.parallel = o.parallel ?? 8;
    this.scanLimit = o.scanLimit ?? 2000;
    this.timeoutMs = o.timeoutMs ?? 30_000;
    this.leaseMs = o.leaseMs ?? 60_000;
    this.resolver = makeResolver(topo.mail.dnsServers);
  }

  start(): void {
    const tick = (): void => {
      if (this.stopped) return;
      this.polling = this.poll()
        .catch((e) => this.log.warn({ err: (e as Error).message }, 'outbound poll failed'))
        .finally(() => {
          this.polling = null;
          if (!this.stopped) this.timer = setTimeout(tick, this.pollMs);
        });
    };
    this.timer = setTimeout(tick, Math.min(200, this.pollMs));
  }

  /** Stops claiming; waits (bounded) for deliveries in flight. */
  async stop(waitMs = 5000): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const all = Promise.all([this.polling, ...this.inflight]);
    await Promise.race([all, new Promise((r) => setTimeout(r, waitMs).unref())]);
  }

  /** One look at the queue: claims due entries up to the free delivery slots. */
  async poll(now = Date.now()): Promise<void> {
    const ids = await queuedIds(this.store);
    const live = new Set(ids);
    for (const id of this.notBefore.keys()) if (!live.has(id)) this.notBefore.delete(id);
    // Oldest first (ids sort newest first).
    let read = 0;
    for (let i = ids.length - 1; i >= 0 && read < this.scanLimit && !this.stopped; i--) {
      if (this.inflight.size >= this.parallel) break;
      const id = ids[i]!;
      if ((this.notBefore.get(id) ?? 0) > now) continue;
      read++;
      const cell = await readEntry(this.store, id);
      if (cell === null) continue;
      if (!claimable(cell.entry, now)) {
        this.notBefore.set(id, Math.max(cell.entry.nextAt, cell.entry.lease?.until ?? 0));
        continue;
      }
      const mine = await claim(this.store, cell, this.owner, this.leaseMs, now);
      if (!mine) {
        this.stats.claimsLost++;
        continue;
      }
      const p = this.deliver(mine)
        .catch((e) => this.log.error({ err: (e as Error).message, id }, 'outbound delivery failed'))
        .finally(() => this.inflight.delete(p));
      this.inflight.add(p);
    }
  }

  /** Waits for the deliveries in flight (tests). */
  async settle(): Promise<void> {
    await Promise.all([...this.inflight]);
  }

  /** Delivers a claimed entry, renewing the lease while it runs (a long send is not taken over). */
  private async deliver(claimed: QueueCell): Promise<void> {
    let cell = claimed;
    let renewing: Promise<void> = Promise.resolve();
    const renew = setInterval(() => {
      renewing = claim(this.store, cell, this.owner, this.leaseMs).then(
        (next) => {
          if (next) cell = next;
          else this.log.warn({ id: cell.entry.id }, 'lost the lease while sending');
        },
        () => {}, // the store is busy: the lease still has two thirds left; the next renewal tries again
      );
    }, Math.floor(this.leaseMs / 3));
    let outcome: { result: TransferResult; raw: Buffer } | null;
    try {
      const raw = await readMessage(this.store, cell.entry);
      outcome = raw === null ? null : { result: await this.attempt(cell.entry, raw), raw };
    } finally {
      clearInterval(renew);
      await renewing;
    }
    const e = cell.entry;
    if (outcome === null) {
      this.log.warn({ id: e.id }, 'queued message cells missing; dropping the entry');
      await finish(this.store, e);
      return;
    }
    const { result, raw } = outcome;
    const domain = this.topo.cluster.mailDomain;
    if (result.kind === 'sent') {
      this.stats.sent++;
      this.log.info({ id: e.id, rcpt: e.rcpt, host: result.host, attempts: e.attempts + 1 }, 'sent');
      await finish(this.store, e);
      return;
    }
    const now = Date.now();
    const next = nextAttemptAt(e.created, this.topo.mail.retryFirstS, e.attempts + 1, now);
    const deadline = e.created + this.topo.mail.retryForS * 1000;
    if (result.kind === 'temporary' && next <= deadline) {
      this.stats.retried++;
      this.log.info({ id: e.id, rcpt: e.rcpt, reason: result.reason, retryAt: new Date(next).toISOString() }, 'deferred');
      if (!(await reschedule(this.store, cell, next, result.reason))) this.log.warn({ id: e.id }, 'lost the lease while sending');
      return;
    }
    const reason = result.kind === 'permanent' ? result.reason : `gave up after ${this.topo.mail.retryForS} s of retries; last problem: ${result.reason}`;
    this.stats.bounced++;
    this.log.info({ id: e.id, rcpt: e.rcpt, reason }, 'bounced');
    // The notice first, then the entry: a crash between the two at worst sends a second notice.
    if (e.sender !== '' && !(await sendFailureNotice(this.store, domain, e, reason, raw))) {
      this.log.warn({ id: e.id, sender: e.sender }, 'no account for the failure notice');
    }
    await finish(this.store, e);
  }

  private async attempt(e: QueueEntry, raw: Buffer): Promise<TransferResult> {
    const r = await route(this.resolver, domainOf(e.rcpt));
    if (!r.ok) return r.permanent ? { kind: 'permanent', reason: r.reason } : { kind: 'temporary', reason: r.reason };
    return transfer(r.exchangers, { from: e.from, to: e.rcpt }, raw, { port: this.topo.mail.remotePort, heloName: this.topo.cluster.mailDomain, timeoutMs: this.timeoutMs });
  }
}
