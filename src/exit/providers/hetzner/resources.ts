import type { ExitConfig } from "../../../config/exit-schema.js";
import { UserError } from "../../../util/errors.js";
import type { Progress } from "../../progress.js";
import { type HetznerClient, hasLabels, labelSelector } from "./client.js";
import type { Firewall, Server } from "./types.js";

/** What every Hetzner exit command works with. */
export interface HetznerContext {
  client: HetznerClient;
  exit: ExitConfig;
  progress: Progress;
  /** Result lines (stdout). */
  out: (line: string) => void;
}

function refuse(kind: string, name: string, labels: Record<string, string>): never {
  throw new UserError(
    `${kind} "${name}" exists but lacks the label ${labelSelector(labels)}: wg-egress does not touch resources it did not create; choose another name in exit.hetzner or label it in the Console`,
  );
}

/**
 * Our server: the one carrying our labels (even if renamed). A same-named server without them is someone
 * else's and is refused, never adopted.
 */
export async function findServer(ctx: HetznerContext): Promise<Server | undefined> {
  const { labels, serverName } = ctx.exit.hetzner;
  const ours = await ctx.client.listServers({ label_selector: labelSelector(labels) });
  const named = ours.filter((s) => s.name === serverName);
  if (named.length) return named[0];
  if (ours.length === 1) return ours[0];
  if (ours.length > 1)
    throw new UserError(
      `${ours.length} servers carry the label ${labelSelector(labels)} (${ours.map((s) => s.name).join(", ")}), none named ${serverName}: set exit.hetzner.serverName to the one to use`,
    );
  const other = await ctx.client.listServers({ name: serverName });
  if (other.length) refuse("server", serverName, labels);
  return undefined;
}

export async function findFirewall(ctx: HetznerContext): Promise<Firewall | undefined> {
  const { labels, firewallName } = ctx.exit.hetzner;
  const [fw] = await ctx.client.listFirewalls({ name: firewallName });
  if (fw && !hasLabels(fw, labels)) refuse("firewall", firewallName, labels);
  return fw;
}
