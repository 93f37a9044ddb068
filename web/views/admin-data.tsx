// The admin console's raw data page: pick a storage node and a tablet, see its cells ten at a time
// (row / column / value) with previous and next. Values arrive already shaped for display (web/admin/format.ts).
import { formatBytes, showName } from '../admin/format.js';
import type { ShownCell } from '../admin/raw-data.js';
import { Flash } from './layout.js';

export interface DataPageProps {
  nodes: string[];
  tablets: number;
  node: string;
  tablet: number;
  /** The chosen node's role per tablet ('primary', 'replica', or absent). */
  roles: Map<number, string>;
  cells: ShownCell[] | null;
  /** 1-based page number. */
  page: number;
  prevHref: string | null;
  nextHref: string | null;
  error?: string | undefined;
}

function Name(props: { name: string }) {
  const n = showName(props.name);
  return (
    <span class="mono" title={n.cut ? `${n.length} characters` : undefined}>
      {n.text}
      {n.cut && <span class="cut">… ({n.length} chars)</span>}
    </span>
  );
}

function Value(props: { cell: ShownCell }) {
  const v = props.cell.value;
  if (v.kind === 'text') {
    return (
      <span class="val-text">
        {v.text}
        {v.cut && <span class="cut">… ({formatBytes(v.size)} in all)</span>}
      </span>
    );
  }
  return (
    <span class="val-bin">
      <span class="badge">binary, {formatBytes(v.size)}</span> <code class="mono">{v.hex}</code>
      {v.cut && <span class="cut"> …</span>}
    </span>
  );
}

export function DataPage(p: DataPageProps) {
  const first = (p.page - 1) * 10;
  return (
    <>
      <div class="admin-head">
        <h1>Raw data</h1>
        <a class="button secondary" href="/admin">Back to the console</a>
      </div>
      <form class="card data-pick" method="get" action="/admin/data">
        <label>
          Storage node
          <select name="node">
            {p.nodes.map((n) => (
              <option value={n} selected={n === p.node}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <label>
          Tablet
          <select name="tablet">
            {Array.from({ length: p.tablets }, (_, t) => (
              <option value={String(t)} selected={t === p.tablet}>
                {t}
                {p.roles.has(t) ? ` (${p.roles.get(t)})` : ' (not held)'}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">Show</button>
      </form>
      <Flash error={p.error} />
      {p.cells !== null && (
        <section class="card">
          <h2>
            {p.node}, tablet {p.tablet}: page {p.page}
          </h2>
          {p.cells.length === 0 ? (
            <p class="muted">{p.page === 1 ? 'This tablet holds no cells on this node.' : 'No more cells.'}</p>
          ) : (
            <table class="list raw-cells">
              <thead>
                <tr>
                  <th>#</th>
                  <th>Row</th>
                  <th>Column</th>
                  <th>Value</th>
                </tr>
              </thead>
              <tbody>
                {p.cells.map((c, i) => (
                  <tr>
                    <td class="muted">{first + i + 1}</td>
                    <td>
                      <Name name={c.row} />
                    </td>
                    <td>
                      <Name name={c.col} />
                    </td>
                    <td>
                      <Value cell={c} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <div class="actions pager">
            {p.prevHref !== null ? <a class="button secondary" rel="prev" href={p.prevHref}>← Previous</a> : <span class="button secondary disabled">← Previous</span>}
            {p.nextHref !== null ? <a class="button secondary" rel="next" href={p.nextHref}>Next →</a> : <span class="button secondary disabled">Next →</span>}
          </div>
        </section>
      )}
    </>
  );
}
