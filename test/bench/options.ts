// Options of the application bench suites (web, drive, mail). `penncloud bench` hands the same
// options to every suite it runs, so an option another suite owns is skipped with a note, not an error.
// Every number has bounds; a value outside them stops the suite with its usage line.

export interface NumberOption {
  flag: string; // e.g. '--seconds'
  default: number;
  min: number;
  max: number;
}

export interface ParsedOptions {
  numbers: Record<string, number>; // by flag
  flags: Set<string>; // boolean flags given, e.g. '--keep'
  strings: Record<string, string>; // by flag
}

export function parseBenchOptions(
  suite: string,
  argv: string[],
  spec: { numbers: NumberOption[]; flags?: string[]; strings?: Record<string, { default: string; allowed: string[] }> },
): ParsedOptions {
  const strings = spec.strings ?? {};
  const usage = `usage: ${suite} ${[
    ...spec.numbers.map((n) => `[${n.flag} N (${n.min}-${n.max}, default ${n.default})]`),
    ...Object.entries(strings).map(([f, s]) => `[${f} ${s.allowed.join('|')} (default ${s.default})]`),
    ...(spec.flags ?? []).map((f) => `[${f}]`),
  ].join(' ')}`;
  const out: ParsedOptions = {
    numbers: Object.fromEntries(spec.numbers.map((n) => [n.flag, n.default])),
    flags: new Set(),
    strings: Object.fromEntries(Object.entries(strings).map(([f, s]) => [f, s.default])),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const num = spec.numbers.find((n) => n.flag === a);
    if (num) {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < num.min || v > num.max) throw new Error(`${a} takes a number from ${num.min} to ${num.max}\n${usage}`);
      out.numbers[a] = v;
    } else if (spec.flags?.includes(a)) {
      out.flags.add(a);
    } else if (strings[a]) {
      const v = argv[++i] ?? '';
      if (!strings[a].allowed.includes(v)) throw new Error(`${a} is one of ${strings[a].allowed.join(', ')}\n${usage}`);
      out.strings[a] = v;
    } else {
      process.stderr.write(`${suite}: ignoring ${a} (an option of another suite)\n`);
      if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) i++;
    }
  }
  return out;
}

/** Runs a suite's main: a failure (a bad option included) is one line on stderr and exit code 1. */
export function runSuite(suite: string, main: () => Promise<void>): void {
  main().then(
    () => process.exit(process.exitCode ?? 0),
    (e: unknown) => {
      process.stderr.write(`${suite}: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
}
