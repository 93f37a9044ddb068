// One page of a tablet's raw cells on one storage node, for the admin console. The node pages with a
// cursor (`scan`); nothing beyond one page is fetched. A page of ten large values can exceed the
// message limit (the reply is then dropped): in that case the page is read one cell per request.
import type { StoreClient } from '../../actors/session.js';
import { RpcError } from '../../transport/rpc.js';
import type { Cursor } from '../../transport/messages.js';
import { showValue, type ShownValue } from './format.js';

export const PAGE_CELLS = 10;

export interface ShownCell {
  row: string;
  col: string;
  value: ShownValue;
}

export interface RawPage {
  cells: ShownCell[];
  /** Where the next page starts (null: this is the last page). */
  next: Cursor | null;
}

/** A reply too big for the client's limit is dropped, and shows up as a timeout or a protocol error. */
function maybeTooBig(e: unknown): boolean {
  return e instanceof RpcError && (e.kind === 'timeout' || e.kind === 'protocol');
}

export async function readPage(store: StoreClient, node: string, tablet: number, after: Cursor | null): Promise<RawPage> {
  try {
    const rep = await store.scan(node, tablet, after, PAGE_CELLS);
    return { cells: rep.cells.map(([row, col, v]) => ({ row, col, value: showValue(v) })), next: rep.next };
  } catch (e) {
    if (!maybeTooBig(e)) throw e;
  }
  const cells: ShownCell[] = [];
  let cursor = after;
  let next: Cursor | null = null;
  while (cells.length < PAGE_CELLS) {
    const rep = await store.scan(node, tablet, cursor, 1);
    const cell = rep.cells[0];
    if (!cell) break;
    cells.push({ row: cell[0], col: cell[1], value: showValue(cell[2]) });
    cursor = [cell[0], cell[1]];
    next = rep.next;
    if (next === null) break;
  }
  return { cells, next };
}
