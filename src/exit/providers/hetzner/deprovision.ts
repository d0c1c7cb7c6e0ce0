import { OperationError } from "../../../util/errors.js";
import { deleteFirewall, deleteServer, findFirewall, findServer, type HetznerContext } from "./resources.js";
import type { Server } from "./types.js";

/**
 * Deletes our server, waits until it is gone, then our firewall (the API refuses to delete a firewall that
 * is still applied). Resources without our labels are refused by findServer/findFirewall. Returns the
 * deleted server, so the caller can forget its address.
 */
export async function deprovision(
  ctx: HetznerContext,
  confirm: (what: string) => Promise<boolean>,
): Promise<{ deleted: boolean; server?: Server }> {
  const server = await findServer(ctx);
  const fw = await findFirewall(ctx);
  if (!server && !fw) {
    ctx.out("nothing to delete: no server or firewall of ours");
    return { deleted: false };
  }
  const what = [
    server ? `server ${server.name} (id ${server.id}, ${server.public_net.ipv4?.ip ?? "no IPv4"})` : "",
    fw ? `firewall ${fw.name} (id ${fw.id})` : "",
  ]
    .filter(Boolean)
    .join(" and ");
  if (!(await confirm(what))) throw new OperationError("not confirmed: nothing deleted");
  if (server) {
    await deleteServer(ctx, server);
    ctx.out(`deleted server ${server.name}`);
  }
  if (fw) {
    await deleteFirewall(ctx, fw);
    ctx.out(`deleted firewall ${fw.name}`);
  }
  return { deleted: true, server };
}
