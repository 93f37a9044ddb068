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

/** A tablet is served by worker (tablet mod workers) of each node that holds it. */
export function workerIndex(tablet: number, workers: number): number {
  return tablet % workers;
}

export function workerEndpoint(node: MapNode, tablet: number): string {
  return node.workers[workerIndex(tablet, node.workers.length)]!;
}

export function mapNode(map: TabletMap, name: string): MapNode | undefined {
  return map.nodes.find((n) => n.name === name);
}
