import { UserError } from "../../../util/errors.js";
import { pollIntervalMs, waitForActions } from "./actions.js";
import { HetznerApiError } from "./client.js";
import { findFirewall, findServer, type HetznerContext } from "./resources.js";

const FIREWALL_DELETE_TRIES = 20;

/**
 * Deletes our server, waits until it is gone, then our firewall (the API refuses to delete a firewall that
 * is still applied). Resources without our labels are refused by findServer/findFirewall.
 */
export async function deprovision(
  ctx: HetznerContext,
  confirm: (what: string) => Promise<boolean>,
): Promise<boolean> {
  const server = await findServer(ctx);
  const fw = await findFirewall(ctx);
  if (!server && !fw) {
    ctx.out("nothing to delete: no server or firewall of ours");
    return false;
  }
  const what = [
    server ? `server ${server.name} (id ${server.id}, ${server.public_net.ipv4?.ip ?? "no IPv4"})` : "",
    fw ? `firewall ${fw.name} (id ${fw.id})` : "",
  ]
    .filter(Boolean)
    .join(" and ");
  if (!(await confirm(what))) throw new UserError("not confirmed: nothing deleted", 1);
  if (server) {
    await waitForActions(ctx.client, [await ctx.client.deleteServer(server.id)], ctx.progress);
    ctx.out(`deleted server ${server.name}`);
  }
  if (fw) {
    for (let i = 1; ; i++) {
      try {
        await ctx.client.deleteFirewall(fw.id);
        break;
      } catch (e) {
        // Detaching from a deleted server can lag behind the delete action.
        if (!(e instanceof HetznerApiError && e.code === "resource_in_use") || i >= FIREWALL_DELETE_TRIES)
          throw e instanceof HetznerApiError && e.code === "resource_in_use"
            ? new UserError(
                `firewall ${fw.name} is still applied to other resources: remove it from them first, then run deprovision again`,
                1,
              )
            : e;
        await new Promise((r) => setTimeout(r, pollIntervalMs()));
      }
    }
    ctx.out(`deleted firewall ${fw.name}`);
  }
  return true;
}
