import { describe, expect, it } from 'vitest';
import { checkHistory, formatOp, type Op, type Value } from './support/linearizability.js';
import { mulberry32 as rng } from './sim/prng.js';

// ---------------------------------------------------------------------------
// Small builders for hand-written histories. Times are [invoke, complete].

type Outcome = Op['outcome'];
const K = 'k';

function put(process: number, value: Value, invoke: number, complete: number | null, outcome: Outcome = 'ok', key = K): Op {
  return { key, process, kind: 'put', value, invoke, complete: outcome === 'unknown' ? null : complete, outcome };
}
function del(process: number, invoke: number, complete: number | null, outcome: Outcome = 'ok', key = K): Op {
  return { key, process, kind: 'delete', invoke, complete: outcome === 'unknown' ? null : complete, outcome };
}
function get(process: number, result: Value, invoke: number, complete: number, key = K): Op {
  return { key, process, kind: 'get', result, invoke, complete, outcome: 'ok' };
}
function cput(
  process: number,
  expectV: Value,
  value: Value,
  invoke: number,
  complete: number | null,
  outcome: Outcome = 'ok',
  key = K,
): Op {
  return { key, process, kind: 'cput', expect: expectV, value, invoke, complete: outcome === 'unknown' ? null : complete, outcome };
}

function expectOk(ops: Op[], opts?: Parameters<typeof checkHistory>[1]) {
  const r = checkHistory(ops, opts);
  expect(r.explanation ?? '', r.explanation).toBe('');
  expect(r.ok).toBe(true);
  expect(r.timedOut).toBeUndefined();
  return r;
}
function expectViolation(ops: Op[], opts?: Parameters<typeof checkHistory>[1]) {
  const r = checkHistory(ops, opts);
  expect(r.ok).toBe(false);
  expect(r.timedOut).toBeUndefined();
  expect(r.failedKey).toBeDefined();
  expect(r.explanation).toBeTruthy();
  return r;
}

// ---------------------------------------------------------------------------
const int = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}

// ---------------------------------------------------------------------------
// Simulation of a real atomic key-value store: every op gets a true
// linearization point inside its interval; results are computed by executing
// the ops in that order. Unknown-outcome writes take effect (or not) at an
// arbitrary time after their invocation, possibly long after the client gave up.

interface SimOptions {
  processes: number;
  keys: number;
  ops: number;
  unknownRate?: number;
  /** Fraction of put/delete that fail cleanly (definitely not applied). */
  failRate?: number;
  /** When set, values come from this many fixed strings instead of being unique. */
  valueDomain?: number;
}

function simulate(seed: number, o: SimOptions): Op[] {
  const r = rng(seed);
  const keys = Array.from({ length: o.keys }, (_, i) => `key${i}`);
  const free = new Array<number>(o.processes).fill(0);
  const written = new Map<string, Value[]>(keys.map((k) => [k, [null]]));
  interface Planned {
    op: Op;
    at: number | null; // linearization point, null = never takes effect
  }
  const plan: Planned[] = [];
  let counter = 0;
  const newValue = () => (o.valueDomain ? `v${int(r, 1, o.valueDomain)}` : `v${++counter}`);
  for (let n = 0; n < o.ops; n++) {
    // next op comes from the process that is free first
    let process = 0;
    for (let q = 1; q < o.processes; q++) if (free[q]! < free[process]!) process = q;
    const key = pick(r, keys);
    const invoke = free[process]! + r() * 3;
    const at = invoke + r() * 6;
    const complete = at + r() * 6;
    free[process] = complete + r() * 2;
    const roll = r();
    let op: Op;
    if (roll < 0.35) op = { key, process, kind: 'put', value: newValue(), invoke, complete, outcome: 'ok' };
    else if (roll < 0.7) op = { key, process, kind: 'get', invoke, complete, outcome: 'ok' };
    else if (roll < 0.9) {
      const prior = written.get(key)!;
      // bias towards recent values so that a fair share of cputs succeed
      const expectV = prior[Math.max(0, prior.length - 1 - int(r, 0, 2))]!;
      op = { key, process, kind: 'cput', expect: expectV, value: newValue(), invoke, complete, outcome: 'ok' };
    } else op = { key, process, kind: 'delete', invoke, complete, outcome: 'ok' };
    if (op.kind === 'put' || op.kind === 'cput') written.get(key)!.push(op.value!);

    const isWrite = op.kind !== 'get';
    if (r() < (o.unknownRate ?? 0)) {
      op.outcome = 'unknown';
      op.complete = null;
      // took effect with probability 1/2, possibly long after the client gave up
      plan.push({ op, at: r() < 0.5 ? invoke + r() * 200 : null });
    } else if (isWrite && op.kind !== 'cput' && r() < (o.failRate ?? 0)) {
      op.outcome = 'fail';
      plan.push({ op, at: null });
    } else {
      plan.push({ op, at });
    }
  }
  // Execute in linearization order against a real map.
  const store = new Map<string, Value>();
  const applied = plan.filter((p) => p.at !== null).sort((a, b) => a.at! - b.at!);
  for (const { op } of applied) {
    const cur = store.get(op.key) ?? null;
    switch (op.kind) {
      case 'put':
        store.set(op.key, op.value!);
        break;
      case 'delete':
        store.set(op.key, null);
        break;
      case 'get':
        if (op.outcome === 'ok') op.result = cur;
        break;
      case 'cput':
        if (cur === op.expect) store.set(op.key, op.value!);
        else if (op.outcome === 'ok') op.outcome = 'fail';
        // an unknown cput that would mismatch simply has no effect
        break;
    }
  }
  return plan.map((p) => p.op);
}

