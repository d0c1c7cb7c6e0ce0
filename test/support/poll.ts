import { setTimeout as sleep } from "node:timers/promises";

export { sleep };

/**
 * Polls `probe` every `intervalMs` until it gives a value (not null, undefined or false), at most
 * `timeoutMs`; a probe that throws counts as "not yet". Every wait in the tests is bounded by this.
 */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await Promise.resolve()
      .then(probe)
      .catch(() => null);
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not reached in ${timeoutMs} ms`);
    await sleep(intervalMs);
  }
}

/** waitFor for a plain condition. */
export async function until(
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = "condition",
): Promise<void> {
  await waitFor(what, timeoutMs, cond);
}
