// The mailbox model in the store (rows and columns documented in docs/mail.md):
//   row `mbox:<user>:<folder>`, one column per message named by its id (ids sort newest first),
//       value: the MessageSummary JSON; for a message of at most INLINE_MAX_BYTES, followed by a
//       newline and the raw message itself. `cols()` of this row is the folder's index.
//   row `msg:<user>:<id>`, columns `raw0000`, `raw0001`, ...: the raw RFC 5322 bytes of a larger
//       message, in 1 MiB cells.
// A small message is one write (summary and bytes in one cell); a larger one writes its raw cells first
// and the index column last. Either way a listed message is always complete, and each message has its
// own column, so concurrent deliveries to one mailbox never collide.
import { simpleParser, type ParsedMail } from 'mailparser';
import type { StoreClient } from '../actors/session.js';
import { deleteChunks, readChunks, writeChunks } from './chunks.js';
import { cputSure } from '../actors/store-writes.js';
import { isMessageId, newMessageId } from './ids.js';
import { summarize, type Folder, type MessageSummary } from './summary.js';

export const indexRow = (user: string, folder: Folder): string => `mbox:${user}:${folder}`;
export const messageRow = (user: string, id: string): string => `msg:${user}:${id}`;
const RAW = 'raw';

/** Messages per mailbox page. */
export const PAGE_SIZE = 50;

/** Options of mailparser: bounded work on hostile input; no text-to-HTML conversion (nothing shows textAsHtml, and its linkify pass was a quarter of the parse). */
export const PARSE_OPTIONS = { skipImageLinks: true, skipTextToHtml: true, skipTextLinks: true, maxHtmlLengthToParse: 5 * 1024 * 1024 } as const;

export async function parseMessage(raw: Buffer): Promise<ParsedMail> {
  return simpleParser(raw, PARSE_OPTIONS);
}

/**
 * Messages up to this size live inline, in their index cell after the summary: a delivery is then one
 * replicated write instead of two in sequence (SMTP ingress 420 -> 650 msg/s for 10 KiB messages), and
 * delete is one. The price: a page of the folder reads up to PAGE_SIZE x this many bytes.
 */
export const INLINE_MAX_BYTES = 32 * 1024;
/** Ends the summary in an index cell (JSON.stringify never writes a raw newline). */
const NEWLINE = 0x0a;

/** An index cell: the summary JSON, and for an inline message a newline and the raw bytes. */
export function encodeEntry(summary: MessageSummary, raw: Buffer | null): Buffer {
  const json = Buffer.from(JSON.stringify(summary), 'utf8');
  return raw === null ? json : Buffer.concat([json, Buffer.of(NEWLINE), raw]);
}

export function decodeEntry(v: Uint8Array): { summary: MessageSummary; raw: Buffer | null } {
  const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  const end = b.indexOf(NEWLINE);
  const summary = JSON.parse(b.toString('utf8', 0, end < 0 ? b.length : end)) as MessageSummary;
  return { summary, raw: end < 0 ? null : b.subarray(end + 1) };
}

/**
 * The index cell each summary was read from, kept while the summary is: opening a message reads its
 * cell once (findMessage), and readRaw (inline bytes) and markRead (the CPUT's expected value) use it
 * instead of reading it again.
 */
const cellOf = new WeakMap<MessageSummary, Uint8Array>();

const decode = (v: Uint8Array): MessageSummary => {
  const summary = decodeEntry(v).summary;
  cellOf.set(summary, v);
  return summary;
};

/** The index cell of `s`: the one it was read from, else read now (null: the message is gone). */
async function indexCell(store: StoreClient, user: string, s: MessageSummary): Promise<Uint8Array | null> {
  return cellOf.get(s) ?? (await store.get(indexRow(user, s.folder), s.id));
}

/**
 * Stores `raw` in `user`'s `folder` and returns its summary. Resolves only once every cell is durably
 * stored (the store acknowledges a put after its replicas logged it).
 */
export async function storeMessage(
  store: StoreClient,
  user: string,
  folder: Folder,
  raw: Buffer,
  o: { parsed?: ParsedMail | Promise<ParsedMail>; read?: boolean; now?: number } = {},
): Promise<MessageSummary> {
  const arrived = o.now ?? Date.now();
  const id = newMessageId(arrived);
  const inline = raw.length <= INLINE_MAX_BYTES;
  // The raw cells need no parsing: write them while the message is parsed.
  const [parsed, chunks] = await Promise.all([o.parsed ?? parseMessage(raw), inline ? 0 : writeChunks(store, messageRow(user, id), RAW, raw)]);
  const summary = summarize(parsed, { id, folder, arrived, size: raw.length, chunks, read: o.read ?? false, inline });
  // The id is fresh (time + random): a CPUT on an absent column never overwrites another message.
  if (!(await cputSure(store, indexRow(user, folder), id, null, encodeEntry(summary, inline ? raw : null)))) throw new Error(`message id ${id} collided`);
  return summary;
}

export interface MailboxPage {
  items: MessageSummary[];
  total: number;
  page: number;
  pages: number;
}

/** One page of a folder, newest first: one `cols` of the index and PAGE_SIZE reads of its cells (an inline message's bytes included). */
export async function listFolder(store: StoreClient, user: string, folder: Folder, page: number, perPage = PAGE_SIZE): Promise<MailboxPage> {
  const row = indexRow(user, folder);
  const ids = (await store.cols(row)).filter((c) => isMessageId(c));
  const pages = Math.max(1, Math.ceil(ids.length / perPage));
  const p = Math.min(Math.max(1, Math.floor(page) || 1), pages);
  const slice = ids.slice((p - 1) * perPage, p * perPage);
  const cells = await Promise.all(slice.map((id) => store.get(row, id)));
  const items = cells.filter((v): v is Uint8Array => v !== null).map(decode);
  return { items, total: ids.length, page: p, pages };
}

/** The summary of a message, looked up in the folders (inbox first). */
export async function findMessage(store: StoreClient, user: string, id: string, folders: readonly Folder[] = ['inbox', 'sent']): Promise<MessageSummary | null> {
  if (!isMessageId(id)) return null;
  for (const f of folders) {
    const v = await store.get(indexRow(user, f), id);
    if (v !== null) return decode(v);
  }
  return null;
}

/** The raw bytes of a message; null when it is gone. */
export async function readRaw(store: StoreClient, user: string, s: MessageSummary): Promise<Buffer | null> {
  if (!s.inline) return readChunks(store, messageRow(user, s.id), RAW, s.chunks);
  const cell = await indexCell(store, user, s);
  return cell === null ? null : decodeEntry(cell).raw;
}

/** Marks a message read (CPUT against the cell as read: a concurrent delete or change is not undone). */
export async function markRead(store: StoreClient, user: string, s: MessageSummary): Promise<void> {
  if (s.read) return;
  const cur = await indexCell(store, user, s);
  if (cur === null) return;
  const now = decodeEntry(cur);
  if (now.summary.read) return;
  await store.cput(indexRow(user, s.folder), s.id, cur, encodeEntry({ ...now.summary, read: true }, now.raw));
}

/** Deletes a message: the index column first (it disappears at once), then its cells. */
export async function deleteMessage(store: StoreClient, user: string, s: MessageSummary): Promise<boolean> {
  const existed = await store.delete(indexRow(user, s.folder), s.id);
  if (!s.inline) await deleteChunks(store, messageRow(user, s.id), RAW, s.chunks);
  return existed;
}
