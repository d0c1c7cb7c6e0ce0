import { OperationError } from "../../../util/errors.js";
import type { Progress } from "../../progress.js";
import type { HetznerClient } from "./client.js";
import type { Action } from "./types.js";

/** Poll interval like the hcloud CLI's HCLOUD_POLL_INTERVAL ("500ms", "2s"; a bare number is ms). */
export function pollIntervalMs(value = process.env.HCLOUD_POLL_INTERVAL): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(value?.trim() ?? "");
  if (!m) return 1000;
  return Math.max(10, Number(m[1]) * (m[2] === "s" ? 1000 : 1));
}

export interface WaitOptions {
  intervalMs?: number;
  timeoutMs?: number;
}

/** Waits until every action succeeded; an action that ends in error or takes too long is a failed operation. */
export async function waitForActions(
  client: HetznerClient,
  actions: Action[],
  progress: Progress,
  opts: WaitOptions = {},
): Promise<void> {
  const intervalMs = opts.intervalMs ?? pollIntervalMs();
  const deadline = Date.now() + (opts.timeoutMs ?? 10 * 60_000);
  for (const first of actions) {
    let action = first;
    const label = action.command.replaceAll("_", " ");
    while (action.status === "running") {
      progress.update(label, action.progress);
      if (Date.now() > deadline)
        throw new OperationError(
          `${label} (action ${action.id}) still running after the timeout; check the Hetzner Console`,
        );
      await new Promise((r) => setTimeout(r, intervalMs));
      action = await client.getAction(action.id);
    }
    if (action.status === "error")
      throw new OperationError(
        `${label} failed: ${action.error?.code ?? "error"}: ${action.error?.message ?? "no details"}`,
      );
    progress.update(label, 100);
    progress.end();
  }
}
