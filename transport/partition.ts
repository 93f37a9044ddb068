// Which tablet a row belongs to, and which socket of a node serves a tablet.
// Both the session actor and the storage node use these, so they always agree.
import type { MapNode, TabletMap } from './messages.js';

/** FNV-1a (32 bit) over the UTF-16 code units of the row name: stable across processes and versions. */
export function hashRow(row: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < row.length; i++) {
    h ^= row.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function tabletOf(row: string, tablets: number): number {
  return hashRow(row) % tablets;
}

/**
 * The worker of a node that serves a tablet: consecutive runs of `nodes` tablets alternate between
 * workers, so every node's tablets spread evenly over its workers (a plain `tablet % workers` would put
 * all of a node's tablets on one worker when the node count and the worker count share a factor).
 */
export function workerIndex(tablet: number, workers: number, nodes: number): number {
  return Math.floor(tablet / nodes) % workers;
}

/** The nodes (indices into the topology's storage list) a tablet lives on: t, t+1, ..., t+R-1 (mod N); the first is its preferred primary. */
export function replicaIndices(tablet: number, nodes: number, replication: number): number[] {
  return Array.from({ length: Math.min(replication, nodes) }, (_, i) => (tablet + i) % nodes);
}

/** How many tablets a node's worker serves (its share of the node's replica sets). */
export function tabletsOfWorker(node: number, worker: number, c: { tablets: number; nodes: number; workers: number; replication: number }): number {
  let n = 0;
  for (let t = 0; t < c.tablets; t++) {
    if (workerIndex(t, c.workers, c.nodes) === worker && replicaIndices(t, c.nodes, c.replication).includes(node)) n++;
  }
  return n;
}

export function workerEndpoint(map: TabletMap, node: MapNode, tablet: number): string {
  return node.workers[workerIndex(tablet, node.workers.length, map.nodes.length)]!;
}

export function mapNode(map: TabletMap, name: string): MapNode | undefined {
  return map.nodes.find((n) => n.name === name);
}
