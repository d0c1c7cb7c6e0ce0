import { type ExitSpec, resolveExits } from "../config/exits.js";
import type { Config } from "../config/schema.js";
import type { Health } from "../policy/egress.js";
import { OperationError, UsageError } from "../util/errors.js";

/**
 * Make-before-break replacement of an exit (`wg-egress exit drain A --to B`), the pure part: which
 * config change drains A, whether it may, and what the proxy's metrics say about it. The config is the
 * truth (exits[].drain): it survives restarts, and the proxy applies it on SIGHUP like any other change.
 */

/** An ISO 8601 time in whole seconds (what the command writes, and reads back from the metrics). */
const isoSeconds = (ms: number) => new Date(Math.ceil(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** "48h", "90m", "2d", "30s", or an ISO 8601 time with offset → epoch ms; it must lie in the future. */
export function parseDeadline(text: string, now: number): number {
  const rel = /^(\d+(?:\.\d+)?)([smhd])$/.exec(text.trim());
  const at = rel
    ? now + Number(rel[1]) * UNITS[rel[2]] * 1000
    : /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/.test(text)
      ? Date.parse(text)
      : Number.NaN;
  if (Number.isNaN(at))
    throw new UsageError(
      `--deadline ${JSON.stringify(text)}: expected a duration like 48h, 90m, 2d or a time like 2026-12-02T18:00:00Z`,
    );
  if (at <= now)
    throw new UsageError(`--deadline ${text} is not in the future: give a later time or a duration`);
  return at;
}

export interface DrainPlan {
  exit: ExitSpec;
  /** The exit's index in exits: (the key to edit is exits.<index>.drain). */
  index: number;
  drain: { to?: string; deadline?: string };
  /** The replacement, to be checked healthy before anything changes. */
  to?: ExitSpec;
}

/** The routes and pools that name `exit` (the route default counts when it names it, or leaves it first). */
function directUses(cfg: Config, exit: ExitSpec): string[] {
  const uses: string[] = [];
  const dflt = cfg.routes?.default ?? resolveExits(cfg.gateway, cfg.exits)[0].name;
  if (dflt === exit.name) uses.push("routes.default");
  cfg.routes?.rules.forEach((r, i) => {
    if (r.to === exit.name) uses.push(`routes.rules[${i}]`);
  });
  return uses;
}

/**
 * The drain of exit `name` (to `to`, until `deadline` in epoch ms), or a UsageError naming what is
 * wrong. Without a replacement the connections of routes naming the exit would all be refused: that is
 * refused here (name a replacement, or change those routes first).
 */
export function planDrain(cfg: Config, name: string, to: string | undefined, deadline?: number): DrainPlan {
  const exits = resolveExits(cfg.gateway, cfg.exits);
  const known = exits.map((x) => x.name).join(", ");
  if (!cfg.exits || exits.length < 2)
    throw new UsageError(
      "draining needs a second exit to take the connections: list the exits under exits: (README: Several exits)",
    );
  const exit = exits.find((x) => x.name === name);
  if (!exit) throw new UsageError(`exit drain ${name}: no such exit (known: ${known})`);
  const target = to === undefined ? undefined : exits.find((x) => x.name === to);
  if (to !== undefined && !target)
    throw new UsageError(
      `--to ${to}: no such exit (known: ${known}${to in cfg.pools ? "; a pool is not a replacement" : ""})`,
    );
  if (target === exit) throw new UsageError(`--to ${to}: an exit cannot replace itself`);
  if (target?.drain)
    throw new UsageError(`--to ${to}: exit ${to} is draining itself: pick an exit that is not draining`);
  const uses = directUses(cfg, exit);
  if (!target && uses.length)
    throw new UsageError(
      `exit ${name} is named by ${uses.join(", ")}: their new connections would all be refused; give --to EXIT, or route them elsewhere first`,
    );
  const drain: DrainPlan["drain"] = {};
  if (to !== undefined) drain.to = to;
  if (deadline !== undefined) drain.deadline = isoSeconds(deadline);
  return { exit, index: exit.index, drain, to: target };
}

/** Why the replacement cannot take connections now (make before break), or undefined when it can. */
export function replacementRefusal(to: ExitSpec, health: Health): string | undefined {
  if (health === "healthy") return undefined;
  return health === "unknown"
    ? `exit ${to.name} has no fresh health report (no agent for ${to.interface}): bring it up first (wg-egress gateway run), nothing was changed`
    : `exit ${to.name} is not healthy (its tunnel ${to.interface} is down or its handshake stale): fix it first, nothing was changed`;
}

export interface DrainReadout {
  /** The proxy's drain of the exit (wg_egress_proxy_exit_draining 1), as the config says it: null = none. */
  drain: { to?: string; deadline?: string } | null;
  /** Connections relaying on the exit now. */
  open: number;
}

/** The exit's sample of `metric`: its labels and value (exit and replacement names need no escaping). */
function sample(text: string, metric: string, exit: string): { labels: string[]; value: number } | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${metric}{`)) continue;
    const close = line.indexOf("} ");
    const labels = line.slice(metric.length + 1, close).split(",");
    if (labels.includes(`exit=${JSON.stringify(exit)}`))
      return { labels, value: Number(line.slice(close + 2)) };
  }
  return undefined;
}

/** The exit's drain state and open connections in the proxy's /metrics text, or a failure naming what is missing. */
export function readDrain(text: string, exit: string): DrainReadout {
  const draining = sample(text, "wg_egress_proxy_exit_draining", exit);
  const open = sample(text, "wg_egress_proxy_exit_open_connections", exit);
  if (draining === undefined || open === undefined)
    throw new OperationError(
      `the proxy's metrics do not list exit ${exit}: is the proxy running this config (a version with exit drain)?`,
    );
  if (draining.value !== 1) return { drain: null, open: open.value };
  const drain: { to?: string; deadline?: string } = {};
  const to = /^to="(.*)"$/.exec(draining.labels.find((l) => l.startsWith("to=")) ?? "")?.[1];
  if (to) drain.to = to;
  const deadline = sample(text, "wg_egress_proxy_exit_drain_deadline_seconds", exit)?.value;
  if (deadline !== undefined) drain.deadline = isoSeconds(deadline * 1000);
  return { drain, open: open.value };
}
