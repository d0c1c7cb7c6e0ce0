import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import { z } from "zod";
import { ParsedHostPort, parseHostPort } from "../util/hostport.js";

/** Shared field types for every config section, so each error message says what is expected. */

/** "HOST:PORT", validated and kept as text (for files we write back, like the secrets). */
export const hostPortText = z.string().superRefine((v, ctx) => {
  const r = parseHostPort(v);
  if (typeof r === "string") ctx.addIssue({ code: "custom", message: r });
});

/**
 * "HOST:PORT" in the file, a ParsedHostPort in the config: parsed here once, never again downstream.
 * An already parsed value passes as its text, so a config built from another one validates again.
 */
export const hostPort = z.preprocess(
  (v) => (v instanceof ParsedHostPort ? v.toString() : v),
  z.string().transform((v, ctx) => {
    const r = parseHostPort(v);
    if (typeof r !== "string") return r;
    ctx.addIssue({ code: "custom", message: r });
    return z.NEVER;
  }),
);

export const cidr = z.string().superRefine((v, ctx) => {
  try {
    if (v.includes("/")) ipaddr.parseCIDR(v);
    else ipaddr.parse(v);
  } catch {
    ctx.addIssue({ code: "custom", message: "expected an IP address or CIDR like 10.0.0.0/8 or fd00::/8" });
  }
});

/** An interface address with prefix length, e.g. 10.100.0.2/24. */
export const ifaceAddress = z.string().superRefine((v, ctx) => {
  try {
    ipaddr.parseCIDR(v);
  } catch {
    ctx.addIssue({ code: "custom", message: "expected ADDRESS/PREFIX like 10.100.0.2/24" });
  }
});

export const port = z.number().int().min(1).max(65535);

export const wgKey = z
  .string()
  .regex(/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/, "expected a WireGuard key (44 characters of base64)");

/** Accepts 51820, "51820", "0xca6c" (config files often write marks in hex). */
export const intOrHex = z.union([
  z.number().int().nonnegative(),
  z
    .string()
    .regex(/^(0x[0-9a-fA-F]+|\d+)$/, "expected a number, decimal or 0x-hex")
    .transform((s) => Number(s)),
]);

export const seconds = z.number().nonnegative();

/** What c-ares' setServers accepts: an IP literal, optionally with a port. */
export const dnsServer = z.string().refine(
  (v) => {
    if (isIP(v)) return true;
    const hp = parseHostPort(v);
    return typeof hp !== "string" && isIP(hp.host) !== 0 && hp.port > 0;
  },
  { message: "expected an IP address, IP:PORT or [IPv6]:PORT of a DNS server" },
);
