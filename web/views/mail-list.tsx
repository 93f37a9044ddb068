// A mail folder, one page of it: sender (or recipients in Sent), subject with a preview, arrival
// time; unread messages in bold; links to newer and older pages.
import type { MailboxPage } from '../../mail/mailbox.js';
import type { Folder, MessageSummary } from '../../mail/summary.js';
import { Flash } from './layout.js';
import { FOLDER_NAMES, MailShell, fullTime, shortTime } from './mail-shell.js';

function who(m: MessageSummary, folder: Folder): string {
  if (folder === 'sent') return m.to.length > 0 ? `To: ${m.to.join(', ')}` : 'To: (nobody)';
  return m.from.name || m.from.address || '(unknown sender)';
}

export function FolderPage(props: { folder: Folder; page: MailboxPage; ok?: string | undefined; error?: string | undefined }) {
  const { folder, page } = props;
  const first = (page.page - 1) * 50 + 1;
  return (
    <MailShell active={folder}>
      <Flash ok={props.ok} error={props.error} />
      <div class="card mail-list">
        <div class="mail-head">
          <h1>{FOLDER_NAMES[folder]}</h1>
          <span class="muted">
            {page.total === 0 ? 'empty' : `${first}–${first + page.items.length - 1} of ${page.total}`}
          </span>
        </div>
        {page.items.length === 0 ? (
          <p class="muted">{folder === 'inbox' ? 'No mail yet.' : 'Nothing sent yet.'}</p>
        ) : (
          <table class="list messages">
            <tbody>
              {page.items.map((m) => (
                <tr class={m.read ? 'read' : 'unread'}>
                  <td class="from">
                    <a href={`/mail/m/${m.id}`}>{who(m, folder)}</a>
                  </td>
                  <td class="subject">
                    <a href={`/mail/m/${m.id}`}>
                      <span class="subj">{m.subject || '(no subject)'}</span>
                      {m.attachments.length > 0 && <span class="badge clip">{m.attachments.length === 1 ? '1 file' : `${m.attachments.length} files`}</span>}
                      <span class="preview"> — {m.preview}</span>
                    </a>
                  </td>
                  <td class="when" title={fullTime(m.arrived)}>
                    {shortTime(m.arrived)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {page.pages > 1 && (
          <div class="actions pager">
            {page.page > 1 && (
              <a class="button secondary" href={`/mail/${folder}?page=${page.page - 1}`}>
                ← Newer
              </a>
            )}
            <span class="muted">
              page {page.page} of {page.pages}
            </span>
            {page.page < page.pages && (
              <a class="button secondary" href={`/mail/${folder}?page=${page.page + 1}`}>
                Older →
              </a>
            )}
          </div>
        )}
      </div>
    </MailShell>
  );
}
