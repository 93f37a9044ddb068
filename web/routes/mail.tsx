// The webmail at /mail: folders (paged), a message, its attachments and source, delete, and compose /
// reply / forward with attachments. Mail to local users lands in their inbox at once; mail to other
// domains goes through the outbound queue (mail/sender.ts on the SMTP nodes).
import { Hono, type Context } from 'hono';
import type { ParsedMail } from 'mailparser';
import { parseAddressList, isLocalDomain, localUser } from '../../mail/addresses.js';
import { buildMessage, type OutgoingAttachment } from '../../mail/compose.js';
import { FormError, readComposeForm, type ComposeForm } from '../../mail/compose-form.js';
import { isMessageId } from '../../mail/ids.js';
import { deleteMessage, findMessage, listFolder, markRead, parseMessage, readRaw } from '../../mail/mailbox.js';
import { messageView } from '../../mail/render.js';
import { cleanMessageId, cleanReferences, EMPTY_PREFILL, forwardPrefill, replyPrefill, type Prefill } from '../../mail/reply.js';
import { submit } from '../../mail/submit.js';
import { attachmentName, FOLDERS, type Folder, type MessageSummary } from '../../mail/summary.js';
import { accountExists } from '../accounts.js';
import type { WebEnv } from '../context.js';
import { handle, HttpError, page, raw, redirect } from '../http.js';
import { currentUser as me, defaultHeaders, mustLogIn } from '../middleware.js';
import { ComposePage, type ComposeLimits } from '../views/mail-compose.js';
import { FolderPage } from '../views/mail-list.js';
import { MessagePage } from '../views/mail-message.js';

/** Mail pages run no scripts; images only from us or embedded; frames only our own srcdoc. */
const CSP = "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/** Downloads are never run or rendered as part of our origin. */
const DOWNLOAD_CSP = "sandbox; default-src 'none'";

const MAX_FILES = 20;
/** Fixed messages a redirect can ask a page to show (never text from the request). */
const NOTES: Record<string, string> = { sent: 'Your message was sent.', deleted: 'The message was deleted.' };

const note = (key: string | undefined): string | undefined => (key !== undefined && Object.hasOwn(NOTES, key) ? NOTES[key] : undefined);

function composeLimits(c: Context<WebEnv>): ComposeLimits {
  // Attachments grow by a third in base64: keep the finished message under the SMTP size limit.
  return { maxAttachBytes: Math.floor((c.get('deps').topo.mail.maxMessageBytes * 7) / 10), maxFiles: MAX_FILES };
}

async function theMessage(c: Context<WebEnv>): Promise<MessageSummary> {
  const id = c.req.param('id') ?? '';
  const s = isMessageId(id) ? await findMessage(c.get('deps').store, me(c).name, id) : null;
  if (!s) throw new HttpError(404, 'There is no such message (it may have been deleted).', '/mail/inbox');
  return s;
}

async function parsedOf(c: Context<WebEnv>, s: MessageSummary): Promise<{ raw: Buffer; parsed: ParsedMail }> {
  const bytes = await readRaw(c.get('deps').store, me(c).name, s);
  if (!bytes) throw new HttpError(404, 'This message was deleted meanwhile.', '/mail/inbox');
  return { raw: bytes, parsed: await parseMessage(bytes) };
}

