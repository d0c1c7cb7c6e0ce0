import { DnsError } from "../policy/resolve.js";
import { REP } from "./protocol.js";

/**
 * The SOCKS5 reply code for a failed CONNECT, from the real error.
 * - Name resolution failures (NXDOMAIN, no data, resolver timeout) → 0x04 host unreachable: RFC 1928
 *   has no DNS code and this is what curl and most clients report as "host unreachable".
 * - A connect timeout → 0x06 "TTL expired", the conventional code for "no answer in time".
 * - EACCES/EPERM (a local firewall reject, e.g. the kill switch's admin-prohibited) → 0x02 "not
 *   allowed by ruleset": the refusal comes from the gateway's own rules, not the destination.
 */
export function replyForError(err: unknown): number {
  if (err instanceof DnsError) return REP.hostUnreachable;
  switch ((err as NodeJS.ErrnoException | undefined)?.code) {
    case "ECONNREFUSED":
      return REP.connectionRefused;
    case "ENETUNREACH":
    case "ENETDOWN":
      return REP.networkUnreachable;
    case "EHOSTUNREACH":
    case "EHOSTDOWN":
    case "EADDRNOTAVAIL":
      return REP.hostUnreachable;
    case "ETIMEDOUT":
      return REP.ttlExpired;
    case "EACCES":
    case "EPERM":
      return REP.notAllowed;
    default:
      return REP.generalFailure;
  }
}

/** The HTTP CONNECT status for the same failures: 403 policy, 504 timeout, 502 anything else. */
export function httpStatusForReply(rep: number): number {
  if (rep === REP.notAllowed) return 403;
  if (rep === REP.ttlExpired) return 504;
  return 502;
}

/**
 * What an HTTP CONNECT client is told about a failure: the class of the reason only. The details
 * (the resolved address, the rule, the errno) go to the log, never to the client: a refusal text like
 * "inside.test → 10.0.0.5 is private" would let clients read internal DNS through the proxy.
 */
const REPLY_TEXT: Record<number, string> = {
  [REP.generalFailure]: "the proxy could not serve this request",
  [REP.notAllowed]: "destination not allowed by the proxy's policy",
  [REP.networkUnreachable]: "destination network unreachable",
  [REP.hostUnreachable]: "destination unreachable or its name does not resolve",
  [REP.connectionRefused]: "connection refused by the destination",
  [REP.ttlExpired]: "connecting to the destination timed out",
};

export function replyText(rep: number): string {
  return REPLY_TEXT[rep] ?? REPLY_TEXT[REP.generalFailure]!;
}

const REPLY_NAMES: Record<number, string> = {
  [REP.succeeded]: "succeeded",
  [REP.generalFailure]: "general_failure",
  [REP.notAllowed]: "not_allowed",
  [REP.networkUnreachable]: "network_unreachable",
  [REP.hostUnreachable]: "host_unreachable",
  [REP.connectionRefused]: "connection_refused",
  [REP.ttlExpired]: "ttl_expired",
  [REP.commandNotSupported]: "command_not_supported",
  [REP.addressTypeNotSupported]: "address_type_not_supported",
};

/** A stable label for logs and metrics. */
export function replyName(rep: number): string {
  return REPLY_NAMES[rep] ?? `0x${rep.toString(16).padStart(2, "0")}`;
}
