// The balancer's state, kept pure (no I/O, time passed in): which services are up, how loaded they
// are, and which frontend a new client should go to. Only the services the topology names are taken,
// and clients are sent to the URL the topology gives: a heartbeat cannot grow the table or point users
// elsewhere.
import type { ServiceHeartbeatReq, ServiceKind, ServiceStatus } from '../transport/messages.js';

/** A service the topology names: its kind and the URL clients reach it at. */
export interface KnownService {
  kind: ServiceKind;
  url: string;
}

interface Entry {
  beat: ServiceHeartbeatReq;
  at: number; // when the last heartbeat arrived (ms, monotonic)
  /** Clients sent there since its last heartbeat: load it has not reported yet. */
  sentSinceBeat: number;
}

export class ServiceRegistry {
  private readonly entries = new Map<string, Entry>();

  /** A service is out when silent this long (three heartbeat periods). */
  constructor(
    private readonly outAfterMs: number,
    private readonly known: ReadonlyMap<string, KnownService>,
  ) {}

  /** Takes a heartbeat; false (and ignored) when the topology has no such service of that kind. */
  heartbeat(beat: ServiceHeartbeatReq, now: number): boolean {
    const k = this.known.get(beat.node);
    if (!k || k.kind !== beat.kind) return false;
    this.entries.set(beat.node, { beat, at: now, sentSinceBeat: 0 });
    return true;
  }

  isLive(e: Entry, now: number): boolean {
    return now - e.at <= this.outAfterMs;
  }

  /**
   * The live frontend with the least load: requests in flight, plus clients sent there since it last
   * reported, plus its event-loop delay (5 ms of delay weighs like one request). Ties go to the one
   * that has been sent the fewest clients lately, then by name, so choices spread out.
   */
  choose(now: number): ServiceStatus | null {
    let best: Entry | null = null;
    let bestScore = Infinity;
    for (const e of this.entries.values()) {
      if (e.beat.kind !== 'frontend' || !this.isLive(e, now)) continue;
      const score = e.beat.load.inflight + e.sentSinceBeat + e.beat.load.loopDelayMs / 5;
      if (score < bestScore || (score === bestScore && best !== null && (e.sentSinceBeat < best.sentSinceBeat || (e.sentSinceBeat === best.sentSinceBeat && e.beat.node < best.beat.node)))) {
        best = e;
        bestScore = score;
      }
    }
    if (!best) return null;
    best.sentSinceBeat++;
    return this.status(best, now);
  }

  /** Every service ever heard from, with whether it is live now. */
  list(now: number): ServiceStatus[] {
    return [...this.entries.values()].map((e) => this.status(e, now)).sort((a, b) => (a.kind + a.name < b.kind + b.name ? -1 : 1));
  }

  private status(e: Entry, now: number): ServiceStatus {
    return { name: e.beat.node, kind: e.beat.kind, url: this.known.get(e.beat.node)!.url, pid: e.beat.pid, alive: this.isLive(e, now), load: e.beat.load, lastHeartbeatMs: Math.max(0, Math.round(now - e.at)) };
  }
}
