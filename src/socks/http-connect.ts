/**
 * HTTP CONNECT on the SOCKS port, for apps that only know HTTPS_PROXY. Pure: parse the request head,
 * build the response. The server tells the protocols apart by the first byte (0x05 vs a letter).
 */
import { isIPv6 } from "node:net";
import { parseHost } from "./host.js";
import type { Credentials, Parsed } from "./protocol.js";
import { MORE } from "./protocol.js";

/** Longer request heads are refused (431): CONNECT needs a line and a couple of headers. */
export const MAX_HEAD_BYTES = 8192;

export interface ConnectRequest {
  host: string;
  port: number;
  /** From Proxy-Authorization: Basic, when present and well-formed. */
  credentials?: Credentials;
}

const HEAD_END = Buffer.from("\r\n\r\n");

function httpFail(status: number, message: string): Parsed<never> {
  return { status: "error", message, reply: status };
}

/**
 * "host:port" or "[v6]:port" as in a CONNECT request target; the host passes the same check as a
 * SOCKS name (parseHost). Returns the reason when it is not one.
 */
function parseAuthority(target: string): { host: string; port: number } | string {
  const m = /^\[([^\]]*)\]:(\d{1,5})$/.exec(target) ?? /^([^:[\]]+):(\d{1,5})$/.exec(target);
  if (!m) return "CONNECT target must be host:port";
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return "CONNECT target port must be 1-65535";
  const h = parseHost(m[1]);
  if (h.kind === "invalid") return `invalid destination name (${h.why})`;
  const bracketed = target.startsWith("[");
  if (bracketed !== (h.kind === "ip" && isIPv6(m[1]))) return "IPv6 addresses, and only they, go in brackets";
  return { host: h.kind === "ip" ? h.ip : h.name, port };
}

function parseBasic(value: string): Credentials | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(value);
  if (!m) return undefined;
  const text = Buffer.from(m[1], "base64").toString("utf8");
  const colon = text.indexOf(":");
  return colon < 0 ? undefined : { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** The error's `reply` is the HTTP status to answer with (400, 405, 431). */
export function parseConnectHead(buf: Buffer): Parsed<ConnectRequest> {
  const end = buf.indexOf(HEAD_END);
  if (end < 0) return buf.length > MAX_HEAD_BYTES ? httpFail(431, "request head too large") : MORE;
  if (end > MAX_HEAD_BYTES) return httpFail(431, "request head too large");
  const lines = buf.toString("latin1", 0, end).split("\r\n");
  const m = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(lines[0]);
  if (!m) return httpFail(400, "malformed request line");
  if (m[1] !== "CONNECT") return httpFail(405, `method ${m[1]} (only CONNECT is served)`);
  const authority = parseAuthority(m[2]);
  if (typeof authority === "string") return httpFail(400, authority);
  let credentials: Credentials | undefined;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === "proxy-authorization") {
      credentials = parseBasic(line.slice(colon + 1).trim());
    }
  }
  const { host, port } = authority;
  return { status: "ok", value: { host, port, credentials }, length: end + HEAD_END.length };
}

const REASONS: Record<number, string> = {
  200: "Connection established",
  400: "Bad Request",
  403: "Forbidden",
  405: "Method Not Allowed",
  407: "Proxy Authentication Required",
  431: "Request Header Fields Too Large",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** A complete response head; errors carry a one-line text body and close the connection. */
export function httpResponse(status: number, detail = ""): Buffer {
  const reason = REASONS[status] ?? "Error";
  if (status === 200) return Buffer.from(`HTTP/1.1 200 ${reason}\r\n\r\n`, "latin1");
  const body = `${detail || reason}\n`;
  const headers = [
    `HTTP/1.1 ${status} ${reason}`,
    "Connection: close",
    "Content-Type: text/plain",
    `Content-Length: ${Buffer.byteLength(body)}`,
  ];
  if (status === 405) headers.push("Allow: CONNECT");
  if (status === 407) headers.push('Proxy-Authenticate: Basic realm="wg-egress"');
  return Buffer.from(`${headers.join("\r\n")}\r\n\r\n${body}`, "utf8");
}
