import { isIP } from "node:net";

export interface HostPort {
  host: string;
  port: number;
}

/**
 * A HOST:PORT the config schema parsed once: every command gets the parts, and it still prints (and
 * serialises, for defaults and rendered files) as the text a user writes.
 */
export class ParsedHostPort implements HostPort {
  constructor(
    readonly host: string,
    readonly port: number,
  ) {}
  toString(): string {
    return formatHostPort(this);
  }
  toJSON(): string {
    return this.toString();
  }
}

/**
 * Parses "HOST:PORT", "[v6]:PORT" or ":PORT". Returns an error string instead of throwing,
 * so the config schema can turn it into a one-line message naming the key.
 */
export function parseHostPort(text: string): ParsedHostPort | string {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]]*):(\d+)$/.exec(text);
  if (!m) return `expected HOST:PORT (IPv6 as [::1]:1080), got "${text}"`;
  const host = m[1] === "" ? "0.0.0.0" : m[1];
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return `port must be 0-65535, got "${m[2]}"`;
  if (text.startsWith("[") && isIP(host) !== 6) return `"${host}" is not an IPv6 address`;
  return new ParsedHostPort(host, port);
}

export function formatHostPort({ host, port }: HostPort): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
