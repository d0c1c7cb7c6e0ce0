import { readFileSync } from "node:fs";
import type { GatewayConfig } from "../config/gateway-schema.js";
import { UserError } from "../util/errors.js";

/** The proxy's uid: gateway.proxyUser (a name, looked up in /etc/passwd) or gateway.proxyUid. */
export function resolveProxyUid(gw: GatewayConfig, passwd = "/etc/passwd"): number {
  if (!gw.proxyUser) return gw.proxyUid;
  const line = readFileSync(passwd, "utf8")
    .split("\n")
    .find((l) => l.split(":")[0] === gw.proxyUser);
  if (!line)
    throw new UserError(
      `unknown user "${gw.proxyUser}" (gateway.proxyUser): create it or set gateway.proxyUid`,
    );
  return Number(line.split(":")[2]);
}
