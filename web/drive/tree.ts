// The folder tree of a user's drive in the store: nodes (files and folders) with ids, a folder listing
// its children with one cell per name. A node's own meta cell is the truth about where it lives; a
// folder entry counts only when the node's meta agrees with it, so a move or rename is three small
// writes (claim the new entry with CPUT, switch the meta with CPUT, drop the old entry) whatever lies
// below, and a crash between them leaves at worst an entry that listings ignore and a later claim of
// that name takes over (see docs/drive.md).
import { randomUUID } from 'node:crypto';
import type { StoreClient } from '../../actors/session.js';
import { DriveError } from './errors.js';
import { nameProblem, normalizeName } from './names.js';
import { driveRow, dirRow, isNodeId, nodeRow, META, type Entry, type NodeMeta } from './rows.js';
import { cputSure, deleteSure, eachLimited, getJson, putSure } from '../../actors/store-writes.js';

/** An entry that disagrees with its node is taken over only when it and the node's last move are this old. */
export const STALE_ENTRY_MS = 30_000;
/** Children of one folder. */
export const MAX_ENTRIES = 10_000;
/** Folders inside folders. */
export const MAX_DEPTH = 64;
/** Reads in flight while listing a folder. */
const LIST_PARALLEL = 32;

export interface Child {
  id: string;
  meta: NodeMeta;
}

export interface Crumb {
  id: string;
  name: string;
}

type Stored = { raw: Uint8Array; value: NodeMeta };

export const readMeta = (store: StoreClient, id: string): Promise<Stored | null> => getJson<NodeMeta>(store, nodeRow(id), META);

const gone = (): DriveError => new DriveError(404, 'There is no such file or folder (it may have been moved or deleted).');

/** The id of the user's root folder, created on first use. */
export async function rootId(store: StoreClient, user: string): Promise<string> {
  const existing = await store.get(driveRow(user), 'root');
  if (existing !== null) return Buffer.from(existing).toString('utf8');
  const id = randomUUID();
  const now = Date.now();
  const meta: NodeMeta = { kind: 'dir', owner: user, name: '', parent: null, movedAt: now, modified: now };
  await putSure(store, nodeRow(id), META, JSON.stringify(meta));
  if (await cputSure(store, driveRow(user), 'root', null, id)) return id;
  await deleteSure(store, nodeRow(id), META); // another frontend made it first
  const winner = await store.get(driveRow(user), 'root');
  if (winner === null) throw new DriveError(500, 'The drive could not be created; try again.');
  return Buffer.from(winner).toString('utf8');
}

/** The node `id` of `user` (404 for anything else: a bad id, someone else's node, a deleted one). */
export async function ownedNode(store: StoreClient, user: string, id: string | undefined): Promise<Stored> {
  if (!isNodeId(id)) throw gone();
  const m = await readMeta(store, id);
  if (!m || m.value.owner !== user || m.value.deleted) throw gone();
  return m;
}

export async function ownedFolder(store: StoreClient, user: string, id: string | undefined): Promise<Stored> {
  const m = await ownedNode(store, user, id);
  if (m.value.kind !== 'dir') throw new DriveError(400, 'That is a file, not a folder.');
  return m;
}

/** The child named `name` of `folder`, if its entry and its node agree. */
export async function childNamed(store: StoreClient, folder: string, name: string): Promise<Child | null> {
  const e = await getJson<Entry>(store, dirRow(folder), name);
  if (!e) return null;
  const m = await readMeta(store, e.value.id);
  if (!m || m.value.deleted || m.value.parent !== folder || m.value.name !== name) return null;
  return { id: e.value.id, meta: m.value };
}

/** The children of a folder: folders first, then files, each by name. */
export async function listFolder(store: StoreClient, folder: string): Promise<Child[]> {
  const names = (await store.cols(dirRow(folder))).slice(0, MAX_ENTRIES);
  const out: Child[] = [];
  await eachLimited(names, LIST_PARALLEL, async (name) => {
    const c = await childNamed(store, folder, name);
    if (c) out.push(c);
  });
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
  return out.sort((a, b) => (a.meta.kind === b.meta.kind ? collator.compare(a.meta.name, b.meta.name) : a.meta.kind === 'dir' ? -1 : 1));
}

