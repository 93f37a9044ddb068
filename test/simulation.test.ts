// Deterministic simulation of the replication protocol (test/sim/sim.ts): the pure cores (MasterCore,
// ReplicaCore) driven by a seeded simulator of nodes, disks, network, clocks and clients, with crash,
// restart, pause, partition, worker-death, master-restart and message-loss faults. Every step checks
// the safety invariants; each run ends with healing, a liveness bound, replica/disk agreement and a
// linearizability check of the client history.
//
//   npm test                                                  the default seeds (SIM_RUNS of them)
//   SIM_SEED=123 npx vitest run test/simulation.test.ts       replay one seed (SIM_VERBOSE=1: full trace)
//   SIM_SEEDS=1-5000 npx vitest run test/simulation.test.ts   a deeper search
//   SIM_OPTS='{"slowNet":4,"ringRecords":4}' ...              override options (see SimOptions)
import { describe, expect, it } from 'vitest';
import { optionsFor, runSeed, SimFailure, Simulation, type SimOptions, type SimResult } from './sim/sim.js';

function parseSeeds(s: string): number[] {
  const out: number[] = [];
  for (const part of s.split(',')) {
    const m = /^(\d+)-(\d+)$/.exec(part.trim());
    if (m) for (let i = Number(m[1]); i <= Number(m[2]); i++) out.push(i);
    else if (part.trim() !== '') out.push(Number(part));
  }
  return out;
}

const overrides: Partial<SimOptions> = JSON.parse(process.env.SIM_OPTS ?? '{}') as Partial<SimOptions>;
if (process.env.SIM_VERBOSE === '1') overrides.verbose = true;
const single = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : null;
const seeds = single ?? (process.env.SIM_SEEDS ? parseSeeds(process.env.SIM_SEEDS) : parseSeeds(`1-${process.env.SIM_RUNS ?? 500}`));

/** Runs seeds; collects failures (reporting up to a few in full) instead of stopping at the first. */
function runMany(list: number[], extra: Partial<SimOptions>): { results: SimResult[]; failures: SimFailure[]; ms: number } {
  const started = Date.now();
  const results: SimResult[] = [];
  const failures: SimFailure[] = [];
  for (const seed of list) {
    try {
      results.push(runSeed(seed, { ...extra, ...overrides }));
    } catch (e) {
      if (!(e instanceof SimFailure)) throw new Error(`seed ${seed}: simulator error: ${(e as Error).stack}`);
      failures.push(e);
      console.error(`simulation FAILED: seed ${seed} (replay: SIM_SEED=${seed} npx vitest run test/simulation.test.ts)`);
    }
  }
  return { results, failures, ms: Date.now() - started };
}

function report(what: string, r: ReturnType<typeof runMany>): void {
  const sum = (f: (x: SimResult) => number): number => r.results.reduce((a, x) => a + f(x), 0);
  console.log(
    `${what}: ${r.results.length + r.failures.length} seeds, ${r.failures.length} failed, ${sum((x) => x.steps)} steps, ` +
      `${sum((x) => x.ops)} client ops (${sum((x) => x.unknownOps)} unknown), ${sum((x) => x.faults)} faults, ` +
      `${sum((x) => x.elections)} elections (${sum((x) => x.handovers)} handing primaries back), ${sum((x) => x.renewals)} epoch renewals, ${sum((x) => x.snapshots)} snapshot installs, ` +
      `${r.results.filter((x) => x.linearizabilityTimedOut).length} linearizability checks timed out; ${r.ms} ms`,
  );
  if (r.failures.length > 0) {
    throw new Error(`${r.failures.length} failing seed(s): ${r.failures.map((f) => f.seed).join(', ')}\n\n${r.failures[0]!.message}`);
  }
}

