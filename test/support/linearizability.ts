/**
 * Linearizability checker for histories of operations on independent registers
 * (the cells of a key-value store).
 *
 * Method (Wing & Gong, as refined by Lowe, Knossos and Porcupine):
 *
 *  - P-compositionality: a history over independent registers is linearizable iff
 *    the sub-history of every key is, so each key is checked on its own.
 *  - Per key, a depth-first search picks the next linearization point among the
 *    pending ops that may go next: an op may be linearized next only if it was
 *    invoked no later than the earliest completion time among the completed ops
 *    that are not yet linearized (otherwise some op that finished before it
 *    started would end up after it). Equal times count as concurrent.
 *  - Every search configuration (set of linearized ops, register value) is
 *    memoized so that it is expanded once.
 *  - Ops whose outcome is unknown (timeouts, crashes) may have taken effect at any
 *    point after their invocation, or never. Unknown reads are dropped. Unknown
 *    writes never have to be linearized: the search succeeds once every op with a
 *    known outcome is linearized. Because an unknown op constrains nobody, a
 *    configuration that used a subset of the unknown writes another one used
 *    (same completed ops, same value) can do everything the other can, so the
 *    memo table prunes such dominated configurations.
 *  - Partial-order reductions specific to registers: a get (or failed cput) that
 *    is legal in the current state is linearized at once without branching; an
 *    unknown op is only tried when some pending op would observe the value it
 *    writes, and only one of several interchangeable unknown ops is tried. For
 *    the memo table, unknown ops are counted per class of identical effect, and
 *    those whose value no pending op can observe any more are forgotten.
 *
 * Completeness sketch for the reductions: among configurations visited by a
 * failing search, take one with a successful completion of minimal length d
 * (preferring, at equal d, one not reached by an unknown op). A shortest
 * completion never has an unknown op followed by a blind write or at its end
 * (dropping the unknown op gives a shorter one), a legal get can be moved to the
 * front without changing the length, and interchangeable unknown ops can be
 * swapped; so some allowed child has a completion of length d - 1, and that child
 * or a configuration dominating it was visited - a contradiction.
 *
 * Semantics of the register model:
 *   put(v)            sets the value to v
 *   delete            sets the value to null (absent)
 *   get -> r          (ok) the value is r; nothing changes
 *   cput(e -> v) ok   the value was e (null = absent) and becomes v
 *   cput(e -> v) fail the value was not e; nothing changes (a completed op)
 * Outcome 'fail' of put / delete / get means "definitely not applied": dropped.
 */

export type Value = string | null; // null = absent cell
export type OpKind = 'put' | 'get' | 'cput' | 'delete';

export interface Op {
  key: string;
  process: number;
  kind: OpKind;
  /** put: value written; cput: new value. */
  value?: Value;
  /** cput: expected old value (null = must be absent). */
  expect?: Value;
  /** Time (monotonic, any unit) the call started. */
  invoke: number;
  /** Time it returned; null (or Infinity) when the outcome is unknown. */
  complete: number | null;
  outcome: 'ok' | 'fail' | 'unknown';
  /** get: value read (only meaningful when ok). */
  result?: Value;
}

export interface CheckResult {
  /** True iff every key's history is linearizable. False on a violation or a timeout. */
  ok: boolean;
  /** Number of distinct keys in the history. */
  keys: number;
  /** Number of ops actually checked (after dropping failed put/delete/get and unknown gets). */
  ops: number;
  /** The key that is not linearizable (or whose search timed out). */
  failedKey?: string;
  /** Human-readable account of the violation or of the timeout. */
  explanation?: string;
  /** The search ran out of time: the history was neither verified nor refuted. */
  timedOut?: boolean;
}

