import { OperationError } from "../../../util/errors.js";
import { waitForActions } from "./actions.js";
import { asCidr, firewallRules, sameRules, sshSourcesOf } from "./plan.js";
import { findFirewall, type HetznerContext } from "./resources.js";

/** Points the firewall's SSH rule at `sources` (the home IP); a no-op when it already does. */
export async function updateHomeIp(
  ctx: HetznerContext,
  sources: string[],
): Promise<{ changed: boolean; before: string[]; after: string[] }> {
  const fw = await findFirewall(ctx);
  if (!fw)
    throw new OperationError(
      `no firewall ${ctx.exit.hetzner.firewallName}: run wg-egress exit provision first`,
    );
  const rules = firewallRules(sources, ctx.exit.listenPort);
  const before = sshSourcesOf(fw);
  const after = sources.map(asCidr);
  if (sameRules(fw.rules, rules)) return { changed: false, before, after };
  await waitForActions(ctx.client, await ctx.client.setFirewallRules(fw.id, rules), ctx.progress);
  return { changed: true, before, after };
}
