// One page of a tablet's raw cells on one storage node, for the admin console. The node pages with a
// cursor (`scan`); nothing beyond one page is fetched. A page of large values holds fewer than
// PAGE_CELLS cells: the node ends a page once its values pass MAX_SCAN_BYTES (tablet-state.ts).
import type { StoreClient } from '../../actors/session.js';
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

export async function readPage(store: StoreClient, node: string, tablet: number, after: Cursor | null): Promise<RawPage> {
  const rep = await store.scan(node, tablet, after, PAGE_CELLS);
  return { cells: rep.cells.map(([row, col, v]) => ({ row, col, value: showValue(v) })), next: rep.next };
}
