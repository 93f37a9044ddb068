// Runs seeds from the command line, faster than vitest for deep searches: `npm run build`, then
// `node dist/test/sim/run-cli.js SEEDS [verbose]` with SEEDS "17", "1-5000" or "3,9,12" and options in
// SIM_OPTS (JSON, see SimOptions). Prints a summary, and the failure report of failing seeds.
import { runSeed, SimFailure, type SimOptions } from './sim.js';

function parseSeeds(s: string): number[] {
  const out: number[] = [];
  for (const part of s.split(',')) {
    const m = /^(\d+)-(\d+)$/.exec(part);
    if (m) for (let i = Number(m[1]); i <= Number(m[2]); i++) out.push(i);
    else out.push(Number(part));
  }
  return out;
}

const seeds = parseSeeds(process.argv[2] ?? '1');
const overrides: Partial<SimOptions> = JSON.parse(process.env.SIM_OPTS ?? '{}') as Partial<SimOptions>;
if (process.argv[3] === 'verbose') overrides.verbose = true;
const started = Date.now();
let failed = 0;
let steps = 0;
const totals: Record<string, number> = {};
for (const seed of seeds) {
  try {
    const r = runSeed(seed, overrides);
    steps += r.steps;
    for (const [k, v] of Object.entries(r)) if (typeof v === 'number' && k !== 'seed') totals[k] = (totals[k] ?? 0) + v;
    if (seeds.length <= 20) console.log(JSON.stringify(r));
  } catch (e) {
    if (!(e instanceof SimFailure)) throw e;
    failed++;
    console.log(seeds.length <= 20 ? e.message : `FAIL ${e.message.split('\n')[0]}`);
  }
}
console.log(JSON.stringify(Object.fromEntries(Object.entries(totals).map(([k, v]) => [k, Math.round(v / Math.max(1, seeds.length - failed))]))), '(mean per passing seed)');
console.log(`${seeds.length} seeds, ${failed} failed, ${steps} steps, ${Date.now() - started} ms`);