/** The folders from the root down to `id` (the root first, named ''). */
export async function pathOf(store: StoreClient, id: string): Promise<Crumb[]> {
  const out: Crumb[] = [];
  let cur: string | null = id;
  for (let step = 0; cur !== null && step <= MAX_DEPTH * 4; step++) {
    const m = await readMeta(store, cur);
    if (!m) break;
    out.unshift({ id: cur, name: m.value.name });
    cur = m.value.parent;
  }
  return out;
}

/** Refuses a new child in a folder that already has MAX_ENTRIES. */
export async function assertRoom(store: StoreClient, folder: string): Promise<void> {
  if ((await store.cols(dirRow(folder))).length >= MAX_ENTRIES) {
    throw new DriveError(409, `This folder is full (${MAX_ENTRIES.toLocaleString('en')} entries); use a subfolder.`);
  }
}

/** A user-typed name, normalized, or a 400 saying what is wrong with it. */
export function validName(raw: string): string {
  const name = normalizeName(raw);
  const problem = nameProblem(name);
  if (problem) throw new DriveError(400, problem);
  return name;
}

const clash = (name: string): DriveError => new DriveError(409, `There is already a file or folder named “${name}” in that folder. Choose another name.`);

/** True when an entry that does not match its node is old enough to be taken over. */
async function reclaimable(store: StoreClient, folder: string, name: string, e: Entry): Promise<boolean> {
  const old = Date.now() - STALE_ENTRY_MS;
  if (e.at > old) return false;
  const m = await readMeta(store, e.id);
  if (!m) return true;
  const agrees = !m.value.deleted && m.value.parent === folder && m.value.name === name;
  return !agrees && m.value.movedAt <= old;
}

/** Claims `folder`/`name` for node `id` with CPUT: 409 when the name is taken. */
export async function link(store: StoreClient, folder: string, name: string, id: string): Promise<void> {
  const value = JSON.stringify({ id, at: Date.now() } satisfies Entry);
  for (let attempt = 0; attempt < 4; attempt++) {
    if (await cputSure(store, dirRow(folder), name, null, value)) return;
    const cur = await getJson<Entry>(store, dirRow(folder), name);
    if (!cur) continue; // freed meanwhile: try again
    if (cur.value.id === id) return;
    if (!(await reclaimable(store, folder, name, cur.value))) throw clash(name);
    if (await cputSure(store, dirRow(folder), name, cur.raw, value)) return;
  }
  throw clash(name);
}

/** Drops the entry `folder`/`name` if it still points at `id`. */
export async function unlink(store: StoreClient, folder: string, name: string, id: string): Promise<void> {
  const e = await getJson<Entry>(store, dirRow(folder), name);
  if (e?.value.id === id) await deleteSure(store, dirRow(folder), name);
}

/** Creates folder `rawName` in `parent`; returns its id. */
export async function createFolder(store: StoreClient, user: string, parent: string, rawName: string): Promise<string> {
  const name = validName(rawName);
  await ownedFolder(store, user, parent);
  if ((await pathOf(store, parent)).length >= MAX_DEPTH) throw new DriveError(400, `Folders can be nested at most ${MAX_DEPTH} deep.`);
  await assertRoom(store, parent);
  if (await childNamed(store, parent, name)) throw clash(name);
  const id = randomUUID();
  const now = Date.now();
  const meta: NodeMeta = { kind: 'dir', owner: user, name, parent, movedAt: now, modified: now };
  await putSure(store, nodeRow(id), META, JSON.stringify(meta));
  try {
    await link(store, parent, name, id);
  } catch (e) {
    await deleteSure(store, nodeRow(id), META);
    throw e;
  }
  return id;
}

/** True when folder `inner` is `outer` or lies somewhere below it. */
export async function isWithin(store: StoreClient, inner: string, outer: string): Promise<boolean> {
  let cur: string | null = inner;
  for (let step = 0; cur !== null && step <= MAX_DEPTH * 4; step++) {
    if (cur === outer) return true;
    cur = (await readMeta(store, cur))?.value.parent ?? null;
  }
  return false;
}

/**
 * Gives node `id` the name `rawName` in folder `dest` (a rename when `dest` is its folder, a move
 * otherwise). One entry claimed, one meta switched, one entry dropped: nothing below a folder changes.
 */