/** `attachment; filename="ascii"; filename*=UTF-8''...`: no quotes, slashes or control characters. */
export function contentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]/g, '_').replace(/["\\/;%]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name).replace(/['()*]/g, (ch) => '%' + ch.charCodeAt(0).toString(16).toUpperCase())}`;
}

const SAFE_TYPE = /^[a-z0-9!#$&^_.+-]{1,64}\/[a-z0-9!#$&^_.+-]{1,64}$/i;

function download(body: Buffer, name: string, type: string): Response {
  return new Response(new Uint8Array(body) as Uint8Array<ArrayBuffer>, {
    headers: {
      'content-type': SAFE_TYPE.test(type) ? type : 'application/octet-stream',
      'content-disposition': contentDisposition(name),
      'content-length': String(body.length),
      'content-security-policy': DOWNLOAD_CSP,
      'x-content-type-options': 'nosniff',
      'cache-control': 'private, no-store',
    },
  });
}

export function mailRoutes(): Hono<WebEnv> {
  const app = new Hono<WebEnv>();
  app.use('*', mustLogIn());
  app.use('*', defaultHeaders({ 'content-security-policy': CSP }));

  app.get('/', (c) => c.redirect('/mail/inbox', 303));

  app.get(
    '/compose',
    handle(async (c) => {
      const user = me(c);
      const domain = c.get('deps').topo.cluster.mailDomain;
      let prefill: Prefill = { ...EMPTY_PREFILL, to: (c.req.query('to') ?? '').slice(0, 1000) };
      const replyTo = c.req.query('reply');
      const forward = c.req.query('forward');
      if (replyTo !== undefined || forward !== undefined) {
        const id = replyTo ?? forward ?? '';
        const s = isMessageId(id) ? await findMessage(c.get('deps').store, user.name, id) : null;
        if (!s) throw new HttpError(404, 'There is no such message (it may have been deleted).', '/mail/inbox');
        const { parsed } = await parsedOf(c, s);
        prefill = replyTo !== undefined ? replyPrefill(parsed, `${user.name}@${domain}`, c.req.query('all') === '1') : forwardPrefill(parsed, s.id);
      }
      return page('Compose', <ComposePage csrf={c.get('csrf')} domain={domain} prefill={prefill} limits={composeLimits(c)} />);
    }),
  );

  app.post(
    '/send',
    handle(async (c) => {
      const user = me(c);
      const { store, topo } = c.get('deps');
      const domain = topo.cluster.mailDomain;
      const limits = composeLimits(c);
      let form: ComposeForm;
      try {
        form = await readComposeForm(c.env.incoming, { totalBytes: limits.maxAttachBytes, files: limits.maxFiles, fields: 20, fieldBytes: 1 << 20 });
      } catch (e) {
        if (e instanceof FormError) throw new HttpError(e.status, e.message, '/mail/compose');
        throw e;
      }
      const f = (name: string): string => form.fields.get(name) ?? '';
      const prefill: Prefill = {
        to: f('to'),
        cc: f('cc'),
        subject: f('subject'),
        body: f('body'),
        inReplyTo: cleanMessageId(f('in_reply_to')),
        references: cleanReferences(f('references')).join(' '),
        forward: isMessageId(f('forward')) ? f('forward') : '',
        forwardNames: [],
      };
      const again = (error: string, status: 400 | 413 | 422) => {
        const lost = form.files.length > 0 ? ' (Please attach your files again.)' : '';
        return page('Compose', <ComposePage csrf={c.get('csrf')} domain={domain} prefill={prefill} limits={limits} error={error + lost} />, status);
      };
      const to = parseAddressList(prefill.to, domain);
      if (!to.ok) return again(to.problem, 400);
      const cc = parseAddressList(prefill.cc, domain);
      if (!cc.ok) return again(cc.problem, 400);
      const rcpts = [...to.addresses, ...cc.addresses.filter((a) => !to.addresses.includes(a))];
      if (rcpts.length === 0) return again('Add at least one recipient.', 400);
      if (rcpts.length > 50) return again('At most 50 recipients per message.', 400);
      if (prefill.subject.length > 500) return again('The subject is too long (500 characters at most).', 400);
      for (const r of rcpts) {
        if (!isLocalDomain(r, domain)) continue;
        const name = localUser(r, domain);
        if (name === null || !(await accountExists(store, name))) return again(`There is no user ${r} here.`, 422);
      }
      const attachments: OutgoingAttachment[] = [...form.files];
      if (prefill.forward) {
        const orig = await findMessage(store, user.name, prefill.forward);
        if (!orig) return again('The message you are forwarding was deleted meanwhile.', 422);
        const { parsed } = await parsedOf(c, orig);
        parsed.attachments.forEach((a, i) => attachments.push({ filename: attachmentName(a.filename, i), contentType: a.contentType, content: a.content }));
      }
      if (attachments.reduce((n, a) => n + a.content.length, 0) > limits.maxAttachBytes) return again('The attachments are too large together.', 413);
      const message = await buildMessage(
        {
          from: { name: user.name, address: `${user.name}@${domain}` },
          to: to.addresses,
          cc: cc.addresses,
          subject: prefill.subject,
          text: prefill.body.replace(/\r\n/g, '\n'),
          inReplyTo: prefill.inReplyTo || undefined,
          references: prefill.references ? prefill.references.split(' ') : undefined,
          attachments,
        },
        domain,
      );
      if (message.length > topo.mail.maxMessageBytes) return again('The message is too large to send.', 413);
      await submit(store, topo, { raw: message, from: `${user.name}@${domain}`, sender: user.name, rcpts, saveSent: true });
      return redirect('/mail/inbox?note=sent');
    }),
  );

  app.get(
    '/m/:id',
    handle(async (c) => {
      const s = await theMessage(c);
      const { parsed } = await parsedOf(c, s);
      await markRead(c.get('deps').store, me(c).name, s);
      const view = messageView(parsed, s);
      return page(view.subject || '(no subject)', <MessagePage view={view} csrf={c.get('csrf')} />);
    }),
  );

  app.get(
    '/m/:id/att/:n',
    handle(async (c) => {
      const s = await theMessage(c);
      const n = Number(c.req.param('n'));
      const { parsed } = await parsedOf(c, s);
      const a = Number.isInteger(n) ? parsed.attachments[n] : undefined;
      if (!a) throw new HttpError(404, 'This message has no such attachment.', `/mail/m/${s.id}`);
      return raw(download(a.content, attachmentName(a.filename, n), a.contentType));
    }),
  );

  app.get(
    '/m/:id/raw',
    handle(async (c) => {
      const s = await theMessage(c);
      const { raw: bytes } = await parsedOf(c, s);
      const res = download(bytes, `message-${s.id}.eml`, 'text/plain; charset=utf-8');
      res.headers.set('content-disposition', 'inline');
      return raw(res);
    }),
  );

  app.post(
    '/m/:id/delete',
    handle(async (c) => {
      const s = await theMessage(c);
      await deleteMessage(c.get('deps').store, me(c).name, s);
      return redirect(`/mail/${s.folder}?note=deleted`);
    }),
  );

  app.get(
    '/:folder',
    handle(async (c) => {
      const folder = c.req.param('folder') as Folder;
      if (!FOLDERS.includes(folder)) throw new HttpError(404, `There is no folder '${c.req.param('folder')}'.`, '/mail/inbox');
      const pg = Math.min(1_000_000, Math.max(1, Number.parseInt(c.req.query('page') ?? '1', 10) || 1));
      const listing = await listFolder(c.get('deps').store, me(c).name, folder, pg);
      return page(folder === 'inbox' ? 'Inbox' : 'Sent', <FolderPage folder={folder} page={listing} ok={note(c.req.query('note'))} />);
    }),
  );

  return app;
}