// ---------------------------------------------------------------------------
// Brute-force reference for tiny single-key histories: try every subset of the
// unknown writes and every order that respects real time.

function bruteForce(ops: Op[], initial: Value = null): boolean {
  const kept = ops.filter((o) => {
    if (o.kind === 'get') return o.outcome === 'ok';
    if (o.outcome === 'fail') return o.kind === 'cput';
    return true;
  });
  const must = kept.filter((o) => o.outcome !== 'unknown');
  const unknown = kept.filter((o) => o.outcome === 'unknown');
  const end = (o: Op) => (o.outcome === 'unknown' || o.complete === null ? Infinity : o.complete);
  const apply = (o: Op, s: Value): Value | undefined => {
    switch (o.kind) {
      case 'put':
        return o.value ?? null;
      case 'delete':
        return null;
      case 'get':
        return s === (o.result ?? null) ? s : undefined;
      case 'cput':
        if (o.outcome === 'fail') return s !== (o.expect ?? null) ? s : undefined;
        return s === (o.expect ?? null) ? (o.value ?? null) : undefined;
    }
  };
  const search = (rest: Op[], s: Value): boolean => {
    if (rest.length === 0) return true;
    for (const o of rest) {
      // o may go next only if nothing remaining completed strictly before it started
      if (rest.some((x) => x !== o && end(x) < o.invoke)) continue;
      const ns = apply(o, s);
      if (ns === undefined) continue;
      if (search(rest.filter((x) => x !== o), ns)) return true;
    }
    return false;
  };
  for (let mask = 0; mask < 1 << unknown.length; mask++) {
    const chosen = unknown.filter((_, i) => mask & (1 << i));
    if (search([...must, ...chosen], initial)) return true;
  }
  return false;
}

function randomTinyHistory(seed: number, unknownRate = 0.15): Op[] {
  const r = rng(seed);
  const values: Value[] = ['a', 'b', null];
  const n = int(r, 2, 7);
  const ops: Op[] = [];
  for (let i = 0; i < n; i++) {
    const invoke = int(r, 0, 12);
    const complete = invoke + int(r, 0, 6);
    const process = int(r, 0, 2);
    const roll = r();
    const outcome: Outcome = r() < unknownRate ? 'unknown' : r() < 0.08 ? 'fail' : 'ok';
    const c = outcome === 'unknown' ? null : complete;
    if (roll < 0.3) ops.push({ key: K, process, kind: 'put', value: pick(r, ['a', 'b']), invoke, complete: c, outcome });
    else if (roll < 0.6)
      ops.push({ key: K, process, kind: 'get', result: pick(r, values), invoke, complete: c, outcome: outcome === 'unknown' ? 'ok' : outcome });
    else if (roll < 0.85)
      ops.push({ key: K, process, kind: 'cput', expect: pick(r, values), value: pick(r, ['a', 'b']), invoke, complete: c, outcome });
    else ops.push({ key: K, process, kind: 'delete', invoke, complete: c, outcome });
  }
  // an 'ok' get that was turned into 'unknown' above has no complete time; fix it up
  for (const o of ops) if (o.outcome === 'ok' && o.complete === null) o.complete = o.invoke + 1;
  return ops;
}

