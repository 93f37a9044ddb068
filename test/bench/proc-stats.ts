// CPU accounting from /proc (Linux only; elsewhere every sample is null and the bench just omits it).
// Used to tell where the time goes during a bench case: which process, and inside a process which
// thread (the JS main thread, tablet worker threads, the ZeroMQ I/O thread, libuv's pool).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond = 100;
try {
  ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // keep the usual Linux default
}

/** utime + stime (seconds) from a /proc/.../stat line; `comm` may contain spaces and parentheses. */
function parseStat(text: string): { comm: string; cpuSec: number } {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const rest = text.slice(close + 2).split(' '); // rest[0] is field 3 (state)
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return { comm: text.slice(open + 1, close), cpuSec: (utime + stime) / ticksPerSecond };
}

export interface ProcSample {
  pid: number;
  /** CPU seconds of the whole process (threads that already exited included). */
  cpuSec: number;
  /** CPU seconds per live thread, keyed by tid. */
  threads: Map<number, { comm: string; cpuSec: number }>;
  /** Context switches (voluntary + involuntary) summed over the live threads. */
  ctxSwitches: number;
}

/** voluntary + nonvoluntary context switches of one thread, from /proc/.../status. */
function contextSwitches(statusText: string): number {
  let n = 0;
  for (const m of statusText.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)/gm)) n += Number(m[1]);
  return n;
}

export function sampleProcess(pid: number | undefined): ProcSample | null {
  if (pid === undefined) return null;
  try {
    const cpuSec = parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).cpuSec;
    const threads = new Map<number, { comm: string; cpuSec: number }>();
    let ctxSwitches = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        threads.set(Number(tid), parseStat(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')));
        ctxSwitches += contextSwitches(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'));
      } catch {
        // the thread ended between readdir and read
      }
    }
    return { pid, cpuSec, threads, ctxSwitches };
  } catch {
    return null;
  }
}

export interface ThreadShare {
  /** 'main' (the JS main thread), 'zmq-io', or 'thread <tid>' for the other (worker / pool) threads. */
  name: string;
  pct: number; // % of one core
}

export interface ProcUsage {
  pct: number; // % of one core over the window (100 = one core fully busy)
  /** The busiest threads, most CPU first (at most 4, each at least 1 %). */
  threads: ThreadShare[];
  /** Context switches of the process's threads during the window (threads that came and went not counted). */
  ctxSwitches: number;
}

/** CPU use between two samples of the same process over `wallMs`. */
export function usageBetween(a: ProcSample | null, b: ProcSample | null, wallMs: number): ProcUsage | null {
  if (a === null || b === null || wallMs <= 0) return null;
  const pct = ((b.cpuSec - a.cpuSec) / (wallMs / 1000)) * 100;
  const threads: ThreadShare[] = [];
  for (const [tid, t] of b.threads) {
    const before = a.threads.get(tid)?.cpuSec ?? 0;
    const share = ((t.cpuSec - before) / (wallMs / 1000)) * 100;
    const name = tid === b.pid ? 'main' : t.comm.startsWith('ZMQbg/IO') ? 'zmq-io' : `thread ${tid}`;
    if (share >= 1) threads.push({ name, pct: round1(share) });
  }
  threads.sort((x, y) => y.pct - x.pct);
  return { pct: round1(pct), threads: threads.slice(0, 4), ctxSwitches: Math.max(0, b.ctxSwitches - a.ctxSwitches) };
}

export interface MachineSample {
  busy: number;
  total: number;
  /** Jiffies the hypervisor ran other machines while this one wanted the CPU (counted in busy). */
  steal: number;
}

/** Whole-machine CPU jiffies from /proc/stat (idle and iowait count as not busy). */
export function sampleMachine(): MachineSample | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((s, x) => s + x, 0);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    return { busy: total - idle, total, steal: f[7] ?? 0 };
  } catch {
    return null;
  }
}

/** Machine busy % (of all cores) between two samples. */
export function machineBusyPct(a: MachineSample | null, b: MachineSample | null): number | null {
  if (a === null || b === null || b.total === a.total) return null;
  return round1(((b.busy - a.busy) / (b.total - a.total)) * 100);
}

/** % of all cores stolen by the hypervisor between two samples: CPU this machine wanted and did not get. */
export function machineStealPct(a: MachineSample | null, b: MachineSample | null): number | null {
  if (a === null || b === null || b.total === a.total) return null;
  return round1(((b.steal - a.steal) / (b.total - a.total)) * 100);
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
