import { createHash } from "node:crypto";
import ipaddr from "ipaddr.js";
import type { RoutesConfig } from "../config/egress-schema.js";
import { type ExitSpec, replacementOf } from "../config/exits.js";

/**
 * Which exit a connection leaves through. PURE: the rules of `routes:` (first match wins, else the
 * default), then for a pool the member that is healthy — sticky per user (or client address) through
 * rendezvous hashing, so a user keeps its exit while it is healthy, moves when it is not, and comes back
 * when it is again. A route to one exit never moves: when that exit is down its connections fail (the
 * kernel's kill switch), they never leave through another exit — unless it drains (exits[].drain: a
 * planned replacement), when its new connections go to its replacement, or are refused without one.
 */

/** An exit's health as the proxy knows it from the gateway agent. */
export type Health = "healthy" | "unknown" | "unhealthy";

/** What is known of a connection before its destination name is resolved. */
export interface NameRequest {
  user?: string;
  client: string;
  port: number;
}

export interface RouteRequest extends NameRequest {
  /** The address connected to (after DNS). */
  destination: string;
}

export interface Target {
  /** The exit or pool a rule (or the default) named. */
  name: string;
  /** Its exits: one for an exit, the members for a pool. */
  members: string[];
  pool: boolean;
  /** Index of the matching rule; -1 = the default. */
  rule: number;
}

type Net = [ipaddr.IPv4 | ipaddr.IPv6, number];

function parseNet(c: string): Net {
  if (c.includes("/")) return ipaddr.parseCIDR(c);
  const a = ipaddr.parse(c);
  return [a, a.kind() === "ipv4" ? 32 : 128];
}

function inAny(nets: readonly Net[], ip: string): boolean {
  if (!ipaddr.isValid(ip)) return false;
  const a = ipaddr.process(ip);
  return nets.some(([net, len]) => net.kind() === a.kind() && a.match(net, len));
}

interface CompiledRule {
  users?: Set<string>;
  clients?: Net[];
  destinations?: Net[];
  ports?: Set<number>;
  target: Target;
}

export class EgressRoutes {
  private readonly rules: CompiledRule[];
  private readonly fallback: Target;

  constructor(exits: readonly ExitSpec[], pools: Record<string, string[]>, routes: RoutesConfig | undefined) {
    const target = (name: string, rule: number): Target =>
      name in pools && !exits.some((x) => x.name === name)
        ? { name, members: pools[name], pool: true, rule }
        : { name, members: [name], pool: false, rule };
    this.rules = (routes?.rules ?? []).map((r, i) => ({
      users: r.users && new Set(r.users),
      clients: r.clients?.map(parseNet),
      destinations: r.destinations?.map(parseNet),
      ports: r.ports && new Set(r.ports),
      target: target(r.to, i),
    }));
    this.fallback = target(routes?.default ?? exits[0].name, -1);
  }

  /**
   * The target of the first rule that matches, else the default. Without a destination (a name not
   * yet resolved) the rules that name destinations are skipped: they cannot be decided yet.
   */
  select(req: NameRequest & { destination?: string }): Target {
    for (const r of this.rules) {
      if (r.users && (req.user === undefined || !r.users.has(req.user))) continue;
      if (r.clients && !inAny(r.clients, req.client)) continue;
      if (r.destinations && (req.destination === undefined || !inAny(r.destinations, req.destination)))
        continue;
      if (r.ports && !r.ports.has(req.port)) continue;
      return r.target;
    }
    return this.fallback;
  }
}

const score = (key: string, member: string) =>
  createHash("sha256").update(`${key}\0${member}`).digest().readUInt32BE(0);

/**
 * The exit for a new connection to `target`, or null: refuse at once. One exit: always that one (its
 * own kill switch decides). A pool: the healthy members first, then those of unknown health (no agent
 * report yet); unhealthy members never; among equals the one `key` (user, else client address) ranks
 * highest, so each user sticks to its exit and only the users of a failed member move.
 */
export function pickExit(target: Target, health: (exit: string) => Health, key: string): string | null {
  if (!target.pool) return target.members[0];
  for (const want of ["healthy", "unknown"] as const) {
    let best: string | null = null;
    let bestScore = -1;
    for (const m of target.members) {
      if (health(m) !== want) continue;
      const s = score(key, m);
      if (s > bestScore) [best, bestScore] = [m, s];
    }
    if (best) return best;
  }
  return null;
}

/**
 * `target` without its draining exits (`replace`: draining exit → its replacement, null = none), or
 * null when nothing is left. A pool skips its draining members; only when every member drains does it
 * take their replacements (a pool of one still works while its exit is replaced). A route to one exit
 * goes to its replacement. PURE.
 */
export function undrained(target: Target, replace: ReadonlyMap<string, string | null>): Target | null {
  const staying = target.members.filter((m) => !replace.has(m));
  const members = staying.length
    ? staying
    : [...new Set(target.members.map((m) => replace.get(m)).filter((to) => typeof to === "string"))];
  return members.length ? { ...target, members } : null;
}

