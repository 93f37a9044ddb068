// The drive's pages and endpoints under /drive: folders, streamed uploads and downloads, new folder,
// rename, move and delete. The model lives in web/drive/ (docs/drive.md); this file only turns
// requests into calls of it and its answers (or DriveErrors) into pages, redirects and JSON.
import { Hono, type Context } from 'hono';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import type { WebDeps, WebEnv } from '../context.js';
import { fileResponse } from '../drive/download.js';
import { DriveError } from '../drive/errors.js';
import { fileParts, UploadAborted } from '../drive/multipart.js';
import { uploadName } from '../drive/names.js';
import { PendingLog } from '../drive/pending.js';
import { usage } from '../drive/quota.js';
import { deleteNode } from '../drive/remove.js';
import { startSweeper } from '../drive/sweeper.js';
import { allFolders, countTree, createFolder, listFolder, ownedFolder, ownedNode, pathOf, relink, rootId } from '../drive/tree.js';
import { overQuota, storeUpload, type UploadTarget } from '../drive/upload.js';
import { handle, HttpError, json, page, raw, redirect, type Outcome } from '../http.js';
import { currentUser as me, formFields, mustLogIn } from '../middleware.js';
import { DeletePage, DrivePage, MovePage, RenamePage } from '../views/drive.js';

const folderUrl = (id: string): string => `/drive/f/${id}`;

const idParam = (c: Context<WebEnv>): string => c.req.param('id') ?? '';
const wantsJson = (c: Context<WebEnv>): boolean => (c.req.header('accept') ?? '').includes('application/json');

/** Like `handle`, with the model's refusals shown as error pages (or `{error}` to scripts). */
function handleDrive(fn: (c: Context<WebEnv>) => Promise<Outcome>) {
  return handle(async (c) => {
    try {
      return await fn(c);
    } catch (e) {
      if (e instanceof DriveError) throw new HttpError(e.status, e.message, '/drive');
      throw e;
    }
  });
}

/**
 * Runs a change; when the model refuses it (anything but 404), shows `again(error)` (the form with the
 * problem) instead, else goes to `done`.
 */
async function changeOrShow(change: () => Promise<unknown>, again: (e: DriveError) => Promise<Outcome>, done: string): Promise<Outcome> {
  try {
    await change();
  } catch (e) {
    if (e instanceof DriveError && e.status !== 404) return again(e);
    throw e;
  }
  return redirect(done);
}

/** Reads the rest of a file part and drops it. */
async function drain(s: Readable): Promise<void> {
  if (s.readableEnded || s.destroyed) return;
  s.resume();
  await once(s, 'end');
}