// ---------------------------------------------------------------------------

describe('linearizability checker: hand-written histories', () => {
  it('accepts an empty history and a purely sequential one', () => {
    expect(checkHistory([])).toEqual({ ok: true, keys: 0, ops: 0 });
    expectOk([get(1, null, 0, 1), put(1, 'a', 2, 3), get(2, 'a', 4, 5), del(1, 6, 7), get(2, null, 8, 9)]);
  });

  it('honours the initial value', () => {
    expectOk([get(1, 'x', 0, 1)], { initial: 'x' });
    expectViolation([get(1, 'x', 0, 1)]);
  });

  it('rejects a stale read after a completed write', () => {
    const r = expectViolation([put(1, 'a', 0, 1), put(1, 'b', 2, 3), get(2, 'a', 4, 5)]);
    expect(r.failedKey).toBe(K);
    expect(r.explanation).toContain('get() -> "a"');
    expect(r.explanation).toContain('holds "b"');
  });

  it('rejects a lost write: a later read returns an older value', () => {
    expectViolation([
      put(1, 'v1', 0, 2),
      get(2, 'v1', 3, 4),
      put(1, 'v2', 5, 6), // acknowledged
      get(3, 'v1', 10, 11), // ... but the next read goes back in time
    ]);
  });

  it('rejects a read of a value that was never written', () => {
    const r = expectViolation([put(1, 'a', 0, 5), get(2, 'zzz', 1, 6)]);
    expect(r.explanation).toContain('"zzz"');
  });

  it('rejects two successful cputs from the same expected value', () => {
    expectViolation([put(1, 'a', 0, 1), cput(2, 'a', 'b', 2, 10), cput(3, 'a', 'c', 3, 9)]);
    // ... but one success and one mismatch is fine, in either real-time arrangement
    expectOk([put(1, 'a', 0, 1), cput(2, 'a', 'b', 2, 10), cput(3, 'a', 'c', 3, 9, 'fail')]);
    expectOk([put(1, 'a', 0, 1), cput(2, 'a', 'b', 2, 4), cput(3, 'a', 'c', 5, 9, 'fail')]);
  });

  it('treats a failed cput as a completed read of a different value', () => {
    // register is certainly "a" throughout the cput: a mismatch is impossible
    expectViolation([put(1, 'a', 0, 1), cput(2, 'a', 'b', 2, 3, 'fail')]);
    // absent-cell cput: expect null
    expectOk([cput(1, null, 'a', 0, 1), cput(2, null, 'b', 2, 3, 'fail'), get(1, 'a', 4, 5)]);
    expectViolation([cput(1, null, 'a', 0, 1), cput(2, null, 'b', 2, 3)]);
  });

  it('accepts concurrent overlapping ops in any order', () => {
    // the two puts overlap each other and both reads; either order of the puts is allowed
    const base = [put(1, 'a', 0, 10), put(2, 'b', 1, 9)];
    expectOk([...base, get(3, 'a', 2, 8), get(4, 'b', 3, 7)]);
    expectOk([...base, get(3, 'b', 2, 8), get(4, 'a', 3, 7)]);
    expectOk([...base, get(3, null, 2, 8), get(4, 'a', 3, 7)]);
    // after both puts complete, only one of the two values may persist in subsequent reads
    expectOk([...base, get(3, 'a', 11, 12), get(3, 'a', 13, 14)]);
    expectViolation([...base, get(3, 'a', 11, 12), get(4, 'b', 13, 14)]);
  });

  it('treats equal timestamps as concurrent', () => {
    expectOk([put(1, 'a', 0, 5), put(2, 'b', 5, 6), get(3, 'a', 6, 7)]);
  });

  it('accepts a read of a value from an unknown write, at any later time', () => {
    expectOk([put(1, 'a', 0, 1), put(2, 'b', 2, null, 'unknown'), get(3, 'a', 50, 51), get(3, 'b', 100, 101)]);
    // an unknown write may also never have happened
    expectOk([put(1, 'a', 0, 1), put(2, 'b', 2, null, 'unknown'), get(3, 'a', 100, 101)]);
    // but it cannot take effect before it was invoked
    expectViolation([put(1, 'a', 0, 1), get(3, 'b', 2, 3), put(2, 'b', 10, null, 'unknown')]);
    // and it takes effect at most once: b, then a, then b again is impossible
    const twice = expectViolation([
      put(2, 'b', 0, null, 'unknown'),
      get(3, 'b', 10, 11),
      put(1, 'a', 12, 13),
      get(3, 'b', 20, 21),
    ]);
    expect(twice.explanation).toContain('more than once');
    // two unknown writes of the same value can account for two reappearances
    expectOk([
      put(2, 'b', 0, null, 'unknown'),
      put(4, 'b', 1, null, 'unknown'),
      get(3, 'b', 10, 11),
      put(1, 'a', 12, 13),
      get(3, 'b', 20, 21),
    ]);
  });

  it('handles unknown cputs and deletes', () => {
    expectOk([put(1, 'a', 0, 1), cput(2, 'a', 'b', 2, null, 'unknown'), get(3, 'b', 10, 11)]);
    expectOk([put(1, 'a', 0, 1), cput(2, 'a', 'b', 2, null, 'unknown'), get(3, 'a', 10, 11)]);
    // an unknown cput cannot succeed from the wrong value
    expectViolation([put(1, 'x', 0, 1), cput(2, 'a', 'b', 2, null, 'unknown'), get(3, 'b', 10, 11)]);
    expectOk([put(1, 'a', 0, 1), del(2, 2, null, 'unknown'), get(3, null, 10, 11), get(3, null, 12, 13)]);
    // a chain of unknown cputs, observed only at its end
    expectOk([
      put(1, 'a', 0, 1),
      cput(2, 'a', 'b', 2, null, 'unknown'),
      cput(3, 'b', 'c', 3, null, 'unknown'),
      get(4, 'a', 4, 5),
      get(4, 'c', 30, 31),
    ]);
    expectViolation([
      put(1, 'a', 0, 1),
      cput(2, 'a', 'b', 2, null, 'unknown'),
      cput(3, 'b', 'c', 3, null, 'unknown'),
      get(4, 'c', 30, 31),
      get(4, 'b', 40, 41),
    ]);
    // an ok op without a completion time must still take effect, at any time after its invocation
    expectOk([put(1, 'a', 0, null), get(2, null, 5, 6), get(2, 'a', 7, 8)]);
    expectViolation([cput(1, 'x', 'y', 0, null), get(2, null, 5, 6)]);
  });

  it('drops definitely-failed puts/deletes/gets and unknown gets', () => {
    const r = expectOk([
      put(1, 'a', 0, 1),
      put(2, 'b', 2, 3, 'fail'),
      del(2, 4, 5, 'fail'),
      { key: K, process: 3, kind: 'get', invoke: 6, complete: 7, outcome: 'fail' },
      { key: K, process: 3, kind: 'get', invoke: 6, complete: null, outcome: 'unknown' },
      get(3, 'a', 8, 9),
    ]);
    expect(r.ops).toBe(2);
    expectViolation([put(1, 'a', 0, 1), put(2, 'b', 2, 3, 'fail'), get(3, 'b', 8, 9)]);
  });

  it('checks keys independently and names the failing key', () => {
    const ops = [
      put(1, 'a', 0, 1, 'ok', 'x'),
      put(1, 'a', 0, 1, 'ok', 'y'),
      get(2, 'a', 2, 3, 'x'),
      get(2, null, 2, 3, 'y'), // y was definitely written before
    ];
    const r = expectViolation(ops);
    expect(r.keys).toBe(2);
    expect(r.failedKey).toBe('y');
    expect(r.explanation).toContain('"y"');
    // the same shape is legal when the ops are on different keys
    expectOk([put(1, 'a', 0, 1, 'ok', 'x'), get(2, null, 2, 3, 'y')]);
  });

  it('explains a violation with the linearized prefix and the blocked ops', () => {
    const ops = [put(1, 'a', 0, 1), get(2, 'a', 2, 3), put(1, 'b', 4, 5), get(2, 'a', 6, 7)];
    const r = expectViolation(ops);
    const text = r.explanation!;
    expect(text).toContain('3 of its 4');
    expect(text).toContain(formatOp(ops[2]!, 2)); // last op of the prefix
    expect(text).toContain(formatOp(ops[3]!, 3)); // the op that cannot follow
    expect(text).toMatch(/read "a" but the register holds "b"/);
  });

  it('reports a timeout as not ok, distinctly from a violation', () => {
    const ops = simulate(7, { processes: 4, keys: 1, ops: 3000 });
    const r = checkHistory(ops, { timeoutMs: 0 });
    expect(r.ok).toBe(false);
    expect(r.timedOut).toBe(true);
    expect(r.explanation).toMatch(/TIMED OUT/);
    expect(r.explanation).toMatch(/NOT verified/);
  });

  it('rejects malformed ops', () => {
    expect(() => checkHistory([put(1, 'a', 5, 1)])).toThrow(/before it is invoked/);
  });
});