/** An exit's tunnel addresses: what the proxy binds a connection to so it is routed into that exit. */
export interface ExitSource {
  v4?: string;
  v6?: string;
}

export type EgressChoice =
  | { exit: string; localAddress?: string; refused?: undefined }
  | { exit?: string; refused: string };

/** The exit that resolves a name: picked by everything but the destination address. */
export type NameChoice =
  | { exit: string; target: Target; refused?: undefined }
  | { exit?: undefined; refused: string };

/**
 * The proxy's side of several exits: the exit for each new connection and the address to bind it to.
 * With one exit nothing is bound (today's data path: the proxy's uid is routed into the tunnel).
 *
 * A name is resolved through an exit chosen before its address is known (forName: rules that name
 * destinations are skipped), then each address is routed again with everything (exitFor): the same
 * rule keeps the member already picked; an earlier rule naming destinations may send it elsewhere.
 */
export class Egress {
  /** Draining exit → its replacement (null: none), from `draining`. */
  private readonly replace: ReadonlyMap<string, string | null>;

  constructor(
    private readonly routes: EgressRoutes,
    /** null: one exit, nothing to bind. */
    private readonly sources: ReadonlyMap<string, ExitSource> | null,
    private readonly health: (exit: string) => Health,
    /** Every exit's name, for the metrics. */
    readonly exits: readonly string[] = [],
    /** Draining exit → its replacement (null: none) and its deadline (epoch ms; undefined: none). */
    readonly draining: ReadonlyMap<string, { to: string | null; deadline?: number }> = new Map(),
  ) {
    this.replace = new Map([...draining].map(([x, d]) => [x, d.to]));
  }

  /** An IP destination: the exit and the address to bind to. */
  choose(req: RouteRequest): EgressChoice {
    const picked = this.pick(req);
    return picked.refused !== undefined ? picked : this.bind(picked.exit, req.destination);
  }

  /** A name: the exit to resolve it through (then exitFor for each address, then bind). */
  forName(req: NameRequest): NameChoice {
    return this.pick(req);
  }

  /** The exit for an address `name` resolved to, `name` having been resolved through `via`. */
  exitFor(via: NameChoice & { exit: string }, req: RouteRequest): EgressChoice {
    const picked = this.pick(req);
    if (picked.refused !== undefined) return picked;
    // The same rule keeps the exit that resolved the name (a pool's pick is per user: the same one).
    return { exit: picked.target.name === via.target.name ? via.exit : picked.exit };
  }

  /**
   * The rule's target without its draining exits, then a healthy member: what every new connection,
   * by address or by name, goes through (so a draining exit gets none, whichever way it is asked).
   */
  private pick(req: RouteRequest | NameRequest): NameChoice {
    const selected = this.routes.select(req);
    const target = this.replace.size ? undrained(selected, this.replace) : selected;
    if (target === null)
      return {
        refused: selected.pool
          ? `every exit of pool ${selected.name} is draining without a replacement`
          : `exit ${selected.name} is draining without a replacement`,
      };
    const exit = pickExit(target, this.health, req.user ?? req.client);
    return exit === null ? { refused: `no healthy exit in pool ${target.name}` } : { exit, target };
  }

  /** Where a connection to `destination` through `exit` is bound (several exits only). */
  bind(exit: string, destination: string): EgressChoice {
    if (!this.sources) return { exit };
    const src = this.sources.get(exit);
    const v6 = ipaddr.isValid(destination) && ipaddr.process(destination).kind() === "ipv6";
    const localAddress = v6 ? src?.v6 : src?.v4;
    if (!localAddress) return { exit, refused: `exit ${exit} has no IPv${v6 ? 6 : 4} tunnel address` };
    return { exit, localAddress };
  }

  /** The exit's tunnel addresses, the source of its DNS queries too; undefined with one exit. */
  sourceOf(exit: string): ExitSource | undefined {
    return this.sources?.get(exit);
  }
}

/** The proxy's Egress for the exits of a config (`health`: the agents' reports, slice by slice). */
export function egressOf(
  exits: readonly ExitSpec[],
  pools: Record<string, string[]>,
  routes: RoutesConfig | undefined,
  health: (exit: string) => Health,
): Egress {
  const host = (cidr: string) => ipaddr.parseCIDR(cidr)[0].toString();
  const sources =
    exits.length > 1
      ? new Map(
          exits.map((x) => [x.name, { v4: host(x.address), v6: x.address6 ? host(x.address6) : undefined }]),
        )
      : null;
  const draining = new Map(
    exits.flatMap((x) =>
      x.drain
        ? [[x.name, { to: replacementOf(exits, x.name) ?? null, deadline: x.drain.deadline }] as const]
        : [],
    ),
  );
  return new Egress(
    new EgressRoutes(exits, pools, routes),
    sources,
    health,
    exits.map((x) => x.name),
    draining,
  );
}