export function driveRoutes(deps: WebDeps): Hono<WebEnv> {
  const { store, topo } = deps;
  const quota = topo.web.driveQuotaBytes;
  const pending = new PendingLog(store, deps.node);
  startSweeper(store, topo, pending, deps.log);
  const app = new Hono<WebEnv>();
  app.use('*', mustLogIn());

  /** The folder page, optionally with a problem to show (then with that status). */
  /** What a folder page shows: its path from the root, its children, and the user's usage. */
  async function folderData(c: Context<WebEnv>, folder: string) {
    const user = me(c);
    await ownedFolder(store, user.name, folder);
    const [path, children, used] = await Promise.all([pathOf(store, folder), listFolder(store, folder), usage(store, user.name)]);
    return { path, children, used };
  }

  async function folderPage(c: Context<WebEnv>, folder: string, error?: DriveError, typed?: string): Promise<Outcome> {
    const { path, children, used } = await folderData(c, folder);
    const title = path.length > 1 ? `${path[path.length - 1]!.name} · Drive` : 'Drive';
    const body = <DrivePage csrf={c.get('csrf')} folder={folder} path={path} entries={children} used={used} quota={quota} error={error?.message} name={typed} />;
    return page(title, body, error?.status);
  }

  async function listing(c: Context<WebEnv>, folder: string): Promise<Outcome> {
    const { path, children, used } = await folderData(c, folder);
    return json({
      folder,
      path,
      usage: used,
      quota,
      entries: children.map((ch) => ({ id: ch.id, kind: ch.meta.kind, name: ch.meta.name, size: ch.meta.size ?? null, modified: ch.meta.modified })),
    });
  }

  const show = (c: Context<WebEnv>, folder: string): Promise<Outcome> => (c.req.query('format') === 'json' ? listing(c, folder) : folderPage(c, folder));

  app.get('/', handleDrive(async (c) => show(c, await rootId(store, me(c).name))));
  app.get('/f/:id', handleDrive(async (c) => show(c, idParam(c))));

  app.post(
    '/mkdir',
    handleDrive(async (c) => {
      const f = await formFields(c, ['folder', 'name']);
      return changeOrShow(() => createFolder(store, me(c).name, f.folder, f.name), (e) => folderPage(c, f.folder, e, f.name), folderUrl(f.folder));
    }),
  );

  app.post(
    '/upload',
    handleDrive(async (c) => {
      const user = me(c);
      const folder = c.req.query('folder') ?? '';
      await ownedFolder(store, user.name, folder);
      // Refuse at once what cannot fit (the body is a little larger than its files).
      const declared = Number(c.req.header('content-length') ?? '0');
      if (declared - (64 << 10) > quota - (await usage(store, user.name))) throw overQuota(quota);
      const target: UploadTarget = { store, user: user.name, quota, pending };
      const results: Array<{ name: string; id?: string; size?: number; error?: string }> = [];
      try {
        for await (const part of fileParts(c.env.incoming)) {
          const name = uploadName(part.filename);
          if (name === null) {
            await drain(part.stream);
            if (part.filename !== '') results.push({ name: part.filename, error: 'This file name cannot be used.' });
            continue;
          }
          try {
            const r = await storeUpload(target, folder, name, part.stream);
            results.push({ name, id: r.id, size: r.size });
          } catch (e) {
            if (!(e instanceof DriveError) || e.status !== 409) throw e;
            results.push({ name, error: e.message });
            await drain(part.stream);
          }
        }
      } catch (e) {
        if (e instanceof UploadAborted) {
          deps.log.info({ user: user.name, why: e.message }, 'upload broken off');
          throw new HttpError(400, 'The upload was broken off; nothing of the unfinished file was kept.');
        }
        throw e;
      }
      const failed = results.filter((r) => r.error);
      if (results.length === 0) {
        const none = new DriveError(400, 'There was no file in the upload (or its name could not be used). Choose one or more files first.');
        return wantsJson(c) ? json({ files: [], error: none.message }, 400) : folderPage(c, folder, none);
      }
      if (wantsJson(c)) return json({ files: results }, failed.length > 0 ? 409 : 200);
      if (failed.length > 0) return folderPage(c, folder, new DriveError(409, failed.map((r) => `${r.name}: ${r.error}`).join(' ')));
      return redirect(folderUrl(folder));
    }),
  );

  app.get(
    '/file/:id',
    handleDrive(async (c) => {
      const id = idParam(c);
      const node = await ownedNode(store, me(c).name, id);
      if (node.value.kind !== 'file') return redirect(folderUrl(id));
      return raw(fileResponse(store, id, node.value, { range: c.req.header('range'), ifRange: c.req.header('if-range'), inline: c.req.query('inline') === '1' }));
    }),
  );

  /** The node a rename/move/delete acts on (never the top folder). */
  async function changeable(c: Context<WebEnv>, id: string) {
    const node = await ownedNode(store, me(c).name, id);
    if (node.value.parent === null) throw new DriveError(400, 'The top folder of your drive cannot be renamed, moved or deleted.');
    return { meta: node.value, parent: node.value.parent };
  }

  /** The same, with the path of its folder, for a page (the walk up costs a read per level). */
  async function target(c: Context<WebEnv>, id: string) {
    const t = await changeable(c, id);
    return { ...t, path: await pathOf(store, t.parent) };
  }

  async function renamePage(c: Context<WebEnv>, id: string, error?: DriveError, typed?: string): Promise<Outcome> {
    const t = await target(c, id);
    return page('Rename', <RenamePage csrf={c.get('csrf')} id={id} kind={t.meta.kind} name={t.meta.name} path={t.path} value={typed} error={error?.message} />, error?.status);
  }

  app.get('/rename/:id', handleDrive((c) => renamePage(c, idParam(c))));
  app.post(
    '/rename',
    handleDrive(async (c) => {
      const f = await formFields(c, ['id', 'name']);
      const t = await changeable(c, f.id);
      return changeOrShow(() => relink(store, me(c).name, f.id, t.parent, f.name), (e) => renamePage(c, f.id, e, f.name), folderUrl(t.parent));
    }),
  );

  async function movePage(c: Context<WebEnv>, id: string, error?: DriveError): Promise<Outcome> {
    const t = await target(c, id);
    const folders = await allFolders(store, await rootId(store, me(c).name));
    const choices = folders.map((f) => ({ id: f.id, path: f.path, disabled: f.id === t.parent || (t.meta.kind === 'dir' && f.ids.includes(id)) }));
    return page('Move', <MovePage csrf={c.get('csrf')} id={id} name={t.meta.name} path={t.path} choices={choices} error={error?.message} />, error?.status);
  }

  app.get('/move/:id', handleDrive((c) => movePage(c, idParam(c))));
  app.post(
    '/move',
    handleDrive(async (c) => {
      const f = await formFields(c, ['id', 'dest']);
      const t = await changeable(c, f.id);
      return changeOrShow(() => relink(store, me(c).name, f.id, f.dest, t.meta.name), (e) => movePage(c, f.id, e), folderUrl(t.parent));
    }),
  );

  async function deletePage(c: Context<WebEnv>, id: string): Promise<Outcome> {
    const t = await target(c, id);
    const inside = t.meta.kind === 'dir' ? await countTree(store, id) : undefined;
    return page('Delete', <DeletePage csrf={c.get('csrf')} id={id} kind={t.meta.kind} name={t.meta.name} path={t.path} inside={inside} />);
  }

  app.get('/delete/:id', handleDrive((c) => deletePage(c, idParam(c))));
  app.post(
    '/delete',
    handleDrive(async (c) => {
      const f = await formFields(c, ['id', 'confirmed']);
      if (f.confirmed !== '1') return deletePage(c, f.id);
      const t = await changeable(c, f.id);
      await deleteNode(store, me(c).name, f.id, pending);
      return redirect(folderUrl(t.parent));
    }),
  );

  return app;
}
