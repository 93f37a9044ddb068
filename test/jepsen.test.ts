// Jepsen-style test against real processes: a master and 4 storage nodes (replication 3, 8 tablets),
// 8 concurrent client processes (each its own StoreClient) doing GET / PUT / CPUT / DELETE on 8
// registers (one cell per tablet, so their primaries are spread over every node) and PUTs of unique
// cells, every written value unique, while a nemesis (seeded schedule) kill -9s and restarts the current
// primary of a register's tablet (also restarting it at once), kill -9s two nodes at once, stops and
// restarts a primary with admin stop/restart, pauses a primary (SIGSTOP/SIGCONT) and kill -9s the master. Every operation's invocation
// and completion time (performance.now) and outcome are recorded: ok; fail = definitely not applied
// ('unavailable'), or for a CPUT a mismatch; unknown ('unknown': sent, no reply). Then the cluster is
// healed (everything restarted, every tablet with all replicas in sync) and checked:
//   - final reads of every register and every unique cell join the history, which must be linearizable
//     (test/support/linearizability.ts); acknowledged unique-cell PUTs must be readable, and PUTs that
//     failed with 'unavailable' must not have been applied;
//   - every tablet's replicas hold identical data (scanned page by page from each replica's local copy).
//
// Knobs (environment): JEPSEN_SEED (nemesis schedule and workload choices; printed), JEPSEN_SECONDS
// (load with faults, default 24), JEPSEN_KEEP=1 (keep the cluster directory with the node logs; it is
// kept anyway when the test fails), JEPSEN_HISTORY=file (write the history and the nemesis timeline as
// JSON), JEPSEN_SELF_CHECK=1 (turn one final read into a stale read before checking: the test must then
// fail, which shows that the harness does see a violation).
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoreClient } from '../actors/session.js';
import { tabletOf } from '../transport/partition.js';
import { TestCluster } from './support/cluster.js';
import { checkHistory, formatOp, type Op, type Value } from './support/linearizability.js';
import { describeStatus, diffCells, pick, recordOp, rng, rowsPerTablet, scanAll, shuffle, sleep, waitHealthy, waitUp, type Oddities } from './jepsen/support.js';