describe('deterministic simulation', () => {
  it(`random faults: ${single ? `seed ${single[0]}` : `${seeds.length} seeds`} (invariants every step, linearizability, liveness after healing)`, () => {
    const r = runMany(seeds, {});
    report('simulation', r);
    // The faults must have moved primaries and the master handed some back to live preferred nodes.
    if (!single) expect(r.results.reduce((a, x) => a + x.handovers, 0)).toBeGreaterThan(0);
  }, 600_000);

  it('replays a seed exactly', () => {
    const a = new Simulation(optionsFor(7, overrides));
    const ra = a.run();
    const b = new Simulation(optionsFor(7, overrides));
    const rb = b.run();
    expect(rb).toEqual(ra);
    expect(JSON.stringify(b.history)).toBe(JSON.stringify(a.history));
  });

  if (single) return;

  // Regression scenarios for the bugs the simulator found (see the comments in the cores).

  it("a primary whose worker dies (losing its unsynced tail) and comes back in its lease never reuses its epoch", () => {
    const r = runMany(parseSeeds('1-40'), {
      mixed: false,
      faults: false,
      faultMs: 5000,
      clients: 6,
      thinkMs: 5,
      slowDisk: 4,
      script: (s) => {
        for (const t of [1200, 2400, 3600]) s.at(t + s.opts.seed, () => {
          const p = s.primaryOf(0);
          if (p) s.crashWorkerOf(p, 0);
        });
      },
    });
    report('primary worker deaths', r);
    expect(r.results.every((x) => x.renewals >= 3)).toBe(true);
  }, 120_000);

  it('a live in-sync replica cut off from its primary is dropped: writes go on', () => {
    for (const seed of [1, 2, 3]) {
      let cutAt = 0;
      const sim = new Simulation(optionsFor(seed, {
        mixed: false,
        faults: false,
        drop: 0, // only the cut: a lost message would make a write's outcome unknown
        dup: 0,
        faultMs: 9000,
        script: (s) =>
          s.at(1500, () => {
            const p = s.primaryOf(0)!;
            cutAt = s.now;
            s.cutLink(p, s.inSyncOf(0).find((n) => n !== p)!, 6000);
          }),
      }));
      sim.run();
      const rows = new Set(sim.rowsOf(0).map((r) => `${r}/c`));
      // Writes invoked once the replica is out (dropAfterMs + a heartbeat) must complete.
      const writes = sim.history.filter((o) => rows.has(o.key) && o.kind !== 'get' && o.invoke > cutAt + 1600 && o.invoke < cutAt + 6000);
      expect(writes.length, `seed ${seed}`).toBeGreaterThan(3);
      expect(writes.filter((o) => o.outcome === 'unknown'), `seed ${seed}`).toEqual([]);
    }
  });

  it('without faults, writes after idle gaps longer than dropAfterMs drop no replica and cause no election', () => {
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      // Clients think up to 4 s between operations: tablets sit idle for seconds, then take one write.
      const r = runSeed(seed, { mixed: false, faults: false, drop: 0, dup: 0, thinkMs: 4000, clients: 3, faultMs: 30_000 });
      expect(r.ops, `seed ${seed}`).toBeGreaterThan(20);
      expect({ seed, drops: r.dropsAsked, elections: r.elections }).toEqual({ seed, drops: 0, elections: 0 });
    }
  });

  it('a caught-up joiner the master will not mark in sync, that then dies, does not block writes', () => {
    for (const seed of [1, 2, 3]) {
      let x = '';
      const sim = new Simulation(optionsFor(seed, {
        mixed: false,
        faults: false,
        drop: 0,
        dup: 0,
        faultMs: 12_000,
        script: (s) => {
          let p = '';
          s.at(1000, () => {
            p = s.primaryOf(0)!;
            x = s.replicasOf(0).find((n) => n !== p)!;
            s.crash(x);
          });
          s.at(2000, () => s.restart(x));
          // It gets its configuration, then the master stops hearing from it (so refuses to mark it in
          // sync), and it catches up from the primary once the link to the primary comes back.
          s.at(2030, () => s.cutLink(x, 'master', 9000));
          s.at(2030, () => s.cutLink(x, p, 600));
          s.at(4000, () => s.crash(x));
          s.at(11_500, () => s.restart(x));
        },
      }));
      sim.run();
      const rows = new Set(sim.rowsOf(0).map((r) => `${r}/c`));
      const writes = sim.history.filter((o) => rows.has(o.key) && o.kind !== 'get' && o.invoke > 7000 && o.invoke < 11_000);
      expect(writes.length, `seed ${seed}`).toBeGreaterThan(3);
      expect(writes.filter((o) => o.outcome === 'unknown'), `seed ${seed}`).toEqual([]);
    }
  });

  it('slow network and tiny catch-up ring (stale catch-up replies, late in_sync notices)', () => {
    report('slow network', runMany(parseSeeds('1001-1150'), { slowNet: 4, ringRecords: 4 }));
  }, 300_000);

  it('tablet evictions, with the suggested fix of TabletActor.close() modelled', () => {
    // With today's close(), client writes still waiting for replica acknowledgements are answered
    // 'unavailable', which the session retries: a write can then apply twice and some seeds are not
    // linearizable, e.g. SIM_OPTS='{"evictions":true}' SIM_SEED=395 (also 482, 769).
    report('evictions', runMany(parseSeeds('2001-2100'), { evictions: true, evictionAnswersInternal: true }));
  }, 300_000);
});
