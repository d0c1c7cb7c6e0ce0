/**
 * RFC 1928 (SOCKS5) and RFC 1929 (username/password) messages: pure, incremental parsers and
 * serializers. A parser looks at `buf` from `offset` and answers "need more bytes", a message with
 * the number of bytes it used, or an error (with the reply code to send, when one applies). They
 * never throw on any input, so the server can feed them whatever the network delivers.
 */
import { isIPv6 } from "node:net";
import ipaddr from "ipaddr.js";
import { canonicalIp, ipv4Number } from "../policy/addresses.js";
import { parseHost } from "./host.js";

export const SOCKS_VERSION = 5;
export const AUTH_VERSION = 1;

export const METHOD = { noAuth: 0x00, userPass: 0x02, noAcceptable: 0xff } as const;
export const CMD = { connect: 1, bind: 2, udpAssociate: 3 } as const;
export const ATYP = { ipv4: 1, domain: 3, ipv6: 4 } as const;

export const REP = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

export type Parsed<T> =
  | { status: "more" }
  | { status: "ok"; value: T; length: number }
  | { status: "error"; message: string; reply?: number };

/** Shared, so the common "not yet" answer allocates nothing. */
export const MORE: { status: "more" } = Object.freeze({ status: "more" });

function ok<T>(value: T, length: number): Parsed<T> {
  return { status: "ok", value, length };
}

function fail(message: string, reply?: number): Parsed<never> {
  return { status: "error", message, reply };
}

export interface Greeting {
  methods: number[];
}

/** VER NMETHODS METHODS... ; zero methods parses fine (the server then answers 0xFF). */
export function parseGreeting(buf: Uint8Array, offset = 0): Parsed<Greeting> {
  const avail = buf.length - offset;
  if (avail < 1) return MORE;
  if (buf[offset] !== SOCKS_VERSION) return fail(`SOCKS version ${buf[offset]}, expected 5`);
  if (avail < 2) return MORE;
  const n = buf[offset + 1];
  if (avail < 2 + n) return MORE;
  // A plain loop: Array.from over a subarray took V8's generic path on every connection.
  const methods: number[] = [];
  for (let i = offset + 2; i < offset + 2 + n; i++) methods.push(buf[i]!);
  return ok({ methods }, 2 + n);
}

export function serializeGreeting(methods: readonly number[]): Buffer {
  return Buffer.from([SOCKS_VERSION, methods.length, ...methods]);
}

/** The method choice for `method`: one shared buffer per method (written as is, never changed). */
export function serializeMethodChoice(method: number): Buffer {
  let b = METHOD_CHOICES[method];
  if (b === undefined) {
    b = Buffer.from([SOCKS_VERSION, method]);
    METHOD_CHOICES[method] = b;
  }
  return b;
}
const METHOD_CHOICES: (Buffer | undefined)[] = [];

export interface Credentials {
  username: string;
  password: string;
}

/** RFC 1929: VER(1) ULEN UNAME PLEN PASSWD. */
export function parseAuthRequest(buf: Uint8Array, offset = 0): Parsed<Credentials> {
  const avail = buf.length - offset;
  if (avail < 1) return MORE;
  if (buf[offset] !== AUTH_VERSION) return fail(`auth version ${buf[offset]}, expected 1`);
  if (avail < 2) return MORE;
  const ulen = buf[offset + 1];
  if (avail < 3 + ulen) return MORE;
  const plen = buf[offset + 2 + ulen];
  const total = 3 + ulen + plen;
  if (avail < total) return MORE;
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const username = b.toString("utf8", offset + 2, offset + 2 + ulen);
  const password = b.toString("utf8", offset + 3 + ulen, offset + total);
  return ok({ username, password }, total);
}

export function serializeAuthRequest({ username, password }: Credentials): Buffer {
  const u = Buffer.from(username, "utf8");
  const p = Buffer.from(password, "utf8");
  if (u.length > 255 || p.length > 255)
    throw new RangeError("username and password are limited to 255 bytes");
  return Buffer.concat([Buffer.from([AUTH_VERSION, u.length]), u, Buffer.from([p.length]), p]);
}

/** Status 0 = success; anything else = failure, after which the server closes. */
export function serializeAuthReply(success: boolean): Buffer {
  return success ? AUTH_OK : AUTH_FAIL;
}
const AUTH_OK = Buffer.from([AUTH_VERSION, 0]);
const AUTH_FAIL = Buffer.from([AUTH_VERSION, 1]);

/**
 * A request (byte 1 = CMD) and a reply (byte 1 = REP) share one layout:
 * VER CODE RSV ATYP ADDR PORT. `host` is a canonical IP literal (IPv4-mapped IPv6 as IPv4; also when
 * sent as a name) or a valid host name (see parseHost).
 */
export interface AddressMessage extends Address {
  code: number;
}

export interface Address {
  atyp: number;
  host: string;
  port: number;
  /**
   * Set when a domain name (ATYP 3) is neither a host name nor an IP literal (see parseHost): why.
   * `host` is then the raw text. A CONNECT gets reply 0x01; UDP ASSOCIATE ignores the address anyway
   * (PySocks sends the name "0").
   */
  invalid?: string;
}

