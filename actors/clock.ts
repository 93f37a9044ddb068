// Monotonic milliseconds, the same clock in every thread of a process (CLOCK_MONOTONIC).
// Leases are measured with it, never with the wall clock.
export function monoNow(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}
