import type { ExitConfig } from "../../../config/exit-schema.js";
import { errorMessage, OperationError, UsageError } from "../../../util/errors.js";
import { waitForActions } from "./actions.js";
import { HetznerApiError } from "./client.js";
import { firewallRules, type MonthlyCost, monthlyCost, sameRules } from "./plan.js";
import { deleteFirewall, deleteServer, findFirewall, findServer, type HetznerContext } from "./resources.js";
import { ensureReverseDns } from "./reverse-dns.js";
import type { Firewall, Server, ServerType } from "./types.js";

export interface ProvisionResult {
  server: Server;
  firewall: Firewall;
  created: boolean;
  cost: MonthlyCost;
  /** Public IPv4:listenPort, what the gateway's peer endpoint must be. */
  endpoint: string;
}

export async function serverTypeCost(
  ctx: HetznerContext,
  name = ctx.exit.hetzner.serverType,
  location = ctx.exit.hetzner.location,
): Promise<{ type: ServerType; cost: MonthlyCost }> {
  const locations = await ctx.client.listLocations();
  if (!locations.some((l) => l.name === location))
    throw new UsageError(
      `unknown location ${location} (exit.hetzner.location); available: ${locations.map((l) => l.name).join(", ")}`,
    );
  const [type] = await ctx.client.listServerTypes({ name });
  if (!type) {
    const known = (await ctx.client.listServerTypes()).filter((t) => !t.deprecated).map((t) => t.name);
    throw new UsageError(
      `unknown server type ${name} (exit.hetzner.serverType); available: ${known.join(", ")}`,
    );
  }
  return { type, cost: monthlyCost(type, location, await ctx.client.getPricing()) };
}

/** An exit nobody can log into cannot be checked, repaired or rotated: refused unless asked for. */
export function checkLogin(exit: ExitConfig): void {
  if (exit.noSsh || exit.hetzner.sshKeyNames.length || exit.sshAuthorizedKeys.length) return;
  throw new UsageError(
    "refusing to create an exit nobody can log into: set exit.hetzner.sshKeyNames (SSH keys in your Hetzner project) or exit.sshAuthorizedKeys (public key lines), or exit.noSsh: true if it needs no SSH (then secrets rotate and exit check cannot reach it)",
  );
}

/** Every SSH key named in the config must exist in the project (the API would fail after the firewall). */
async function checkSshKeys(ctx: HetznerContext): Promise<void> {
  for (const name of ctx.exit.hetzner.sshKeyNames)
    if (!(await ctx.client.listSshKeys({ name })).length)
      throw new UsageError(
        `SSH key "${name}" (exit.hetzner.sshKeyNames) is not in the Hetzner project: add it in the Console or fix the name`,
      );
}

/** What this run created: what a failure deletes again. */
interface Created {
  firewall?: Firewall;
  server?: Server;
}

/**
 * Undoes what this run created (server first: the firewall cannot go while applied), then fails with the
 * cause; names whatever could not be deleted and how the next run finishes.
 */
async function rollback(ctx: HetznerContext, created: Created, cause: string): Promise<never> {
  const done: string[] = [];
  const left: string[] = [];
  if (created.server) {
    const what = `server ${created.server.name} (id ${created.server.id})`;
    await deleteServer(ctx, created.server).then(
      () => done.push(what),
      () => left.push(what),
    );
  }
  if (created.firewall) {
    const what = `firewall ${created.firewall.name} (id ${created.firewall.id})`;
    // Still applied to a server that could not be deleted: it cannot go either.
    if (left.length) left.push(what);
    else
      await deleteFirewall(ctx, created.firewall).then(
        () => done.push(what),
        () => left.push(what),
      );
  }
  const undone = done.length ? `; rolled back: deleted ${done.join(" and ")} (created by this run)` : "";
  const kept = left.length
    ? `; left behind: ${left.join(" and ")}: delete with wg-egress exit deprovision --yes, then provision again`
    : "";
  throw new OperationError(`${cause}${undone}${kept}`);
}

/** Creates the firewall, or brings an existing one (ours) to the wanted rules. */
async function ensureFirewall(
  ctx: HetznerContext,
  sshSources: string[],
  created: Created,
): Promise<Firewall> {
  const { firewallName, labels } = ctx.exit.hetzner;
  const rules = firewallRules(sshSources, ctx.exit.listenPort);
  const existing = await findFirewall(ctx);
  if (!existing) {
    const { firewall, actions } = await ctx.client.createFirewall({ name: firewallName, labels, rules });
    created.firewall = firewall;
    await waitForActions(ctx.client, actions, ctx.progress).catch((e) =>
      rollback(ctx, created, errorMessage(e)),
    );
    ctx.progress.note(`created firewall ${firewallName} (id ${firewall.id})`);
    return firewall;
  }
  if (!sameRules(existing.rules, rules)) {
    await waitForActions(ctx.client, await ctx.client.setFirewallRules(existing.id, rules), ctx.progress);
    ctx.progress.note(`updated the rules of firewall ${firewallName}`);
  }
  return existing;
}

