import { performance } from "node:perf_hooks";
import type { Egress, NameRequest } from "./egress.js";
import { DnsError } from "./resolve.js";

/**
 * A destination name, resolved through the exit the connection will leave by (issue 13): exit two's
 * users' names are looked up by exit two's resolver, from exit two's tunnel address, under exit two's
 * kill switch, so they work while exit one is down and never show on exit one's IP.
 *
 * The exit is chosen before the address is known (rules naming destinations skipped). An address that
 * routes to another exit (a rule by destination) is never connected through the exit that resolved it:
 * the name is resolved once more through that other exit, and only the addresses of that answer that
 * route there too are used; otherwise the connection is refused. Fail-closed, and no loop.
 */

export interface NameLookup {
  resolve(name: string): Promise<string[]>;
}

export type ExitResolution =
  /** Addresses that all route to `exit` (undefined: no exits): connect only through it. */
  | { exit?: string; addresses: string[]; refused?: undefined; error?: undefined }
  | { exit?: string; refused: string; addresses?: undefined; error?: undefined }
  | { exit?: string; error: DnsError; addresses?: undefined; refused?: undefined };

/** Each lookup's duration, outcome ("ok" or the DnsError code) and the exit that resolved it. */
export type DnsObserver = (seconds: number, outcome: string, exit: string | undefined) => void;

async function timed(
  resolver: NameLookup,
  name: string,
  exit: string | undefined,
  observe: DnsObserver,
): Promise<string[] | DnsError> {
  const t0 = performance.now();
  try {
    const found = await resolver.resolve(name);
    observe((performance.now() - t0) / 1000, "ok", exit);
    return found;
  } catch (e) {
    const err = e instanceof DnsError ? e : new DnsError((e as NodeJS.ErrnoException).code ?? "EFAIL", name);
    observe((performance.now() - t0) / 1000, err.code, exit);
    return err;
  }
}

/** Without exits (a proxy built without an Egress): the one resolver. */
export async function resolveUnrouted(
  resolver: NameLookup,
  name: string,
  observe: DnsObserver,
): Promise<ExitResolution> {
  const found = await timed(resolver, name, undefined, observe);
  return found instanceof DnsError ? { error: found } : { addresses: found };
}

export async function resolveThroughExit(
  egress: Egress,
  resolverOf: (exit: string) => NameLookup,
  req: NameRequest,
  name: string,
  observe: DnsObserver,
): Promise<ExitResolution> {
  const via = egress.forName(req);
  if (via.refused !== undefined) return via;
  let exit = via.exit;
  for (let round = 0; ; round++) {
    const found = await timed(resolverOf(exit), name, exit, observe);
    if (found instanceof DnsError) return { exit, error: found };
    // One literal, not `{ ...req, destination }`: under Node 20 every such copy gets a map of its own (see relay.ts).
    const { user, client, port } = req;
    const routes = found.map((destination) => egress.exitFor(via, { user, client, port, destination }));
    const here = found.filter((_, i) => routes[i].exit === exit && routes[i].refused === undefined);
    if (here.length > 0) return { exit, addresses: here };
    const elsewhere = routes.find((r) => r.refused === undefined && r.exit !== exit);
    if (round > 0 || elsewhere?.exit === undefined)
      return {
        exit,
        refused:
          routes.find((r) => r.refused !== undefined)?.refused ??
          `${name} resolved through exit ${exit} to addresses that route to another exit`,
      };
    exit = elsewhere.exit;
  }
}
