/**
 * The one check for a destination host as a client names it: a SOCKS5 domain name (ATYP 3), the host
 * of an HTTP CONNECT target, and the destination of a UDP datagram. Pure; never throws.
 */
import { isIPv4, isIPv6 } from "node:net";
import { canonicalIp } from "../policy/addresses.js";

export type Host =
  | { kind: "ip"; ip: string }
  | { kind: "name"; name: string }
  | { kind: "invalid"; why: string };

/** RFC 1035 §2.3.4: 255 bytes on the wire, i.e. 253 characters of text (one more for a trailing dot). */
const MAX_NAME = 253;

/**
 * Letters, digits and hyphens (RFC 1123 §2.1), 1-63 per label, no hyphen at either end. Underscores
 * are accepted too: DNS carries them and real host names use them (service names, some cloud hosts).
 */
const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/**
 * A last label that is all digits, or 0x-hex, reads as a number to the C library's resolver
 * (inet_aton: "127.1", "0x7f.1", "2130706433" are addresses, not names): such text is neither a name
 * nor one of the IP literals we accept.
 */
const NUMERIC = /^(?:\d+|0x[0-9a-f]*)$/i;

/**
 * A host name (RFC 1123 labels, ASCII only: internationalized names arrive as punycode) or an IPv4 /
 * IPv6 literal without a zone id. IP literals come back canonical, IPv4-mapped IPv6 as IPv4, so that
 * policy, logs and connects all see the address actually used. Anything else (NUL and control bytes,
 * '%' zone ids, brackets, spaces, non-ASCII, empty labels) is invalid, with the reason for the log.
 */
export function parseHost(text: string): Host {
  if (text.length === 0) return { kind: "invalid", why: "empty name" };
  if (isIPv4(text)) return { kind: "ip", ip: text };
  // Node's isIPv6 accepts a zone id ("fe80::1%eth0"); a zone names an interface of the client's host.
  if (text.includes("%")) return { kind: "invalid", why: "zone id in address" };
  if (isIPv6(text)) {
    const ip = canonicalIp(text);
    return ip === undefined ? { kind: "invalid", why: "malformed IPv6 address" } : { kind: "ip", ip };
  }
  const name = text.endsWith(".") ? text.slice(0, -1) : text;
  if (name.length === 0 || name.length > MAX_NAME) return { kind: "invalid", why: "name length" };
  const labels = name.split(".");
  for (const label of labels) {
    if (!LABEL.test(label)) return { kind: "invalid", why: "not a host name" };
  }
  if (NUMERIC.test(labels[labels.length - 1]!)) return { kind: "invalid", why: "numeric name" };
  return { kind: "name", name: text };
}