export interface CheckOptions {
  /** Value of every cell before the history starts (default null = absent). */
  initial?: Value;
  /** Budget for the whole check, in milliseconds (default 10,000). */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;

const RELAXED_PASSED =
  '\n(A relaxed check in which unknown-outcome writes may take effect more than once does pass for this key: ' +
  'a violation needs some such write to take effect twice.)';

// Kinds as small integers for the hot loop.
const K_PUT = 0;
const K_DELETE = 1;
const K_GET = 2;
const K_CPUT = 3; // ok, or unknown and assumed to have succeeded
const K_CPUT_FAIL = 4; // completed, observed a mismatch

interface Prepared {
  op: Op;
  /** Position in the input array (used in explanations). */
  index: number;
  kind: number;
  /** Interned ids: written value / read result / expected value. */
  value: number;
  expect: number;
  invoke: number;
  /** Completion time; Infinity when unbounded. */
  complete: number;
  /** Must be linearized (known outcome); otherwise may be linearized or omitted. */
  must: boolean;
}

/** Check a history; see the module comment for the model. */
export function checkHistory(ops: Op[], opts: CheckOptions = {}): CheckResult {
  const initial: Value = opts.initial === undefined ? null : opts.initial;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const started = Date.now();
  const deadline = started + timeoutMs;

  const byKey = new Map<string, { ops: { op: Op; index: number }[] }>();
  for (let index = 0; index < ops.length; index++) {
    const op = ops[index]!;
    validate(op, index);
    let entry = byKey.get(op.key);
    if (!entry) {
      entry = { ops: [] };
      byKey.set(op.key, entry);
    }
    entry.ops.push({ op, index });
  }

  let checked = 0;
  const perKey: { key: string; prepared: Prepared[]; names: Value[]; initialId: number }[] = [];
  for (const [key, entry] of byKey) {
    const interner = new Interner();
    const initialId = interner.id(initial);
    const prepared: Prepared[] = [];
    for (const { op, index } of entry.ops) {
      const p = prepare(op, index, interner);
      if (p) prepared.push(p);
    }
    checked += prepared.length;
    perKey.push({ key, prepared, names: interner.names, initialId });
  }

  const result: CheckResult = { ok: true, keys: byKey.size, ops: checked };
  const fail = (kc: KeyChecker, explanation: string, timedOut: boolean): CheckResult => {
    result.ok = false;
    result.failedKey = kc.key;
    result.explanation = explanation;
    if (timedOut) result.timedOut = true;
    return result;
  };
  const timeout = (kc: KeyChecker, best: Best | null, note: string): CheckResult =>
    fail(
      kc,
      `TIMED OUT after ${Date.now() - started} ms (budget ${timeoutMs} ms) while checking key ${show(kc.key)} ` +
        `(${kc.n + kc.u} ops, ${kc.u} of them unknown-outcome writes): the history was NOT verified - ` +
        `it is neither proven linearizable nor shown to violate linearizability.` +
        note +
        (best ? `\n${describeProgress(kc, best)}` : ''),
      true,
    );

  // Phase 1, per key. Without unknown-outcome writes, one exact search decides.
  // Otherwise a relaxed search first (unknown writes may take effect more than
  // once: a weaker condition, so its failure proves a violation, and it is cheap
  // because it does not track which unknown writes were used), then a bounded
  // exact search, which settles linearizable keys quickly. Keys still undecided
  // wait for phase 2, so that a definite violation on any key is found before
  // the time budget goes to a hard key.
  const undecided: KeyChecker[] = [];
  for (const { key, prepared, names, initialId } of perKey) {
    const kc = new KeyChecker(key, prepared, initialId, names);
    if (kc.u === 0) {
      const r = kc.search(false, Infinity, deadline);
      if (r.status === 'ok') continue;
      if (r.status === 'violation') return fail(kc, describeViolation(kc, r.best!), false);
      return timeout(kc, r.best, '');
    }
    const steps = 200_000 + 100 * (kc.n + kc.u);
    const relaxed = kc.search(true, steps, deadline);
    if (relaxed.status === 'timeout') return timeout(kc, relaxed.best, '');
    if (relaxed.status === 'violation') {
      return fail(
        kc,
        describeViolation(kc, relaxed.best!) +
          '\n(Found by a relaxed search that even lets unknown-outcome writes take effect repeatedly.)',
        false,
      );
    }
    const r = kc.search(false, steps, deadline);
    if (r.status === 'ok') continue;
    if (r.status === 'timeout') return timeout(kc, r.best, RELAXED_PASSED);
    if (r.status === 'violation') return fail(kc, describeViolation(kc, r.best!) + RELAXED_PASSED, false);
    undecided.push(kc);
  }
  // Phase 2: exact search without a step bound.
  for (const kc of undecided) {
    const r = kc.search(false, Infinity, deadline);
    if (r.status === 'ok') continue;
    if (r.status === 'violation') return fail(kc, describeViolation(kc, r.best!) + RELAXED_PASSED, false);
    return timeout(kc, r.best, RELAXED_PASSED);
  }
  return result;
}

function validate(op: Op, index: number): void {
  if (typeof op.key !== 'string') throw new TypeError(`op #${index}: key must be a string`);
  if (!Number.isFinite(op.invoke)) throw new TypeError(`op #${index}: invoke must be a finite number`);
  if (op.complete !== null && op.complete !== undefined && Number.isNaN(op.complete)) {
    throw new TypeError(`op #${index}: complete is NaN`);
  }
  if (op.outcome !== 'unknown' && op.complete !== null && op.complete !== undefined && op.complete < op.invoke) {
    throw new RangeError(`op #${index}: completes (${op.complete}) before it is invoked (${op.invoke})`);
  }
  if (op.kind !== 'put' && op.kind !== 'get' && op.kind !== 'cput' && op.kind !== 'delete') {
    throw new TypeError(`op #${index}: unknown kind ${String(op.kind)}`);
  }
  if (op.outcome !== 'ok' && op.outcome !== 'fail' && op.outcome !== 'unknown') {
    throw new TypeError(`op #${index}: unknown outcome ${String(op.outcome)}`);
  }
}

class Interner {
  readonly names: Value[] = [null];
  private readonly ids = new Map<string, number>();
  id(v: Value | undefined): number {
    if (v === null || v === undefined) return 0;
    let id = this.ids.get(v);
    if (id === undefined) {
      id = this.names.length;
      this.names.push(v);
      this.ids.set(v, id);
    }
    return id;
  }
}

function prepare(op: Op, index: number, interner: Interner): Prepared | null {
  const unknown = op.outcome === 'unknown';
  let kind: number;
  switch (op.kind) {
    case 'put':
      if (op.outcome === 'fail') return null;
      kind = K_PUT;
      break;
    case 'delete':
      if (op.outcome === 'fail') return null;
      kind = K_DELETE;
      break;
    case 'get':
      if (op.outcome !== 'ok') return null; // failed or unknown reads tell nothing
      kind = K_GET;
      break;
    case 'cput':
      kind = op.outcome === 'fail' ? K_CPUT_FAIL : K_CPUT;
      break;
  }
  const complete = unknown || op.complete === null || op.complete === undefined ? Infinity : op.complete;
  return {
    op,
    index,
    kind,
    value: interner.id(kind === K_GET ? op.result : op.value),
    expect: interner.id(op.expect),
    invoke: op.invoke,
    complete,
    must: !unknown,
  };
}

function isBlind(o: Prepared): boolean {
  return o.kind === K_PUT || o.kind === K_DELETE;
}

/** New register value after applying `o` to `state`, or -1 when `o` cannot happen in `state`. */
function step(o: Prepared, state: number): number {
  switch (o.kind) {
    case K_PUT:
      return o.value;
    case K_DELETE:
      return 0;
    case K_GET:
      return state === o.value ? state : -1;
    case K_CPUT:
      return state === o.expect ? o.value : -1;
    default: // K_CPUT_FAIL
      return state !== o.expect ? state : -1;
  }
}

interface Frame {
  /** Encoded candidates: i >= 0 is must[i], ~j (< 0) is unknown[j]. */
  cands: number[];
  next: number;
  /** Op applied to reach this frame (encoded as above), or null at the root. */
  applied: number | null;
  prevState: number;
  prevP: number;
}

/** The first configuration reached with the most completed ops linearized (for explanations). */
interface Best {
  /** Completed ops linearized. */
  count: number;
  /** Register value there (interned id). */
  state: number;
  /** Last few ops of the linearized prefix, oldest first. */
  tail: Prepared[];
  /** Completed ops not yet linearized that could have come next. */
  cands: Prepared[];
  /** Unknown-outcome writes that could also have been inserted there. */
  unknownAvailable: number;
}

const TAIL = 6;

type SearchStatus = 'ok' | 'violation' | 'budget' | 'timeout';

interface SearchResult {
  status: SearchStatus;
  best: Best | null;
}

/** Static data of one key's sub-history, and the search over it. */
class KeyChecker {
  /** Ops that must be linearized, sorted by invocation. */
  readonly must: Prepared[];
  /** Unknown-outcome writes, sorted by invocation. */
  readonly unk: Prepared[];
  readonly n: number;
  readonly u: number;
  private readonly mInv: Float64Array;
  private readonly mComp: Float64Array;
  private readonly uInv: Float64Array;
  /**
   * Unknown ops with the same effect (blind writes of the same value, or cputs
   * with the same expected and new value) form a class: once available they are
   * interchangeable, so the memo table records how many of each class were used,
   * not which ones.
   */
  private readonly classOf: Int32Array;
  /**
   * A class is dead once every must-op that could observe the value it writes
   * (directly, or through a chain of unknown cputs) precedes p: its ops can never
   * appear in a shortest completion, so whether they were used is irrelevant.
   * deadBelow[c] = largest index (in invoke order) of a must-op observing class c.
   */
  private readonly deadBelow: Int32Array;