export function endpointOf(server: Server, listenPort: number): string {
  const ip = server.public_net.ipv4?.ip;
  if (!ip)
    throw new OperationError(
      `server ${server.name} has no public IPv4 address; the gateway needs one to reach it`,
    );
  return `${ip}:${listenPort}`;
}

/** Why a server is not usable, with the fix; undefined when it runs. */
export async function serverTrouble(ctx: HetznerContext, server: Server): Promise<string | undefined> {
  if (server.status === "running") return undefined;
  const failed = (await ctx.client.listServerActions(server.id, ["error"])).map(
    (a) =>
      `${a.command.replaceAll("_", " ")} (${a.error?.code ?? "error"}: ${a.error?.message ?? "no details"})`,
  );
  const running = (await ctx.client.listServerActions(server.id, ["running"])).map((a) =>
    a.command.replaceAll("_", " "),
  );
  const why = failed.length
    ? `: failed action(s): ${failed.join(", ")}`
    : running.length
      ? ` (still running: ${running.join(", ")})`
      : "";
  const fix =
    running.length && !failed.length
      ? "wait, then check again with wg-egress exit status"
      : server.status === "off"
        ? "start it in the Hetzner Console, or delete it with wg-egress exit deprovision --yes and provision again"
        : "delete it with wg-egress exit deprovision --yes, then run wg-egress exit provision again";
  return `server ${server.name} (id ${server.id}) is ${server.status}, not running${why}; ${fix}`;
}

async function createServer(
  ctx: HetznerContext,
  firewall: Firewall,
  userData: () => Promise<string>,
  created: Created,
): Promise<Server> {
  const h = ctx.exit.hetzner;
  let res: Awaited<ReturnType<typeof ctx.client.createServer>>;
  try {
    res = await ctx.client.createServer({
      name: h.serverName,
      server_type: h.serverType,
      image: h.image,
      location: h.location,
      ssh_keys: h.sshKeyNames,
      user_data: await userData(),
      labels: h.labels,
      firewalls: [{ firewall: firewall.id }],
      public_net: { enable_ipv4: true, enable_ipv6: true },
    });
  } catch (e) {
    return rollback(
      ctx,
      created,
      e instanceof HetznerApiError && e.code === "uniqueness_error"
        ? `a server named ${h.serverName} was created meanwhile by someone else; run provision again`
        : errorMessage(e),
    );
  }
  created.server = res.server;
  const id = res.server.id;
  ctx.progress.note(`creating server ${h.serverName} (id ${id}, ${h.serverType} in ${h.location})`);
  try {
    await waitForActions(ctx.client, [res.action, ...res.next_actions], ctx.progress);
  } catch (e) {
    return rollback(ctx, created, `server ${h.serverName} (id ${id}): ${errorMessage(e)}`);
  }
  const server = await ctx.client.getServer(id);
  if (server.status !== "running")
    return rollback(ctx, created, `server ${h.serverName} (id ${id}) is ${server.status} after its creation`);
  return server;
}

/** An existing server: wait for what still runs on it; a failed one is an error, never "found". */
async function existingServer(ctx: HetznerContext, existing: Server, firewall: Firewall): Promise<Server> {
  ctx.progress.note(`server ${existing.name} (id ${existing.id}) exists: not creating another`);
  if (existing.status !== "running")
    await waitForActions(
      ctx.client,
      await ctx.client.listServerActions(existing.id, ["running"]),
      ctx.progress,
    );
  const server = await ctx.client.getServer(existing.id);
  const trouble = await serverTrouble(ctx, server);
  if (trouble) throw new OperationError(trouble);
  if (!server.public_net.firewalls.some((f) => f.id === firewall.id)) {
    await waitForActions(
      ctx.client,
      await ctx.client.applyFirewall(firewall.id, [{ type: "server", server: { id: server.id } }]),
      ctx.progress,
    );
    ctx.progress.note(`applied firewall ${firewall.name} to ${server.name}`);
  }
  return server;
}

/**
 * Find-or-create: the firewall (SSH from home, WireGuard open), then the server named and labelled ours with
 * that firewall, then its reverse DNS. Running it again changes nothing but drift. A failure deletes what
 * this run created, or names what is left.
 */
export async function provision(
  ctx: HetznerContext,
  sshSources: string[],
  userData: () => Promise<string>,
): Promise<ProvisionResult> {
  const { cost } = await serverTypeCost(ctx);
  // Checked before anything is created: a foreign same-named server stops us with nothing half-applied.
  const existing = await findServer(ctx);
  if (!existing) {
    checkLogin(ctx.exit);
    await checkSshKeys(ctx);
  }
  const created: Created = {};
  const firewall = await ensureFirewall(ctx, sshSources, created);
  let server = existing
    ? await existingServer(ctx, existing, firewall)
    : await createServer(ctx, firewall, userData, created);
  try {
    server = await ensureReverseDns(ctx, server);
  } catch (e) {
    throw new OperationError(
      `server ${server.name} is ${existing ? "there" : "created"}, but setting its reverse DNS failed: ${errorMessage(e)}; run provision again to retry`,
    );
  }
  server = await ctx.client.getServer(server.id);
  return { server, firewall, created: !existing, cost, endpoint: endpointOf(server, ctx.exit.listenPort) };
}
