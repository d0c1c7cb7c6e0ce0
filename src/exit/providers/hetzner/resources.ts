import type { ExitConfig } from "../../../config/exit-schema.js";
import { OperationError, UsageError } from "../../../util/errors.js";
import type { Progress } from "../../progress.js";
import { pollIntervalMs, waitForActions } from "./actions.js";
import { HetznerApiError, type HetznerClient, hasLabels, labelSelector } from "./client.js";
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
  throw new UsageError(
    `${kind} "${name}" exists but lacks the label ${labelSelector(labels)}: wg-egress does not touch resources it did not create; choose another name in exit.hetzner or label it in the Console`,
  );
}

/**
 * Our server: the one named exit.hetzner.serverName that carries our labels. By name and label both: another
 * labelled server (a second exit, another config) is not ours to report, firewall or delete, and a
 * same-named server without the labels is someone else's, refused, never adopted.
 */
export async function findServer(ctx: HetznerContext): Promise<Server | undefined> {
  const { labels, serverName } = ctx.exit.hetzner;
  const [server] = await ctx.client.listServers({ name: serverName });
  if (server && !hasLabels(server, labels)) refuse("server", serverName, labels);
  return server;
}

export async function findFirewall(ctx: HetznerContext): Promise<Firewall | undefined> {
  const { labels, firewallName } = ctx.exit.hetzner;
  const [fw] = await ctx.client.listFirewalls({ name: firewallName });
  if (fw && !hasLabels(fw, labels)) refuse("firewall", firewallName, labels);
  return fw;
}

export async function deleteServer(ctx: HetznerContext, server: Server): Promise<void> {
  await waitForActions(ctx.client, [await ctx.client.deleteServer(server.id)], ctx.progress);
}

const FIREWALL_DELETE_TRIES = 20;

/** Deletes a firewall, waiting while the API still counts a just-deleted server as using it. */
export async function deleteFirewall(ctx: HetznerContext, fw: Firewall): Promise<void> {
  for (let i = 1; ; i++) {
    try {
      await ctx.client.deleteFirewall(fw.id);
      return;
    } catch (e) {
      const inUse = e instanceof HetznerApiError && e.code === "resource_in_use";
      if (!inUse) throw e;
      if (i >= FIREWALL_DELETE_TRIES)
        throw new OperationError(
          `firewall ${fw.name} is still applied to other resources: remove it from them first, then run deprovision again`,
        );
      await new Promise((r) => setTimeout(r, pollIntervalMs()));
    }
  }
}
