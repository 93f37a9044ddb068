// The record of work a frontend has started in the store and must finish or undo: running uploads
// (whose chunks are not yet reachable from any folder) and deletes of whole trees. One row per frontend,
// one cell per piece of work; if the frontend dies, the sweeper (sweeper.ts) finds the cell and
// finishes the job. `boot` tells this run of the frontend from earlier ones.
import { randomUUID } from 'node:crypto';
import type { StoreClient } from '../../actors/session.js';
import { DriveError } from './errors.js';
import { pendingRow, type Pending } from './rows.js';
import { deleteSure, putSure, updateJson } from '../../actors/store-writes.js';

type Work = { kind: 'upload'; user: string; reserved: number; chunkSize: number } | { kind: 'delete'; user: string };

export class PendingLog {
  readonly boot = randomUUID();

  constructor(
    private readonly store: StoreClient,
    readonly node: string,
  ) {}

  get row(): string {
    return pendingRow(this.node);
  }

  async begin(id: string, work: Work): Promise<void> {
    await putSure(this.store, this.row, id, JSON.stringify({ ...work, boot: this.boot, at: Date.now() } as Pending));
  }

  /**
   * Records a larger reservation and that the upload is alive. Fails (and the upload must stop) when a
   * sweeper has taken the record over, which happens only to an upload silent for STALE_PENDING_MS.
   */
  async touchUpload(id: string, reserved: number): Promise<void> {
    await updateJson<Pending>(this.store, this.row, id, (old) => {
      if (!old || old.sweeper || old.kind !== 'upload') throw new DriveError(500, 'The upload was idle for too long and was abandoned; please upload again.');
      return { ...old, reserved, at: Date.now() };
    });
  }

  async end(id: string): Promise<void> {
    await deleteSure(this.store, this.row, id);
  }
}
