// Deleting files and whole folder trees. A node is first marked deleted with CPUT on its meta (so a
// concurrent move, rename or second delete of the same node is decided by one winner), unlinked from
// its folder, then its cells are removed: chunks, then entries and metas from the leaves up. The work is
// recorded in the frontend's pending row first, so a frontend that dies half-way has the sweeper finish.
import type { StoreClient } from '../../actors/session.js';
import { deleteChunks } from './chunks.js';
import { DriveError } from './errors.js';
import type { PendingLog } from './pending.js';
import { release } from './quota.js';
import { CHUNK_SIZE, dirRow, nodeRow, META, type Entry, type NodeMeta } from './rows.js';
import { cputSure, deleteSure, eachLimited, getJson } from '../../actors/store-writes.js';
import { ownedNode, readMeta, unlink } from './tree.js';

/** Children of one folder removed at a time. */
const CHILDREN_IN_FLIGHT = 4;

/** Marks a node deleted; the marked meta, or null when someone else changed it first. */
async function claim(store: StoreClient, id: string, stored: { raw: Uint8Array; value: NodeMeta }): Promise<NodeMeta | null> {
  const marked: NodeMeta = { ...stored.value, deleted: true, movedAt: Date.now() };
  if (!(await cputSure(store, nodeRow(id), META, stored.raw, JSON.stringify(marked)))) return null;
  if (marked.kind === 'file') await release(store, marked.owner, marked.size ?? 0);
  return marked;
}

/** Deletes the file or folder `id` of `user` with everything in it. */
export async function deleteNode(store: StoreClient, user: string, id: string, pending: PendingLog): Promise<void> {
  const node = await ownedNode(store, user, id);
  const parent = node.value.parent;
  if (parent === null) throw new DriveError(400, 'The top folder of your drive cannot be deleted.');
  await pending.begin(id, { kind: 'delete', user });
  const marked = await claim(store, id, node);
  if (!marked) {
    await pending.end(id);
    throw new DriveError(409, 'It was changed by someone else at the same time; look again and retry.');
  }
  await unlink(store, parent, marked.name, id);
  await purge(store, id, marked);
  await pending.end(id);
}

/**
 * Removes the cells of a node already marked deleted, and of everything below it. Idempotent: the
 * sweeper runs it again for a delete whose frontend died.
 */
export async function purge(store: StoreClient, id: string, meta: NodeMeta): Promise<void> {
  if (meta.kind === 'file') {
    await deleteChunks(store, id, meta.chunks ?? Math.ceil((meta.size ?? 0) / (meta.chunkSize ?? CHUNK_SIZE)));
  } else {
    const names = await store.cols(dirRow(id));
    await eachLimited(names, CHILDREN_IN_FLIGHT, async (name) => {
      const e = await getJson<Entry>(store, dirRow(id), name);
      const child = e ? await readMeta(store, e.value.id) : null;
      if (e && child && child.value.parent === id) {
        const marked = child.value.deleted ? child.value : await claim(store, e.value.id, child);
        if (marked) await purge(store, e.value.id, marked);
      }
      await deleteSure(store, dirRow(id), name);
    });
  }
  await deleteSure(store, nodeRow(id), META);
}
