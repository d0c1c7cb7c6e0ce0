import { waitForActions } from "./actions.js";
import type { HetznerContext } from "./resources.js";
import type { Server } from "./types.js";

/**
 * exit.reverseDns: the PTR record of the exit's IPv4 (the address proxied connections leave from). IRC
 * servers accept a client's hostname only when it is forward-confirmed: the PTR name must resolve back to
 * the address, which is the user's own DNS (we say so). Returns the server as it is afterwards.
 */
export async function ensureReverseDns(ctx: HetznerContext, server: Server): Promise<Server> {
  const want = ctx.exit.reverseDns;
  const v4 = server.public_net.ipv4;
  if (!want || !v4 || v4.dns_ptr.toLowerCase() === want.toLowerCase()) return server;
  await waitForActions(ctx.client, [await ctx.client.changeDnsPtr(server.id, v4.ip, want)], ctx.progress);
  ctx.progress.note(
    `reverse DNS of ${v4.ip} set to ${want}; give ${want} an A record ${v4.ip} too (IRC servers check that the name resolves back)`,
  );
  return ctx.client.getServer(server.id);
}

/** For `exit status`: the PTR and whether it is what exit.reverseDns asks for. */
export function describeReverseDns(want: string | undefined, server: Server): string {
  const v4 = server.public_net.ipv4;
  if (!v4) return "reverse DNS: no IPv4";
  const now = `reverse DNS ${v4.ip} → ${v4.dns_ptr}`;
  if (!want) return `${now} (exit.reverseDns not set)`;
  return v4.dns_ptr.toLowerCase() === want.toLowerCase()
    ? `${now} (= exit.reverseDns)`
    : `${now}, NOT exit.reverseDns ${want}: run wg-egress exit provision to set it`;
}