const SEED = Number(process.env['JEPSEN_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const LOAD_MS = Math.round(Number(process.env['JEPSEN_SECONDS'] ?? 24) * 1000);
const KEEP = process.env['JEPSEN_KEEP'] === '1';
const SELF_CHECK = process.env['JEPSEN_SELF_CHECK'] === '1';
const HISTORY_FILE = process.env['JEPSEN_HISTORY'];
const TABLETS = 8;
const PROCESSES = 8;
const COL = 'v';

interface NemesisEvent {
  at: number; // ms since the load started
  what: string;
}

describe('jepsen: registers under kill -9, double kills, admin stop, pauses and master kills (R=3, 4 nodes)', () => {
  const cluster = new TestCluster({ basePort: 22000, storageNodes: 4, tablets: TABLETS, replication: 3, requestMs: 3000 });
  const clients: StoreClient[] = [];
  let failed = true;

  beforeAll(async () => {
    await cluster.start();
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await cluster.stop(KEEP || failed);
    if (KEEP || failed) console.log(`jepsen: cluster directory (node logs: <dir>/<node>.log) kept in ${cluster.dir}`);
  });

  it('keeps the registers linearizable and the replicas identical', { timeout: 150_000 }, async () => {
    const tag = `seed ${SEED} (rerun with JEPSEN_SEED=${SEED}); node logs in ${cluster.dir}`;
    const newClient = (timeoutMs = 1000): StoreClient => {
      const c = cluster.client({ timeoutMs });
      clients.push(c);
      return c;
    };
    const admin = newClient(2000);
    const r = rng(SEED);

    // Registers: one row per tablet, so their primaries are spread over every node (t -> s(t mod 4)).
    const regRows = rowsPerTablet('reg-', TABLETS);
    // Unique-cell writes ("ack" cells, each written once): one row per tablet, a column per write.
    const ackRows = rowsPerTablet('ack-', TABLETS);
    const map0 = await admin.map(true);
    const primaries0 = regRows.map((row) => map0.assignments[tabletOf(row, TABLETS)]!.primary);
    expect(new Set(primaries0).size, 'registers spread over every node as primary').toBe(4);

    const history: Op[] = [];
    const odd: Oddities = { codes: new Map(), exceptions: [] };
    const acks: Array<{ row: string; col: string; value: string; outcome: Op['outcome'] }> = [];
    const events: NemesisEvent[] = [];
    const t0 = performance.now();
    const loadEnd = t0 + LOAD_MS;
    const note = (what: string): void => void events.push({ at: Math.round(performance.now() - t0), what });

    // ---- the clients: PROCESSES logical processes, each with its own StoreClient ----
    const lastSeen = new Map<string, Value>(); // a recent value per register, to make CPUTs likely to succeed
    let nextProcess = PROCESSES;
    async function client(index: number): Promise<void> {
      const store = newClient();
      const pr = rng(SEED ^ (0x9e3779b9 * (index + 1)));
      let proc = index;
      let seq = 0;
      while (performance.now() < loadEnd) {
        const roll = pr();
        const value = `p${proc}-${seq++}`;
        if (roll < 0.12) {
          const row = pick(pr, ackRows);
          const col = `c-${value}`;
          const rec = await recordOp(store, history, odd, { key: `${row}/${col}`, row, col, process: proc, kind: 'put', value });
          if (rec) acks.push({ row, col, value, outcome: rec.outcome });
          if (rec?.outcome === 'unknown') proc = nextProcess++;
        } else {
          const k = Math.floor(pr() * regRows.length);
          const row = regRows[k]!;
          const key = `reg-${k}`;
          const r2 = pr();
          const kind: Op['kind'] = r2 < 0.4 ? 'get' : r2 < 0.65 ? 'put' : r2 < 0.92 ? 'cput' : 'delete';
          const expect = kind === 'cput' ? (lastSeen.get(key) ?? null) : undefined;
          const rec = await recordOp(store, history, odd, { key, row, col: COL, process: proc, kind, value, expect });
          if (rec?.outcome === 'ok') {
            if (kind === 'get') lastSeen.set(key, rec.result ?? null);
            else if (kind === 'delete') lastSeen.set(key, null);
            else lastSeen.set(key, value);
          }
          // Jepsen convention: a process whose op is indeterminate is replaced by a fresh one.
          if (rec?.outcome === 'unknown') proc = nextProcess++;
        }
        await sleep(3 + Math.floor(pr() * 10));
      }
    }

    // ---- the nemesis ----
    const stopped = new Set<string>(); // admin-stopped
    const paused = new Set<number>(); // SIGSTOPped pids
    const primaryOf = async (row: string): Promise<string | null> => {
      try {
        return (await admin.map(true)).assignments[tabletOf(row, TABLETS)]!.primary;
      } catch {
        return null;
      }
    };
    /** An admin call whose reply may be lost (it is a fault injector, not the thing under test): retried until it answers. */
    async function adminCall(node: string, action: 'stop' | 'restart'): Promise<void> {
      for (let attempt = 1; ; attempt++) {
        try {
          await admin.admin(node, action);
          return;
        } catch (e) {
          note(`admin ${action} ${node}: ${(e as Error).message}${attempt < 5 ? '; again' : ''}`);
          if (attempt >= 5) throw e;
          await sleep(200);
        }
      }
    }
    async function killAndRestart(names: string[], downMs: number): Promise<void> {
      await Promise.all(names.map((n) => cluster.kill(n)));
      note(`kill -9 ${names.join(' + ')}`);
      await sleep(downMs);
      for (const n of names) cluster.startNode(n);
      note(`restart ${names.join(' + ')}`);
      await Promise.all(names.map((n) => waitUp(admin, cluster, n, 20_000)));
      note(`${names.join(' + ')} heartbeating again`);
    }
    async function nemesis(): Promise<void> {
      // The first three faults cover each kind once, in a seeded order; then seeded random ones.
      // Beyond those: SIGSTOP/SIGCONT of a primary (a paused process whose lease runs out while it still
      // believes it is primary), kill -9 of the master, and kill -9 of a primary restarted at once (back
      // before, or just after, the master notices: a primary that lost its unsynced log tail).
      const kinds = [
        ...shuffle(r, ['kill-primary', 'kill-two', 'admin-stop']),
        ...Array.from({ length: 8 }, () => pick(r, ['kill-primary', 'kill-two', 'pause-primary', 'kill-master', 'bounce-primary'])),
      ];
      await sleep(1000 + r() * 1000);
      for (const kind of kinds) {
        if (performance.now() > loadEnd - 3000) break;
        const k = Math.floor(r() * regRows.length);
        const downMs = 1200 + Math.floor(r() * 1800);
        const primary = (await primaryOf(regRows[k]!)) ?? pick(r, cluster.storageNames);
        if (kind === 'kill-primary') {
          note(`fault: kill the primary of reg-${k} (tablet ${tabletOf(regRows[k]!, TABLETS)})`);
          await killAndRestart([primary], downMs);
        } else if (kind === 'kill-two') {
          const other = pick(r, cluster.storageNames.filter((n) => n !== primary));
          note(`fault: kill two at once: the primary of reg-${k} and another node`);
          await killAndRestart([primary, other], downMs);
        } else if (kind === 'bounce-primary') {
          note(`fault: kill -9 the primary of reg-${k} and restart it at once`);
          await killAndRestart([primary], 0);
        } else if (kind === 'pause-primary') {
          const pid = cluster.pid(primary)!;
          note(`fault: SIGSTOP ${primary} (primary of reg-${k}) for ${downMs} ms`);
          paused.add(pid);
          process.kill(pid, 'SIGSTOP');
          await sleep(downMs);
          process.kill(pid, 'SIGCONT');
          paused.delete(pid);
          note(`SIGCONT ${primary}`);
        } else if (kind === 'kill-master') {
          const master = cluster.topo.master.name;
          await cluster.kill(master);
          note(`fault: kill -9 the master`);
          await sleep(downMs / 2);
          cluster.startNode(master);
          note(`restart the master`);
        } else {
          note(`fault: admin stop ${primary} (primary of reg-${k})`);
          stopped.add(primary);
          await adminCall(primary, 'stop');
          note(`${primary} stopped`);
          await sleep(downMs);
          await adminCall(primary, 'restart');
          stopped.delete(primary);
          note(`admin restart ${primary}`);
          await waitUp(admin, cluster, primary, 20_000);
          note(`${primary} heartbeating again`);
        }
        await sleep(500 + r() * 1200);
      }
    }

    const nemesisDone = nemesis().catch((e: unknown) => {
      note(`nemesis failed: ${(e as Error).message}`);
      throw e;
    });
    const clientsDone = Promise.all(Array.from({ length: PROCESSES }, (_, i) => client(i)));
    const [nemesisResult] = await Promise.allSettled([nemesisDone, clientsDone]);
    const loadMs = Math.round(performance.now() - t0);
    const timeline = (): string => events.map((e) => `  +${String(e.at).padStart(6)} ms  ${e.what}`).join('\n');
    if (nemesisResult.status === 'rejected') throw new Error(`nemesis failed (${tag}): ${(nemesisResult.reason as Error).message}\n${timeline()}`);

    // Anything thrown from here on carries the seed, the logs directory and the nemesis timeline.
    try {
      await verify();
    } catch (e) {
      const err = e as Error;
      if (!err.message.includes(tag)) err.message = `${err.message}\n(${tag})\nnemesis timeline:\n${timeline()}`;
      throw err;
    }
    failed = false;

    async function verify(): Promise<void> {
      // ---- heal: everything back, every tablet fully replicated ----
      for (const pid of paused) process.kill(pid, 'SIGCONT');
      if (cluster.pid(cluster.topo.master.name) === undefined) cluster.startNode(cluster.topo.master.name);
      for (const n of cluster.storageNames) if (cluster.pid(n) === undefined) cluster.startNode(n);
      for (const n of stopped) await adminCall(n, 'restart');
      const healStart = performance.now();
      const { status: healed, ms: healMs } = await waitHealthy(admin, cluster, 30_000).catch((e: Error) => {
        throw new Error(`${e.message}\n(${tag})\nnemesis timeline:\n${timeline()}`);
      });
      note(`healed in ${Math.round(performance.now() - healStart)} ms`);

      // ---- final reads, part of the checked history ----
      const reader = newClient(3000);
      const finalProcess = 10_000;
      for (let k = 0; k < regRows.length; k++) {
        const rec = await recordOp(reader, history, odd, { key: `reg-${k}`, row: regRows[k]!, col: COL, process: finalProcess, kind: 'get' });
        expect(rec?.outcome, `final read of reg-${k} after healing (${tag})`).toBe('ok');
      }
      const ackProblems: string[] = [];
      for (const a of acks) {
        const rec = await recordOp(reader, history, odd, { key: `${a.row}/${a.col}`, row: a.row, col: a.col, process: finalProcess, kind: 'get' });
        if (rec === null) {
          ackProblems.push(`${a.row}/${a.col}: final read failed`);
          continue;
        }
        const got = rec.result ?? null;
        if (a.outcome === 'ok' && got !== a.value) ackProblems.push(`${a.row}/${a.col}: acknowledged put of ${a.value} lost (read ${got})`);
        if (a.outcome === 'fail' && got !== null) ackProblems.push(`${a.row}/${a.col}: put reported 'unavailable' (not applied) but the cell holds ${got}`);
      }

      // From here on, times are ms since the load started (the checker takes any monotonic unit).
      for (const o of history) {
        o.invoke -= t0;
        if (o.complete !== null) o.complete -= t0;
      }

      if (SELF_CHECK) {
        // A stale read: the final read of reg-0 returns the first value ever acknowledged on it.
        const first = history.find((o) => o.key === 'reg-0' && o.outcome === 'ok' && (o.kind === 'put' || o.kind === 'cput'));
        const final = history.find((o) => o.key === 'reg-0' && o.process === finalProcess);
        if (first && final && final.result !== first.value) final.result = first.value;
        note(`SELF CHECK: final read of reg-0 replaced with ${first?.value ?? '?'} (must be reported as not linearizable)`);
      }

      if (HISTORY_FILE) writeFileSync(HISTORY_FILE, JSON.stringify({ seed: SEED, clusterDir: cluster.dir, events, history }));

      // ---- linearizability ----
      const checkStart = performance.now();
      const result = checkHistory(history, { timeoutMs: 30_000 });
      const checkMs = Math.round(performance.now() - checkStart);

      // ---- replicas identical ----
      const replicaProblems: string[] = [];
      const scanned: string[] = [];
      for (const a of healed.map.assignments) {
        let problems: string[] = [];
        // Records still in flight to a replica settle quickly once the load is over: a few tries.
        for (let attempt = 0; attempt < 6; attempt++) {
          problems = [];
          const copies = await Promise.all(a.replicas.map(async (n) => ({ n, cells: await scanAll(admin, n, a.id) })));
          const [first, ...rest] = copies;
          for (const c of rest) problems.push(...diffCells(first!.n, first!.cells, c.n, c.cells).map((d) => `tablet ${a.id}: ${d}`));
          if (problems.length === 0) {
            scanned.push(`t${a.id}:${first!.cells.length}`);
            break;
          }
          await sleep(300);
        }
        replicaProblems.push(...problems);
      }

      // ---- report ----
      const count = (pred: (o: Op) => boolean): number => history.filter(pred).length;
      // Availability (informational): per register, the longest stretch of the load window (not counting
      // the drain of the last ops) without a completed op.
      const stalls = regRows.map((_, k) => {
        const done = history
          .filter((o) => o.key === `reg-${k}` && o.process !== finalProcess && o.outcome !== 'unknown' && o.complete !== null)
          .map((o) => o.complete!)
          .filter((t) => t <= LOAD_MS)
          .sort((a, b) => a - b);
        let worst = 0;
        let at = 0;
        let prev = 0;
        for (const t of [...done, LOAD_MS]) {
          if (t - prev > worst) [worst, at] = [t - prev, prev];
          prev = t;
        }
        return `reg-${k} ${Math.round(worst)} ms (from +${Math.round(at)})`;
      });
      const epochs = healed.map.assignments.map((a) => `t${a.id}:e${a.epoch}`).join(' ');
      const summary =
        `jepsen (${tag})\n` +
        `  load ${loadMs} ms with ${PROCESSES} processes: ${history.length} ops recorded ` +
        `(ok ${count((o) => o.outcome === 'ok')}, fail ${count((o) => o.outcome === 'fail')}, unknown ${count((o) => o.outcome === 'unknown')}; ` +
        `cput ok ${count((o) => o.kind === 'cput' && o.outcome === 'ok')} / mismatch ${count((o) => o.kind === 'cput' && o.outcome === 'fail')}), ` +
        `${acks.filter((a) => a.outcome === 'ok').length} acknowledged unique-cell puts\n` +
        `  longest stretch without a completed op: ${stalls.join(', ')}\n` +
        `  heal ${healMs} ms; checker ${checkMs} ms over ${result.keys} keys / ${result.ops} ops; tablets after: ${epochs}; cells per tablet: ${scanned.join(' ')}\n` +
        (odd.codes.size > 0 ? `  other error codes: ${[...odd.codes].map(([k, v]) => `${k} x${v}`).join(', ')}\n` : '') +
        `nemesis timeline:\n${timeline()}`;
      console.log(summary);

      if (!result.ok) {
        // The failed key's ops around those the explanation names (#index into the history).
        const named = [...(result.explanation ?? '').matchAll(/#(\d+)/g)].map((m) => history[Number(m[1])]).filter((o): o is Op => o !== undefined);
        const from = Math.min(...named.map((o) => o.invoke)) - 1000;
        const to = Math.max(...named.map((o) => o.complete ?? o.invoke)) + 1000;
        const r1 = (x: number | null): number | null => (x === null ? null : Math.round(x * 10) / 10);
        const ops = history
          .map((o, i) => ({ o, i }))
          .filter(({ o }) => o.key === result.failedKey && (named.length === 0 || ((o.complete ?? Infinity) >= from && o.invoke <= to)))
          .sort((a, b) => a.o.invoke - b.o.invoke)
          .map(({ o, i }) => `  ${formatOp({ ...o, invoke: r1(o.invoke)!, complete: r1(o.complete) }, i)}`);
        console.log(
          `NOT LINEARIZABLE (${tag})\n${result.explanation}\n` +
            `ops on ${result.failedKey} from ${Math.round(from)} to ${Math.round(to)} ms since the load started (unknown outcome: '?'):\n${ops.slice(0, 300).join('\n')}\nnemesis timeline:\n${timeline()}`,
        );
      }
      expect(odd.exceptions, `non-StoreError exceptions (${tag})`).toEqual([]);
      expect(result.ok, `linearizability (${tag}): ${result.explanation ?? ''}`).toBe(true);
      expect(ackProblems, `acknowledged unique-cell writes after healing (${tag})`).toEqual([]);
      expect(replicaProblems, `replicas of a tablet differ (${tag})\n${describeStatus(healed)}`).toEqual([]);
      // The test must have exercised failover: some tablet changed primary.
      expect(healed.map.assignments.some((a) => a.epoch > 1), `no failover happened (${tag})`).toBe(true);
    }
  });
});
