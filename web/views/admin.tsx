// The admin console's main page: every node with its state, the storage nodes' load over the last
// minute, and the tablet map. The live parts are separate components so the polling script can swap in
// fresh server-rendered copies (see web/admin/live-script.ts) without a reload.
import { raw } from 'hono/html';
import type { HtmlEscapedString } from 'hono/utils/html';
import { formatAgo, formatBytes, formatMs } from '../admin/format.js';
import type { AdminNode, AdminStatus } from '../admin/overview.js';
import type { TabletView } from '../admin/tablets.js';
import { Sparkline } from './admin-chart.js';
import { Csrf, Flash } from './layout.js';

function StateBadge(props: { state: string }) {
  return <span class={`badge ${props.state}`}>{props.state}</span>;
}

function NodeDetail(props: { node: AdminNode }) {
  const n = props.node;
  if (n.storage) {
    const s = n.storage;
    return (
      <span>
        {s.held} tablets, primary of {s.primaries}
        {s.resident !== null && <span class="muted">, {s.resident} in memory</span>}
      </span>
    );
  }
  if (n.load) {
    return (
      <span>
        {n.load.inflight} in flight, loop delay {n.load.loopDelayMs} ms, {n.load.served} served
        <span class="muted">, {formatBytes(n.load.rssBytes)} RSS</span>
      </span>
    );
  }
  if (n.balancer) return <span>{n.balancer.redirects} redirects, {n.balancer.noFrontend} without a frontend</span>;
  return <span class="muted">–</span>;
}

function NodeActions(props: { node: AdminNode; csrf: string }) {
  const n = props.node;
  if (n.kind !== 'storage') return null;
  const stranded = n.storage?.strandedIfStopped ?? [];
  if (n.state === 'stopped') {
    return (
      <form class="inline" method="post" action={`/admin/nodes/${encodeURIComponent(n.name)}/restart`}>
        <Csrf token={props.csrf} />
        <button type="submit" class="secondary small">Restart</button>
      </form>
    );
  }
  if (n.state === 'alive' || n.state === 'recovering') {
    return (
      <form class="inline node-stop" method="post" action={`/admin/nodes/${encodeURIComponent(n.name)}/stop`} data-node={n.name} data-stranded={stranded.join(',')}>
        <Csrf token={props.csrf} />
        <input type="hidden" name="confirm" value="" />
        <button type="submit" class="danger small">Stop</button>
      </form>
    );
  }
  return <span class="muted">–</span>;
}

