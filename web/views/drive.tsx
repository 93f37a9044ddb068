// Pages of the drive: a folder (path bar, usage, upload with progress, new folder, the listing with
// rename / move / delete), and the small pages for rename, move (pick a folder) and delete (confirm).
import type { Child as JsxChild } from 'hono/jsx';
import { DRIVE_JS } from '../drive/client.js';
import { typeLabel } from '../drive/mime.js';
import { MAX_NAME_BYTES } from '../drive/names.js';
import { formatBytes } from '../drive/quota.js';
import type { Child, Crumb } from '../drive/tree.js';
import { Csrf, Flash } from './layout.js';

const folderUrl = (id: string): string => `/drive/f/${id}`;
const crumbName = (c: Crumb): string => c.name || 'My drive';

function PathBar(props: { path: Crumb[]; linkLast?: boolean }) {
  return (
    <nav class="crumbs" aria-label="Folder path">
      {props.path.map((c, i) => {
        const last = i === props.path.length - 1;
        return (
          <>
            {i > 0 && <span class="sep">/</span>}
            {last && !props.linkLast ? <strong>{crumbName(c)}</strong> : <a href={folderUrl(c.id)}>{crumbName(c)}</a>}
          </>
        );
      })}
    </nav>
  );
}

function Usage(props: { used: number; quota: number }) {
  const pct = Math.min(100, Math.round((props.used / props.quota) * 100));
  return (
    <div class="usage" title={`${pct}% of your space is used`}>
      <progress max={props.quota} value={Math.min(props.used, props.quota)} />
      <span>
        {formatBytes(props.used)} of {formatBytes(props.quota)} used
      </span>
    </div>
  );
}

function Modified(props: { ms: number }) {
  const d = new Date(props.ms);
  return <time datetime={d.toISOString()}>{d.toISOString().slice(0, 16).replace('T', ' ')} UTC</time>;
}

function Row(props: { c: Child; csrf: string }) {
  const { c, csrf } = props;
  const m = c.meta;
  const dir = m.kind === 'dir';
  const confirm = dir ? `Delete the folder “${m.name}” and everything in it?` : `Delete “${m.name}”?`;
  return (
    <tr data-id={c.id} data-kind={m.kind}>
      <td class="name">
        <span class={dir ? 'icon folder' : 'icon file'} aria-hidden="true" />
        {dir ? <a href={folderUrl(c.id)}>{m.name}</a> : <a href={`/drive/file/${c.id}`}>{m.name}</a>}
      </td>
      <td class="size">{dir ? '—' : formatBytes(m.size ?? 0)}</td>
      <td class="type">{dir ? 'Folder' : typeLabel(m.name)}</td>
      <td class="modified">
        <Modified ms={m.modified} />
      </td>
      <td class="row-actions">
        <a href={`/drive/rename/${c.id}`}>Rename</a>
        <a href={`/drive/move/${c.id}`}>Move</a>
        <form class="inline" method="post" action="/drive/delete" data-confirm={confirm}>
          <Csrf token={csrf} />
          <input type="hidden" name="id" value={c.id} />
          <button class="link danger" type="submit">
            Delete
          </button>
        </form>
      </td>
    </tr>
  );
}

export function DrivePage(props: { csrf: string; folder: string; path: Crumb[]; entries: Child[]; used: number; quota: number; error?: string | undefined; name?: string }) {
  const { csrf, folder } = props;
  const uploadAction = `/drive/upload?folder=${folder}&_csrf=${encodeURIComponent(csrf)}`;
  return (
    <div class="drive">
      <div class="drive-head">
        <PathBar path={props.path} />
        <Usage used={props.used} quota={props.quota} />
      </div>
      <Flash error={props.error} />
      <div class="card drive-tools">
        <form id="upload-form" class="upload" method="post" action={uploadAction} enctype="multipart/form-data" data-done={folderUrl(folder)}>
          <input id="upload-files" type="file" name="file" multiple aria-label="Files to upload" />
          <button type="submit">Upload</button>
        </form>
        <form class="mkdir" method="post" action="/drive/mkdir">
          <Csrf token={csrf} />
          <input type="hidden" name="folder" value={folder} />
          <input type="text" name="name" placeholder="New folder name" aria-label="New folder name" required value={props.name ?? ''} />
          <button class="secondary" type="submit">
            New folder
          </button>
        </form>
        <ul id="upload-progress" class="uploads" aria-live="polite" />
      </div>
      <div class="card drive-list">
        {props.entries.length === 0 ? (
          <p class="muted empty">This folder is empty. Upload files or make a folder.</p>
        ) : (
          <table class="list">
            <thead>
              <tr>
                <th>Name</th>
                <th>Size</th>
                <th>Type</th>
                <th>Modified</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {props.entries.map((c) => (
                <Row c={c} csrf={csrf} />
              ))}
            </tbody>
          </table>
        )}
      </div>
      <script dangerouslySetInnerHTML={{ __html: DRIVE_JS }} />
    </div>
  );
}