export async function relink(store: StoreClient, user: string, id: string, dest: string, rawName: string): Promise<void> {
  const node = await ownedNode(store, user, id);
  // Two folder moves at once (X into Y while Y goes into X) could each pass the cycle check before
  // either lands: folder moves of one user take turns. Files and renames cannot make a cycle.
  if (node.value.kind === 'dir' && node.value.parent !== dest) {
    const release = await lockFolderMoves(store, user);
    try {
      return await relinkChecked(store, user, id, dest, rawName, await ownedNode(store, user, id));
    } finally {
      await release();
    }
  }
  return relinkChecked(store, user, id, dest, rawName, node);
}

/** The per-user folder-move lock: `drive:<user>` / `move_lock` = JSON {owner, until} (free when until has passed). */
const MOVE_LOCK = 'move_lock';
const MOVE_LOCK_MS = 15_000;
const MOVE_LOCK_WAIT_MS = 5_000;

async function lockFolderMoves(store: StoreClient, user: string): Promise<() => Promise<void>> {
  const owner = randomUUID();
  const deadline = Date.now() + MOVE_LOCK_WAIT_MS;
  for (let attempt = 0; ; attempt++) {
    const cur = await getJson<{ owner: string | null; until: number }>(store, driveRow(user), MOVE_LOCK);
    if (cur === null || cur.value.until < Date.now()) {
      const mine = JSON.stringify({ owner, until: Date.now() + MOVE_LOCK_MS });
      if (await cputSure(store, driveRow(user), MOVE_LOCK, cur?.raw ?? null, mine)) {
        return async () => {
          await cputSure(store, driveRow(user), MOVE_LOCK, mine, JSON.stringify({ owner: null, until: 0 })).catch(() => false);
        };
      }
    }
    if (Date.now() > deadline) throw new DriveError(409, 'Another folder of yours is being moved right now; try again in a moment.');
    await new Promise((r) => setTimeout(r, Math.min(200, 10 * 2 ** attempt)));
  }
}

async function relinkChecked(store: StoreClient, user: string, id: string, dest: string, rawName: string, node: { raw: Uint8Array; value: NodeMeta }): Promise<void> {
  const from = node.value.parent;
  if (from === null) throw new DriveError(400, 'The top folder of your drive cannot be renamed or moved.');
  const name = validName(rawName);
  await ownedFolder(store, user, dest);
  if (node.value.kind === 'dir' && (await isWithin(store, dest, id))) {
    throw new DriveError(400, 'A folder cannot be moved into itself or into a folder inside it.');
  }
  if (dest === from && name === node.value.name) return;
  if (dest !== from) {
    await assertRoom(store, dest);
    if ((await pathOf(store, dest)).length >= MAX_DEPTH) throw new DriveError(400, `Folders can be nested at most ${MAX_DEPTH} deep.`);
  }
  await link(store, dest, name, id);
  const moved: NodeMeta = { ...node.value, parent: dest, name, movedAt: Date.now() };
  if (!(await cputSure(store, nodeRow(id), META, node.raw, JSON.stringify(moved)))) {
    await unlink(store, dest, name, id);
    throw new DriveError(409, 'It was changed by someone else at the same time; look again and retry.');
  }
  await unlink(store, from, node.value.name, id);
}

/** What a folder holds (for the confirmation before deleting it); counting stops at `limit` nodes. */
export async function countTree(store: StoreClient, folder: string, limit = 5000): Promise<{ folders: number; files: number; bytes: number; more: boolean }> {
  const out = { folders: 0, files: 0, bytes: 0, more: false };
  const queue = [folder];
  while (queue.length > 0) {
    for (const c of await listFolder(store, queue.shift()!)) {
      if (out.folders + out.files >= limit) return { ...out, more: true };
      if (c.meta.kind === 'dir') {
        out.folders++;
        queue.push(c.id);
      } else {
        out.files++;
        out.bytes += c.meta.size ?? 0;
      }
    }
  }
  return out;
}

/** Every folder of the drive (for the move picker), depth first, at most `limit`; `ids` runs from the root to it. */
export async function allFolders(store: StoreClient, root: string, limit = 2000): Promise<Array<{ id: string; path: string[]; ids: string[] }>> {
  const out: Array<{ id: string; path: string[]; ids: string[] }> = [];
  const walk = async (id: string, path: string[], ids: string[]): Promise<void> => {
    if (out.length >= limit || path.length > MAX_DEPTH) return;
    out.push({ id, path, ids: [...ids, id] });
    for (const c of await listFolder(store, id)) if (c.meta.kind === 'dir') await walk(c.id, [...path, c.meta.name], [...ids, id]);
  };
  await walk(root, [], []);
  return out;
}
