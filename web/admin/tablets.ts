// The tablet map as the admin console shows it, computed purely from the master's map and node states:
// each tablet's replicas with their log positions and health, what each storage node holds, and which
// tablets would lose their last live in-sync replica if a node were stopped.
import type { NodeState, TabletMap } from '../../transport/messages.js';

/**
 * ok: in sync and at the primary's log position; lagging: in sync but its reported position is behind
 * (heartbeats lag a little under load); catching_up: not in sync (recovering); down: its node is not live.
 */
export type ReplicaHealth = 'ok' | 'lagging' | 'catching_up' | 'down';

export interface ReplicaView {
  node: string;
  primary: boolean;
  inSync: boolean;
  /** Log position from the node's last heartbeat (null: not reported yet). */
  lsn: number | null;
  /** Records behind the primary's reported position (null when either is unknown). */
  behind: number | null;
  health: ReplicaHealth;
}

export interface TabletView {
  id: number;
  epoch: number;
  primary: string | null;
  replicas: ReplicaView[];
  /** A live primary serves it. */
  available: boolean;
}

export interface HoldingView {
  /** Tablets this node replicates, per the map. */
  held: number;
  /** Of which it is the primary. */
  primaries: number;
}

/** A node that is up: it serves (alive) or is catching up on some tablets (recovering). */
export function isLive(state: NodeState | undefined): boolean {
  return state === 'alive' || state === 'recovering';
}

export function stateIndex(map: TabletMap): Map<string, NodeState> {
  return new Map(map.nodes.map((n) => [n.name, n.state]));
}

export function tabletViews(map: TabletMap, states: Map<string, NodeState>): TabletView[] {
  return map.assignments.map((a) => {
    const primaryLsn = a.primary !== null ? a.lsn[a.primary] : undefined;
    const replicas = a.replicas.map((node): ReplicaView => {
      const lsn = a.lsn[node] ?? null;
      const inSync = a.inSync.includes(node);
      const behind = lsn !== null && primaryLsn !== undefined ? Math.max(0, primaryLsn - lsn) : null;
      let health: ReplicaHealth;
      if (!isLive(states.get(node))) health = 'down';
      else if (!inSync) health = 'catching_up';
      else if (behind !== null && behind > 0) health = 'lagging';
      else health = 'ok';
      return { node, primary: node === a.primary, inSync, lsn, behind, health };
    });
    return { id: a.id, epoch: a.epoch, primary: a.primary, replicas, available: a.primary !== null && isLive(states.get(a.primary)) };
  });
}

export function holdings(map: TabletMap, node: string): HoldingView {
  let held = 0;
  let primaries = 0;
  for (const a of map.assignments) {
    if (a.replicas.includes(node)) held++;
    if (a.primary === node) primaries++;
  }
  return { held, primaries };
}

/**
 * Tablets for which `node` is the last live in-sync replica: stopping it leaves them with nobody who
 * may become primary, so they are unavailable until it comes back.
 */
export function strandedIfStopped(map: TabletMap, states: Map<string, NodeState>, node: string): number[] {
  if (!isLive(states.get(node))) return [];
  return map.assignments
    .filter((a) => a.inSync.includes(node) && !a.inSync.some((other) => other !== node && isLive(states.get(other))))
    .map((a) => a.id);
}