  constructor(
    readonly key: string,
    ops: Prepared[],
    private readonly initialId: number,
    readonly names: Value[],
  ) {
    const must = ops.filter((o) => o.must).sort((a, b) => a.invoke - b.invoke || a.complete - b.complete);
    const unk = ops.filter((o) => !o.must).sort((a, b) => a.invoke - b.invoke);
    const n = must.length;
    const u = unk.length;
    this.must = must;
    this.unk = unk;
    this.n = n;
    this.u = u;
    this.mInv = Float64Array.from(must, (o) => o.invoke);
    this.mComp = Float64Array.from(must, (o) => o.complete);
    this.uInv = Float64Array.from(unk, (o) => o.invoke);

    const classOf = new Int32Array(u);
    const classValue: number[] = []; // value a class writes
    const ids = new Map<string, number>();
    for (let j = 0; j < u; j++) {
      const o = unk[j]!;
      const v = o.kind === K_DELETE ? 0 : o.value;
      const name = o.kind === K_CPUT ? `c${o.expect},${v}` : `b${v}`;
      let id = ids.get(name);
      if (id === undefined) {
        id = classValue.length;
        ids.set(name, id);
        classValue.push(v);
      }
      classOf[j] = id;
    }
    this.classOf = classOf;

    const deadBelow = new Int32Array(classValue.length).fill(-1);
    if (u > 0) {
      const obs = new Int32Array(names.length).fill(-1);
      let fail1 = -1; // latest failed cput, and the latest one expecting something else
      let fail2 = -1;
      for (let i = 0; i < n; i++) {
        const o = must[i]!;
        if (o.kind === K_GET) obs[o.value] = i;
        else if (o.kind === K_CPUT) obs[o.expect] = i;
        else if (o.kind === K_CPUT_FAIL) {
          if (fail1 >= 0 && must[fail1]!.expect !== o.expect) fail2 = fail1;
          fail1 = i;
        }
      }
      for (let v = 0; v < names.length; v++) {
        const f = fail1 < 0 ? -1 : must[fail1]!.expect !== v ? fail1 : fail2;
        if (f > obs[v]!) obs[v] = f;
      }
      for (let changed = true; changed; ) {
        changed = false;
        for (const o of unk) {
          if (o.kind === K_CPUT && obs[o.value]! > obs[o.expect]!) {
            obs[o.expect] = obs[o.value]!;
            changed = true;
          }
        }
      }
      for (let c = 0; c < classValue.length; c++) deadBelow[c] = obs[classValue[c]!]!;
    }
    this.deadBelow = deadBelow;
  }

