import ipaddr from "ipaddr.js";
import { UsageError } from "../util/errors.js";
import type { ExitEntry } from "./egress-schema.js";
import { type ExitConfig, exitSchema } from "./exit-schema.js";
import { type ExitSpec, type Problem, resolveExits } from "./exits.js";
import type { GatewayConfig } from "./gateway-schema.js";

/**
 * Which exits a command works on, and each exit's VPS settings (the `exit:` section as that exit sees
 * it). PURE.
 *
 * The first exit is today's exit: the `exit:` section as written, its Hetzner server and firewall under
 * today's names and labels, its keys and endpoint where the secrets store always kept them. Every other
 * exit takes the `exit:` section with its own `exits[i].exit:` on top, and by default its own Hetzner
 * server and firewall (`<name>-<exit>`, labelled wg-egress-exit=<exit>, so no two exits ever find, reuse
 * or delete each other's resources), the gateway's side of its own tunnel as the only allowed peer
 * address, the first host of that tunnel's subnet as the exit's address, and none of the first exit's
 * machine-specific settings (ssh.target, reverseDns).
 */

/** The Hetzner label naming the exit a server or firewall belongs to (every exit but the first). */
export const EXIT_LABEL = "wg-egress-exit";

/** The config parts these functions read (a parsed Config has them). */
export interface ExitsConfig {
  gateway: GatewayConfig;
  exit: ExitConfig;
  exits?: ExitEntry[];
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** `over` on top of `base`: objects merge key by key, anything else (lists too) replaces. */
function merged(base: unknown, over: unknown): unknown {
  if (!isObject(base) || !isObject(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = merged(base[k], v);
  return out;
}

const has = (o: unknown, ...path: string[]): boolean =>
  path.every((k) => {
    if (!isObject(o) || !(k in o)) return false;
    o = o[k];
    return true;
  });

const hostOf = (cidr: string) => ipaddr.parseCIDR(cidr)[0].toString();

/** The exit's side of a tunnel: the first host of the gateway address's subnet (10.100.1.2/24 → 10.100.1.1/24). */
function exitAddressFor(gatewayCidr: string): string | undefined {
  const [addr, len] = ipaddr.parseCIDR(gatewayCidr);
  if (!(addr instanceof ipaddr.IPv4) || len > 30) return undefined;
  const bytes = ipaddr.IPv4.networkAddressFromCIDR(gatewayCidr).toByteArray();
  bytes[3] += 1; // a /30 or wider network address ends in two zero bits: no carry
  const first = ipaddr.fromByteArray(bytes).toString();
  return first === addr.toString() ? undefined : `${first}/${len}`;
}

/** An exit's VPS settings, or what is wrong with its `exits[i].exit:` (paths from the config's top). */
export function exitHostOf(c: ExitsConfig, x: ExitSpec): { exit: ExitConfig } | { problems: Problem[] } {
  const over = c.exits?.[x.index]?.exit;
  const at = ["exits", x.index, "exit"];
  if (x.primary) {
    const r = exitSchema.safeParse(merged(c.exit, over));
    return r.success ? { exit: r.data } : { problems: zodProblems(r.error.issues, over ? at : ["exit"]) };
  }
  const base = c.exit;
  const { target: _target, ...ssh } = base.ssh;
  const address = exitAddressFor(x.address);
  if (!address && !has(over, "address"))
    return {
      problems: [
        {
          path: [...at, "address"],
          message: `exit ${x.name}: set exits[${x.index}].exit.address, the exit's side of its tunnel (no first host derives from ${x.address})`,
        },
      ],
    };
  const derived = {
    ...base,
    ssh,
    reverseDns: undefined,
    // The top-level key is the gateway's: another key file means another gateway key.
    gatewayPublicKey: x.privateKeyFile === c.gateway.privateKeyFile ? base.gatewayPublicKey : undefined,
    address,
    gatewayAllowedIps: [`${hostOf(x.address)}/32`, ...(x.address6 ? [`${hostOf(x.address6)}/128`] : [])],
    hetzner: {
      ...base.hetzner,
      serverName: `${base.hetzner.serverName}-${x.name}`,
      firewallName: `${base.hetzner.firewallName}-${x.name}`,
    },
  };
  const raw = merged(derived, over) as typeof derived;
  const labels = { ...raw.hetzner.labels, [EXIT_LABEL]: x.name };
  const r = exitSchema.safeParse({ ...raw, hetzner: { ...raw.hetzner, labels } });
  return r.success ? { exit: r.data } : { problems: zodProblems(r.error.issues, at) };
}

function zodProblems(issues: { path: PropertyKey[]; message: string }[], at: (string | number)[]): Problem[] {
  return issues.map((i) => ({
    path: [...at, ...i.path.map((p) => (typeof p === "number" ? p : String(p)))],
    message: i.message,
  }));
}

/** What makes the exits' VPS settings unusable: each exit's own, and two exits sharing a Hetzner resource. */
export function exitHostProblems(c: ExitsConfig, exits: readonly ExitSpec[]): Problem[] {
  if (!c.exits) return [];
  const out: Problem[] = [];
  const seen = new Map<string, string>();
  for (const x of exits) {
    if (!x.address) continue; // reported by exitProblems
    const r = exitHostOf(c, x);
    if ("problems" in r) {
      out.push(...r.problems);
      continue;
    }
    for (const [key, value] of [
      ["serverName", r.exit.hetzner.serverName],
      ["firewallName", r.exit.hetzner.firewallName],
    ]) {
      const other = seen.get(`${key}:${value}`);
      if (other)
        out.push({
          path: ["exits", x.index, "exit", "hetzner", key],
          message: `exit ${x.name} uses the Hetzner ${key} ${value}, as exit ${other} does: each exit needs its own`,
        });
      else seen.set(`${key}:${value}`, x.name);
    }
  }
  return out;
}

/** The exits of a config (the one named `default` without `exits:`). */
export const exitsOf = (c: ExitsConfig): ExitSpec[] => resolveExits(c.gateway, c.exits);

function unknownExit(all: readonly ExitSpec[], name: string): UsageError {
  return new UsageError(
    `no exit named ${name} in the config: --exit takes one of ${all.map((e) => e.name).join(", ")}`,
  );
}

/** What a read-only command shows: every exit, or the one --exit names. */
export function pickExits(all: readonly ExitSpec[], name?: string): ExitSpec[] {
  if (name === undefined) return [...all];
  const x = all.find((e) => e.name === name);
  if (!x) throw unknownExit(all, name);
  return [x];
}

/** What a command that changes one exit works on: the one --exit names, or the only one there is. */
export function pickExit(all: readonly ExitSpec[], name: string | undefined, command: string): ExitSpec {
  if (name === undefined && all.length > 1)
    throw new UsageError(
      `${command} works on one exit and this config has ${all.length}: pass --exit with one of ${all.map((e) => e.name).join(", ")}`,
    );
  return pickExits(all, name)[0];
}

/** An exit with its VPS settings (the config check has already reported any problem). */
export interface ExitTarget {
  spec: ExitSpec;
  host: ExitConfig;
}

export function targetOf(c: ExitsConfig, x: ExitSpec): ExitTarget {
  const r = exitHostOf(c, x);
  if ("problems" in r) throw new UsageError(`exit ${x.name}: ${r.problems[0].message}`);
  return { spec: x, host: r.exit };
}

/**
 * Where a peer setting of this exit lives in the config file: `gateway.peer.*` for the first exit unless
 * its `exits[0].peer` already says it (one config, one place), `exits[i].peer.*` for the others.
 */
export function peerKey(c: ExitsConfig, x: ExitSpec, key: "endpoint" | "publicKey"): string {
  if (x.primary && c.exits?.[0]?.peer?.[key] === undefined) return `gateway.peer.${key}`;
  return `exits.${x.index}.peer.${key}`;
}

/** Where this exit's `exit.ssh.target` lives: `exit.ssh.target` for the first exit, else its own section. */
export function sshTargetKey(c: ExitsConfig, x: ExitSpec): string {
  if (x.primary && !has(c.exits?.[0]?.exit, "ssh", "target")) return "exit.ssh.target";
  return `exits.${x.index}.exit.ssh.target`;
}