/** ATYP ADDR PORT at `pos`; the length counts from `pos`. */
function parseAddress(buf: Uint8Array, pos: number): Parsed<Address> {
  if (buf.length < pos + 1) return MORE;
  const atyp = buf[pos];
  let addrLen: number;
  let start = pos + 1;
  if (atyp === ATYP.ipv4) addrLen = 4;
  else if (atyp === ATYP.ipv6) addrLen = 16;
  else if (atyp === ATYP.domain) {
    if (buf.length < pos + 2) return MORE;
    addrLen = buf[pos + 1];
    start++;
  } else return fail(`address type ${atyp}`, REP.addressTypeNotSupported);
  const end = start + addrLen;
  if (buf.length < end + 2) return MORE;
  let host: string;
  let invalid: string | undefined;
  if (atyp === ATYP.ipv4) host = `${buf[start]}.${buf[start + 1]}.${buf[start + 2]}.${buf[start + 3]}`;
  else if (atyp === ATYP.ipv6) {
    const text = ipaddr.fromByteArray(Array.from(buf.subarray(start, end))).toString();
    host = canonicalIp(text) ?? text;
  } else {
    const text = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString("latin1", start, end);
    const h = parseHost(text);
    host = h.kind === "ip" ? h.ip : h.kind === "name" ? h.name : text;
    if (h.kind === "invalid") invalid = `invalid destination name (${h.why})`;
  }
  const port = (buf[end] << 8) | buf[end + 1];
  return ok(invalid === undefined ? { atyp, host, port } : { atyp, host, port, invalid }, end + 2 - pos);
}

export function parseAddressMessage(buf: Uint8Array, offset = 0): Parsed<AddressMessage> {
  const avail = buf.length - offset;
  if (avail < 1) return MORE;
  if (buf[offset] !== SOCKS_VERSION) return fail(`SOCKS version ${buf[offset]}, expected 5`);
  if (avail < 4) return MORE;
  const r = parseAddress(buf, offset + 3);
  if (r.status !== "ok") return r;
  return ok({ code: buf[offset + 1], ...r.value }, r.length + 3);
}

export const parseRequest = parseAddressMessage;
export const parseReply = parseAddressMessage;

/** Three leading bytes, then ATYP ADDR PORT; the address type follows from `host` (IPv4, IPv6 or a name). */
function serializeWithAddress(b0: number, b1: number, b2: number, host: string, port: number): Buffer {
  let out: Buffer;
  let at: number;
  const v4 = ipv4Number(host); // -1 unless a dotted quad (as isIPv4 accepts), without a regex or split
  if (v4 >= 0) {
    out = Buffer.allocUnsafe(10);
    out[3] = ATYP.ipv4;
    out.writeUInt32BE(v4, 4);
    at = 8;
  } else if (isIPv6(host)) {
    out = Buffer.allocUnsafe(22);
    out[3] = ATYP.ipv6;
    out.set(ipaddr.IPv6.parse(host).toByteArray(), 4);
    at = 20;
  } else {
    const name = Buffer.from(host, "latin1");
    if (name.length < 1 || name.length > 255)
      throw new RangeError(`domain name must be 1-255 bytes: "${host}"`);
    out = Buffer.allocUnsafe(7 + name.length);
    out[3] = ATYP.domain;
    out[4] = name.length;
    name.copy(out, 5);
    at = 5 + name.length;
  }
  out[0] = b0;
  out[1] = b1;
  out[2] = b2;
  out.writeUInt16BE(port, at);
  return out;
}

/** Serializes a request or reply. */
export function serializeAddressMessage(code: number, host: string, port: number): Buffer {
  return serializeWithAddress(SOCKS_VERSION, code, 0, host, port);
}

/** A UDP ASSOCIATE datagram: RSV(2) FRAG ATYP DST.ADDR DST.PORT DATA. */
export interface UdpDatagram extends Address {
  frag: number;
  data: Buffer;
}

/** Datagrams arrive whole: a short one is an error, never "more". */
export function parseUdpDatagram(buf: Buffer): Parsed<UdpDatagram> {
  if (buf.length < 4) return fail("datagram shorter than its header");
  const r = parseAddress(buf, 3);
  if (r.status === "more") return fail("datagram shorter than its header");
  if (r.status === "error") return r;
  return ok({ frag: buf[2], ...r.value, data: buf.subarray(3 + r.length) }, buf.length);
}

/** The header the proxy puts before a datagram it relays back: where it came from. */
export function serializeUdpHeader(host: string, port: number): Buffer {
  return serializeWithAddress(0, 0, 0, host, port);
}

export function serializeRequest(cmd: number, host: string, port: number): Buffer {
  return serializeAddressMessage(cmd, host, port);
}

/** Failure replies carry 0.0.0.0:0 (RFC 1928 leaves the address unspecified then); cached per code. */
const FAILURE_REPLIES = new Map<number, Buffer>();

export function serializeReply(rep: number, host = "0.0.0.0", port = 0): Buffer {
  if (host === "0.0.0.0" && port === 0) {
    let b = FAILURE_REPLIES.get(rep);
    if (!b) {
      b = serializeAddressMessage(rep, host, port);
      FAILURE_REPLIES.set(rep, b);
    }
    return b;
  }
  return serializeAddressMessage(rep, host, port);
}