describe('linearizability checker: randomized', () => {
  it.each([0.15, 0.4])('agrees with a brute-force search on tiny random histories (unknown rate %s)', (rate) => {
    let linearizable = 0;
    for (let seed = 1; seed <= 1500; seed++) {
      const ops = randomTinyHistory(seed, rate);
      const want = bruteForce(ops);
      const got = checkHistory(ops);
      if (got.ok !== want || got.timedOut) {
        throw new Error(`seed ${seed}: checker says ${got.ok}, brute force ${want}\n${ops.map((o, i) => formatOp(o, i)).join('\n')}`);
      }
      if (want) linearizable++;
    }
    // make sure the generator exercises both answers
    expect(linearizable).toBeGreaterThan(100);
    expect(linearizable).toBeLessThan(1400);
  });

  it('accepts simulated atomic-register histories and rejects a corrupted read', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const ops = simulate(seed, {
        processes: int(rng(seed), 2, 8),
        keys: 3,
        ops: 300,
        unknownRate: 0.05,
        failRate: 0.05,
        valueDomain: seed % 2 === 0 ? 3 : undefined,
      });
      const r = checkHistory(ops);
      expect(r.ok, `seed ${seed}: ${r.explanation}`).toBe(true);

      // corrupt one successful read: it now returns a value nobody ever wrote
      const reads = ops.map((o, i) => [o, i] as const).filter(([o]) => o.kind === 'get' && o.outcome === 'ok');
      const [victim, at] = reads[Math.floor(rng(seed * 31)() * reads.length)]!;
      const corrupted = ops.slice();
      corrupted[at] = { ...victim, result: 'never-written' };
      const bad = checkHistory(corrupted);
      expect(bad.ok).toBe(false);
      expect(bad.timedOut).toBeUndefined();
      expect(bad.failedKey).toBe(victim.key);
      expect(bad.explanation).toContain('"never-written"');
    }
  });

  it('rejects a simulated history in which an acknowledged write is lost', () => {
    for (let seed = 100; seed < 110; seed++) {
      const ops = simulate(seed, { processes: 4, keys: 1, ops: 200 });
      expect(checkHistory(ops).ok).toBe(true);
      // append, strictly after everything else: a write, then a read that does not see it
      const t = Math.max(...ops.map((o) => o.complete ?? o.invoke)) + 10;
      const lost = [...ops, put(0, 'fresh', t, t + 1, 'ok', 'key0'), get(1, null, t + 2, t + 3, 'key0')];
      expect(checkHistory(lost).ok).toBe(false);
    }
  });

  it('checks ~5,000 ops over several keys with 8 processes and unknown outcomes', () => {
    const ops = simulate(2024, { processes: 8, keys: 6, ops: 5000, unknownRate: 0.02, failRate: 0.02 });
    const r = checkHistory(ops, { timeoutMs: 60_000 });
    expect(r.timedOut).toBeUndefined();
    expect(r.ok, r.explanation).toBe(true);
    expect(r.keys).toBe(6);

    // the same with a tiny value domain (reads carry less information)
    const small = simulate(99, { processes: 8, keys: 5, ops: 5000, unknownRate: 0.05, valueDomain: 2 });
    const r2 = checkHistory(small, { timeoutMs: 60_000 });
    expect(r2.timedOut).toBeUndefined();
    expect(r2.ok, r2.explanation).toBe(true);

    // and a violation near the end of the small-domain history is still found
    const at = small.findIndex((o, i) => i > 4800 && o.kind === 'get' && o.outcome === 'ok');
    const corrupted = small.slice();
    corrupted[at] = { ...small[at]!, result: 'never-written' };
    const r3 = checkHistory(corrupted, { timeoutMs: 60_000 });
    expect(r3.timedOut).toBeUndefined();
    expect(r3.ok).toBe(false);
    expect(r3.failedKey).toBe(small[at]!.key);
  });
});
