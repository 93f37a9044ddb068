// Summarises V8 .cpuprofile files (as written by `kv-bench --profile DIR`, i.e. node --cpu-prof):
// for each profile, the share of sampled time that is idle, GC, and the functions with the most
// self time. Meant for a quick "which function burns the CPU" look without opening DevTools.
//
//   node dist/test/bench/prof-summary.js DIR [--top N] [--min-ms M]
//
// Profiles shorter than --min-ms of non-idle time (default 50 ms: the master, idle threads) are skipped.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number; // µs
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function findProfiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findProfiles(p));
    else if (name.endsWith('.cpuprofile')) out.push(p);
  }
  return out.sort();
}

function frameName(f: CallFrame): string {
  const fn = f.functionName || '(anonymous)';
  if (!f.url) return fn;
  // Keep the interesting tail of the path: the project's own files or the package name.
  const url = f.url.replace(/^file:\/\//, '');
  const nm = url.lastIndexOf('node_modules/');
  const where = nm >= 0 ? url.slice(nm + 'node_modules/'.length) : url.includes('/dist/') ? url.slice(url.indexOf('/dist/') + 6) : basename(url);
  return `${fn} ${where}:${f.lineNumber + 1}`;
}

export function summarise(file: string, top: number): { activeMs: number; text: string } {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  // Self time per node from the sample timeline (more exact than hitCount x interval).
  const selfUs = new Map<number, number>();
  for (let i = 0; i < prof.samples.length; i++) {
    const id = prof.samples[i]!;
    const dt = prof.timeDeltas[i + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
  }
  const byFrame = new Map<string, number>();
  let idle = 0;
  let gc = 0;
  let program = 0;
  let total = 0;
  for (const node of prof.nodes) {
    const us = selfUs.get(node.id) ?? 0;
    total += us;
    const fn = node.callFrame.functionName;
    if (fn === '(idle)') idle += us;
    else if (fn === '(garbage collector)') gc += us;
    else if (fn === '(program)') program += us;
    else byFrame.set(frameName(node.callFrame), (byFrame.get(frameName(node.callFrame)) ?? 0) + us);
  }
  const active = total - idle;
  const ms = (us: number): string => (us / 1000).toFixed(0).padStart(6);
  const pct = (us: number): string => `${((us / Math.max(1, active)) * 100).toFixed(1).padStart(5)}%`;
  const lines = [
    `${file}: ${(total / 1e6).toFixed(1)} s sampled, ${(active / 1e6).toFixed(2)} s not idle; of that GC ${pct(gc).trim()}, (program) ${pct(program).trim()}`,
  ];
  for (const [name, us] of [...byFrame].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${ms(us)} ms ${pct(us)}  ${name}`);
  return { activeMs: active / 1000, text: lines.join('\n') };
}

function main(): void {
  const args = process.argv.slice(2);
  const dir = args.find((a) => !a.startsWith('--'));
  if (!dir) {
    process.stderr.write('usage: prof-summary DIR [--top N] [--min-ms M]\n');
    process.exit(2);
  }
  const opt = (flag: string, def: number): number => {
    const i = args.indexOf(flag);
    return i >= 0 ? Number(args[i + 1]) : def;
  };
  const top = opt('--top', 15);
  const minMs = opt('--min-ms', 50);
  for (const file of findProfiles(dir)) {
    const s = summarise(file, top);
    if (s.activeMs < minMs) continue;
    process.stdout.write(s.text.replace(file, relative(process.cwd(), file)) + '\n\n');
  }
}

main();