  /**
   * Depth-first search for a linearization. In relaxed mode unknown ops may take
   * effect any number of times (a weaker condition, used to refute quickly).
   * Gives up with 'budget' after about maxSteps steps, or 'timeout' at deadline.
   */
  search(relaxed: boolean, maxSteps: number, deadline: number): SearchResult {
    const { must, unk, n, u, mInv, mComp, uInv, classOf, deadBelow } = this;
    if (n === 0) return { status: 'ok', best: null };
    const lin = new Uint8Array(n);
    const used = new Uint8Array(u);
    let p = 0; // first must-op (in invoke order) not yet linearized
    let count = 0; // linearized must-ops
    let state = this.initialId;
    const path: Prepared[] = [];

    // (register value, linearized must-ops) -> multisets of classes of the (live)
    // unknown ops used to get there.
    const cache = new Map<string, number[][]>();
    let best: Best | null = null;

    const decode = (c: number): Prepared => (c >= 0 ? must[c]! : unk[~c]!);

    /**
     * Register the current configuration; returns its frame, or null when an
     * equivalent or dominating configuration has been seen already.
     *
     * Besides memoization, three reductions keep the branching small. Each keeps
     * at least one shortest successful completion reachable (see the module
     * comment):
     *  - a get or failed cput that is legal now never hurts: it changes nothing and
     *    moving it forward breaks no real-time constraint, so it is the only move;
     *  - an unknown op is only linearized if its new value is then observed by some
     *    pending op (otherwise omitting it is at least as good), so right after one
     *    no blind write (put/delete) is tried;
     *  - available unknown ops that have the same effect are interchangeable, so
     *    only the first unused one of each kind is tried.
     */
    const enter = (applied: number | null, prevState: number, prevP: number): Frame | null => {
      // Window of must-ops that may be linearized next: invoked no later than the
      // earliest completion among pending must-ops. Every linearized must-op lies
      // in [0, end) because that minimum never decreases along a search path, and
      // every op in [p, end) was invoked no later than the final m (a later op
      // lowers m only to its own completion time, after its own invocation).
      let m = Infinity;
      let end = p;
      for (let i = p; i < n && mInv[i]! <= m; i++) {
        if (!lin[i] && mComp[i]! < m) m = mComp[i]!;
        end = i + 1;
      }
      const observeOnly = applied !== null && applied < 0;
      let key = `${state}|${p}`;
      let cands: number[] = [];
      let forced = -1;
      for (let i = p; i < end; i++) {
        if (lin[i]) {
          key += `,${i}`;
          continue;
        }
        const o = must[i]!;
        if (forced < 0 && (o.kind === K_GET || o.kind === K_CPUT_FAIL) && step(o, state) >= 0) forced = i;
        if (!observeOnly || !isBlind(o)) cands.push(i);
      }
      let usedList = NONE;
      let unknownAvailable = 0;
      for (let j = 0; j < u && uInv[j]! <= m; j++) {
        if (!used[j]) unknownAvailable++;
        else if (deadBelow[classOf[j]!]! >= p) {
          if (usedList === NONE) usedList = [];
          usedList.push(classOf[j]!);
        }
      }
      if (usedList.length > 1) usedList.sort((a, b) => a - b);
      const seen = cache.get(key);
      if (seen) {
        for (const s of seen) if (isSubset(s, usedList)) return null;
        seen.push(usedList);
      } else {
        cache.set(key, [usedList]);
      }
      if (!best || count > best.count) {
        const pending: Prepared[] = [];
        for (let i = p; i < end; i++) if (!lin[i]) pending.push(must[i]!);
        best = { count, state, tail: path.slice(-TAIL), cands: pending, unknownAvailable };
      }
      if (forced >= 0) {
        cands = [forced];
      } else {
        cands.sort((a, b) => mComp[a]! - mComp[b]! || a - b);
        if (unknownAvailable > 0) addUnknownCandidates(cands, m, observeOnly);
      }
      return { cands, next: 0, applied, prevState, prevP };
    };

    /** Values some pending op could observe next; -1 in `anyBut` lists a failed cput's expected value. */
    const wanted = new Set<number>();
    const anyBut: number[] = [];
    const classes = new Set<number>(); // classes already among the candidates
    const addUnknownCandidates = (cands: number[], m: number, observeOnly: boolean): void => {
      wanted.clear();
      anyBut.length = 0;
      classes.clear();
      for (const c of cands) {
        const o = must[c]!;
        if (o.kind === K_GET) wanted.add(o.value);
        else if (o.kind === K_CPUT) wanted.add(o.expect);
        else if (o.kind === K_CPUT_FAIL) anyBut.push(o.expect);
      }
      for (let j = 0; j < u && uInv[j]! <= m; j++) {
        const o = unk[j]!;
        if (!used[j] && o.kind === K_CPUT) wanted.add(o.expect);
      }
      for (let j = 0; j < u && uInv[j]! <= m; j++) {
        if (used[j]) continue;
        const o = unk[j]!;
        if (observeOnly && isBlind(o)) continue;
        const v = step(o, state);
        if (v < 0 || v === state) continue; // illegal, or no visible effect
        if (!wanted.has(v) && !anyBut.some((e) => e !== v)) continue;
        const cls = classOf[j]!;
        if (classes.has(cls)) continue;
        classes.add(cls);
        cands.push(~j);
      }
    };

    const undo = (f: Frame): void => {
      const c = f.applied;
      if (c === null) return;
      if (c >= 0) {
        lin[c] = 0;
        count--;
      } else {
        used[~c] = 0;
      }
      state = f.prevState;
      p = f.prevP;
      path.pop();
    };

    const stack: Frame[] = [enter(null, state, p)!];
    let steps = 1023; // so that the deadline is also checked on the first step
    while (stack.length > 0) {
      if ((++steps & 1023) === 0) {
        if (Date.now() >= deadline) return { status: 'timeout', best };
        if (steps > maxSteps) return { status: 'budget', best };
      }
      const f = stack[stack.length - 1]!;
      if (f.next >= f.cands.length) {
        stack.pop();
        undo(f);
        continue;
      }
      const c = f.cands[f.next++]!;
      const o = decode(c);
      const ns = step(o, state);
      if (ns < 0) continue;
      const prevState = state;
      const prevP = p;
      if (c >= 0) {
        lin[c] = 1;
        count++;
        if (count === n) return { status: 'ok', best };
        while (p < n && lin[p]) p++;
      } else if (!relaxed) {
        used[~c] = 1;
      }
      state = ns;
      path.push(o);
      const child = enter(c, prevState, prevP);
      if (child) stack.push(child);
      else undo({ cands: [], next: 0, applied: c, prevState, prevP });
    }
    return { status: 'violation', best };
  }
}

/** Shared empty multiset (never mutated). */
const NONE: number[] = [];

/** Multisets as ascending arrays: is `a` contained in `b`? */
function isSubset(a: number[], b: number[]): boolean {
  if (a.length > b.length) return false;
  let j = 0;
  for (const x of a) {
    while (j < b.length && b[j]! < x) j++;
    if (j >= b.length || b[j] !== x) return false;
    j++;
  }
  return true;
}

function show(v: Value | undefined): string {
  return v === null || v === undefined ? '<absent>' : JSON.stringify(v);
}

function showTime(t: number | null): string {
  return t === null || t === undefined || !Number.isFinite(t) ? '?' : String(t);
}

/** One-line human-readable rendering of an op, e.g. `p2 cput("a" -> "b") ok [10, 14]`. */
export function formatOp(op: Op, index?: number): string {
  let call: string;
  switch (op.kind) {
    case 'put':
      call = `put(${show(op.value)})`;
      break;
    case 'delete':
      call = 'delete()';
      break;
    case 'get':
      call = op.outcome === 'ok' ? `get() -> ${show(op.result)}` : 'get()';
      break;
    case 'cput':
      call = `cput(${show(op.expect)} -> ${show(op.value)})`;
      break;
  }
  const outcome = op.kind === 'cput' && op.outcome === 'fail' ? 'fail (mismatch)' : op.outcome;
  const at = index === undefined ? '' : `#${index} `;
  return `${at}p${op.process} ${call} ${outcome} [${showTime(op.invoke)}, ${op.outcome === 'unknown' ? '?' : showTime(op.complete)}]`;
}

function why(o: Prepared, state: number, names: Value[]): string {
  const cur = show(names[state]);
  switch (o.kind) {
    case K_GET:
      return `read ${show(names[o.value])} but the register holds ${cur}`;
    case K_CPUT:
      return `succeeded expecting ${show(names[o.expect])} but the register holds ${cur}`;
    case K_CPUT_FAIL:
      return `reported a mismatch but the register holds the expected ${cur}`;
    default:
      return 'could be applied here, but no continuation after it linearizes';
  }
}

function describeProgress(kc: KeyChecker, best: Best): string {
  return `Deepest point reached: ${best.count} of ${kc.n} completed ops linearized (register then holds ${show(kc.names[best.state])}).`;
}

function describeViolation(kc: KeyChecker, best: Best): string {
  const { names, n } = kc;
  const lines: string[] = [];
  lines.push(
    `Key ${show(kc.key)} is not linearizable: at most ${best.count} of its ${n} completed ops can be put in a ` +
      `legal order consistent with real time.`,
  );
  lines.push(`Longest linearizable prefix found ends with the register holding ${show(names[best.state])}; its last ops:`);
  if (best.tail.length === 0) lines.push('  (empty prefix: the very first ops already fail)');
  for (const o of best.tail) lines.push(`  ${formatOp(o.op, o.index)}`);
  lines.push('None of the ops that could come next can take effect there:');
  for (const o of best.cands) lines.push(`  ${formatOp(o.op, o.index)}: ${why(o, best.state, names)}`);
  if (best.unknownAvailable > 0) {
    lines.push(
      `(${best.unknownAvailable} unknown-outcome write(s) were also available at that point; ` +
        `inserting or omitting them does not help.)`,
    );
  }
  return lines.join('\n');
}
