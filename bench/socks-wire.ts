/**
 * The few SOCKS5 client messages the load generator needs (RFC 1928), kept independent of the
 * proxy's own codec so a bug there cannot hide itself in the benchmark.
 */
import { isIPv4 } from "node:net";

/** Version 5, one method offered: 0x00 "no authentication". */
export const GREETING = Buffer.from([5, 1, 0]);

/** CONNECT to an IPv4 address. */
export function connectRequest(host: string, port: number): Buffer {
  if (!isIPv4(host)) throw new Error(`bench targets are IPv4 literals, got "${host}"`);
  return Buffer.from([5, 1, 0, 1, ...host.split(".").map(Number), port >> 8, port & 0xff]);
}

/**
 * Length of the CONNECT reply at the start of `buf`, or undefined if more bytes are needed
 * to know it. Throws on a malformed reply.
 */
export function replyLength(buf: Buffer): number | undefined {
  if (buf.length < 5) return undefined;
  if (buf[0] !== 5) throw new Error(`reply version ${buf[0]}, expected 5`);
  switch (buf[3]) {
    case 1:
      return 10;
    case 4:
      return 22;
    case 3:
      return 7 + buf[4];
    default:
      throw new Error(`reply address type ${buf[3]}`);
  }
}