export function NodesTable(props: { status: AdminStatus; csrf: string }) {
  return (
    <table class="list admin-nodes">
      <thead>
        <tr>
          <th>Node</th>
          <th>Kind</th>
          <th>State</th>
          <th>Address</th>
          <th>PID</th>
          <th>Last heartbeat</th>
          <th>Details</th>
          <th />
        </tr>
      </thead>
      <tbody>
        {props.status.nodes.map((n) => (
          <tr data-node={n.name} data-state={n.state}>
            <td class="mono">{n.name}</td>
            <td>{n.kind}</td>
            <td>
              <StateBadge state={n.state} />
            </td>
            <td class="mono">{n.address}</td>
            <td class="mono">{n.pid ?? '–'}</td>
            <td>{n.kind === 'master' || n.kind === 'balancer' ? <span class="muted">–</span> : formatAgo(n.lastHeartbeatMs)}</td>
            <td>
              <NodeDetail node={n} />
            </td>
            <td>
              <NodeActions node={n} csrf={props.csrf} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function LoadCards(props: { status: AdminStatus }) {
  const storage = props.status.nodes.filter((n) => n.kind === 'storage');
  return (
    <div class="load-grid">
      {storage.map((n) => {
        const m = n.storage?.metrics ?? null;
        const last = m ? m.ops[m.ops.length - 1] ?? 0 : null;
        return (
          <div class="load-card" data-node={n.name}>
            <div class="load-head">
              <span class="mono">{n.name}</span> <StateBadge state={n.state} />
            </div>
            {m === null ? (
              <p class="muted">{n.state === 'dead' || n.state === 'unknown' ? 'No figures while the node is down.' : 'No figures: the node did not answer.'}</p>
            ) : (
              <>
                <div class="load-figures">
                  <span>
                    <strong>{last}</strong> ops/s now
                  </span>
                  <span>
                    <strong>{(m.minuteOps / m.ops.length).toFixed(1)}</strong> ops/s avg
                  </span>
                  <span>
                    p99 <strong>{formatMs(m.minuteP99Ms)}</strong>
                  </span>
                </div>
                <Sparkline values={m.ops} label={`${n.name}: requests per second, last minute`} kind="ops" />
                <Sparkline values={m.p99Ms} label={`${n.name}: p99 latency per second, last minute`} kind="latency" />
              </>
            )}
          </div>
        );
      })}
    </div>
  );
}

function ReplicaChip(props: { r: TabletView['replicas'][number] }) {
  const r = props.r;
  const title = `${r.node}: ${r.primary ? 'primary' : 'replica'}, ${r.inSync ? 'in sync' : 'not in sync'}, lsn ${r.lsn ?? 'unknown'}${r.behind ? `, ${r.behind} behind` : ''}`;
  return (
    <span class={`replica ${r.health}${r.primary ? ' primary' : ''}`} title={title}>
      {r.primary && '★ '}
      <span class="mono">{r.node}</span> <span class="lsn">@{r.lsn ?? '?'}</span>
      {r.behind ? <span class="behind"> −{r.behind}</span> : null}
      {r.health === 'catching_up' && ' catching up'}
      {r.health === 'down' && ' down'}
    </span>
  );
}

export function TabletTable(props: { status: AdminStatus }) {
  return (
    <table class="list admin-tablets">
      <thead>
        <tr>
          <th>Tablet</th>
          <th>Epoch</th>
          <th>Primary</th>
          <th>Replicas (log position, in-sync state)</th>
        </tr>
      </thead>
      <tbody>
        {props.status.tabletMap.map((t) => (
          <tr data-tablet={t.id} data-primary={t.primary ?? ''} class={t.available ? '' : 'unavailable'}>
            <td class="mono">{t.id}</td>
            <td class="mono">{t.epoch}</td>
            <td class="mono">{t.primary ?? <span class="bad">none (electing)</span>}</td>
            <td>
              {t.replicas.map((r) => (
                <ReplicaChip r={r} />
              ))}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function Problems(props: { status: AdminStatus }) {
  if (props.status.problems.length === 0) return null;
  return (
    <ul class="problems">
      {props.status.problems.map((p) => (
        <li>{p}</li>
      ))}
    </ul>
  );
}

/** The live parts of the page, by element id: the polling script replaces each with a fresh copy. */
export function liveParts(status: AdminStatus, csrf: string): Record<string, HtmlEscapedString | Promise<HtmlEscapedString>> {
  return {
    'live-nodes': <NodesTable status={status} csrf={csrf} />,
    'live-load': <LoadCards status={status} />,
    'live-tablets': <TabletTable status={status} />,
    'live-problems': <div>{status.problems.length > 0 && <Problems status={status} />}</div>,
    'live-updated': <span>{new Date(status.at).toISOString().slice(11, 19)} UTC, map version {status.mapVersion}, from {status.frontend}</span>,
  };
}

export function AdminPage(props: { status: AdminStatus; csrf: string; ok?: string | undefined; error?: string | undefined; script: string }) {
  const parts = liveParts(props.status, props.csrf);
  return (
    <>
      <div class="admin-head">
        <h1>Admin console</h1>
        <span class="muted">
          Updated <span id="live-updated">{parts['live-updated']}</span> <span id="live-stale" class="stale" hidden>(not updating: retrying)</span>
        </span>
        <a class="button secondary" href="/admin/data">Raw data</a>
      </div>
      <Flash ok={props.ok} error={props.error} />
      <div id="live-problems">{parts['live-problems']}</div>
      <section class="card">
        <h2>Nodes</h2>
        <div id="live-nodes">{parts['live-nodes']}</div>
      </section>
      <section class="card">
        <h2>Storage load, last minute</h2>
        <p class="hint">Data requests (get, put, cput, delete, cols, scan) per second and their p99 latency, as the nodes measure them.</p>
        <div id="live-load">{parts['live-load']}</div>
      </section>
      <section class="card">
        <h2>Tablet map</h2>
        <p class="hint">
          {props.status.tablets} tablets, {props.status.replication} replicas each. ★ primary; <span class="replica ok">in sync</span> <span class="replica lagging">behind the primary</span> <span class="replica catching_up">catching up</span> <span class="replica down">down</span>
        </p>
        <div id="live-tablets">{parts['live-tablets']}</div>
      </section>
      {/* Our own constant script, never user text: raw, since hono/jsx would escape its quotes and arrows. */}
      <script>{raw(props.script)}</script>
    </>
  );
}

/** Asked before stopping the last live in-sync replica of some tablets (also without JavaScript). */
export function ConfirmStopPage(props: { node: string; stranded: number[]; csrf: string }) {
  return (
    <div class="card narrow">
      <h1>Stop {props.node}?</h1>
      <p>
        {props.node} is the last live in-sync replica of {props.stranded.length === 1 ? 'tablet' : 'tablets'} <span class="mono">{props.stranded.join(', ')}</span>. Stopping it makes{' '}
        {props.stranded.length === 1 ? 'that tablet' : 'those tablets'} unavailable until it is restarted.
      </p>
      <div class="actions">
        <form class="inline" method="post" action={`/admin/nodes/${encodeURIComponent(props.node)}/stop`}>
          <Csrf token={props.csrf} />
          <input type="hidden" name="confirm" value="1" />
          <button type="submit" class="danger">Stop it anyway</button>
        </form>
        <a class="button secondary" href="/admin">Cancel</a>
      </div>
    </div>
  );
}
