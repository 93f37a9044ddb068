// Where the drive keeps things in the store (documented in docs/drive.md), and the shapes of its cells.
//
//   drive:<user>          root      id of the user's root folder (created once, with CPUT)
//                         usage     bytes in use, reservations of running uploads included (CPUT loops)
//                         move_lock JSON {owner, until}: folder moves of one user take turns (tree.ts)
//   dnode:<id>            meta      JSON NodeMeta: the truth about a file or folder (name, parent, size…)
//   dir:<folderId>        <name>    JSON Entry {id, at}: one cell per child, claimed with CPUT(null)
//   chunk:<fileId>:<i>    d         bytes i*chunkSize … of the file (a row per chunk spreads a file over tablets)
//   drive-pending:<node>  <id>      JSON Pending: an upload or a delete frontend <node> is working on

/** File contents are split into cells of this size. */
export const CHUNK_SIZE = 1 << 20;

export interface NodeMeta {
  kind: 'dir' | 'file';
  owner: string;
  /** Name in the parent folder ('' for the root). */
  name: string;
  /** The folder holding it (null for the root). */
  parent: string | null;
  /** When name or parent last changed (ms): entries that disagree are left alone this long (STALE_ENTRY_MS). */
  movedAt: number;
  /** Last change of the contents or name (ms since the epoch). */
  modified: number;
  /** Set (with CPUT) by whoever deletes the node; its cells are being removed. */
  deleted?: true;
  // files only:
  size?: number;
  chunks?: number;
  chunkSize?: number;
}

/** A folder's child: the cell `dir:<folder>` / `<name>`. */
export interface Entry {
  id: string;
  /** When it was written (ms). */
  at: number;
}

/** Work a frontend has started and must finish or undo; found and finished by the sweeper if it dies. */
export type Pending =
  | { kind: 'upload'; user: string; boot: string; at: number; reserved: number; chunkSize: number; sweeper?: string }
  | { kind: 'delete'; user: string; boot: string; at: number; sweeper?: string };

export const driveRow = (user: string): string => `drive:${user}`;
export const nodeRow = (id: string): string => `dnode:${id}`;
export const dirRow = (folder: string): string => `dir:${folder}`;
export const chunkRow = (file: string, index: number): string => `chunk:${file}:${index}`;
export const pendingRow = (frontend: string): string => `drive-pending:${frontend}`;
export const META = 'meta';
export const CHUNK_COL = 'd';

/** Node ids are uuids; anything else in a URL is refused before it reaches the store. */
export function isNodeId(s: string | undefined): s is string {
  return typeof s === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(s);
}