function SmallPage(props: { title: string; path: Crumb[]; error?: string | undefined; children?: JsxChild }) {
  return (
    <div class="drive">
      <div class="drive-head">
        <PathBar path={props.path} linkLast />
      </div>
      <div class="card narrow">
        <h1>{props.title}</h1>
        <Flash error={props.error} />
        {props.children}
      </div>
    </div>
  );
}

/** The submit button of a small page's form, and Cancel back to the folder it came from. */
function FormActions(props: { label: string; path: Crumb[]; danger?: boolean; disabled?: boolean }) {
  const parent = props.path[props.path.length - 1];
  return (
    <div class="actions">
      <button class={props.danger ? 'danger' : undefined} type="submit" disabled={props.disabled}>
        {props.label}
      </button>
      {parent && (
        <a class="button secondary" href={folderUrl(parent.id)}>
          Cancel
        </a>
      )}
    </div>
  );
}

export function RenamePage(props: { csrf: string; id: string; kind: 'dir' | 'file'; name: string; path: Crumb[]; value?: string; error?: string | undefined }) {
  return (
    <SmallPage title={`Rename ${props.kind === 'dir' ? 'folder' : 'file'}`} path={props.path} error={props.error}>
      <p class="muted">
        Current name: <strong>{props.name}</strong>
      </p>
      <form method="post" action="/drive/rename">
        <Csrf token={props.csrf} />
        <input type="hidden" name="id" value={props.id} />
        <label for="name">New name</label>
        <input id="name" type="text" name="name" required value={props.value ?? props.name} autofocus />
        <div class="hint">Up to {MAX_NAME_BYTES} bytes; no '/' and no line breaks.</div>
        <FormActions label="Rename" path={props.path} />
      </form>
    </SmallPage>
  );
}

export interface FolderChoice {
  id: string;
  path: string[];
  /** Not a valid destination (the item itself, a folder inside it, or where it already is). */
  disabled: boolean;
}

export function MovePage(props: { csrf: string; id: string; name: string; path: Crumb[]; choices: FolderChoice[]; error?: string | undefined }) {
  const firstFree = props.choices.find((c) => !c.disabled);
  return (
    <SmallPage title={`Move “${props.name}”`} path={props.path} error={props.error}>
      <form method="post" action="/drive/move">
        <Csrf token={props.csrf} />
        <input type="hidden" name="id" value={props.id} />
        <label for="dest">Move to</label>
        <select id="dest" name="dest" size={Math.min(12, Math.max(4, props.choices.length))} required>
          {props.choices.map((c) => (
            <option value={c.id} disabled={c.disabled} selected={c === firstFree}>
              {'\u00a0\u00a0'.repeat(c.path.length)}
              {c.path.length === 0 ? 'My drive' : c.path[c.path.length - 1]}
            </option>
          ))}
        </select>
        <div class="hint">Greyed-out folders are where it is now, or inside the folder being moved.</div>
        <FormActions label="Move" path={props.path} disabled={!firstFree} />
      </form>
    </SmallPage>
  );
}

export function DeletePage(props: { csrf: string; id: string; kind: 'dir' | 'file'; name: string; path: Crumb[]; inside?: { folders: number; files: number; bytes: number; more: boolean } }) {
  const n = props.inside;
  return (
    <SmallPage title={props.kind === 'dir' ? 'Delete folder' : 'Delete file'} path={props.path}>
      <p>
        Delete <strong>{props.name}</strong>
        {n && (n.folders > 0 || n.files > 0) ? (
          <>
            {' '}
            and everything in it ({n.more ? 'more than ' : ''}
            {n.folders} folder{n.folders === 1 ? '' : 's'}, {n.files} file{n.files === 1 ? '' : 's'}, {formatBytes(n.bytes)})
          </>
        ) : null}
        ? This cannot be undone.
      </p>
      <form method="post" action="/drive/delete">
        <Csrf token={props.csrf} />
        <input type="hidden" name="id" value={props.id} />
        <input type="hidden" name="confirmed" value="1" />
        <FormActions label="Delete" path={props.path} danger />
      </form>
    </SmallPage>
  );
}
