import { lookup } from "node:dns/promises";
import { isIP, type Socket, connect as tcpConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { ExitSpec } from "../config/exits.js";
import type { Config } from "../config/schema.js";
import { errorMessage } from "../util/errors.js";
import type { HostPort } from "../util/hostport.js";
import { type CheckResult, fail, pass, skip, warn } from "./check.js";
import { socksConnect } from "./socks-client.js";

/**
 * The decisive check: the IP an echo service sees through the proxy must be the exit's, and not the
 * gateway's own (the seed's `curl --socks5 10.1.0.1:1080 https://ifconfig.me`).
 */

type Dial = (host: string, port: number) => Promise<Socket>;

const BODY_LIMIT = 64 * 1024;

/** GET over a socket from `dial` (direct or through the proxy); https via TLS on top. Returns the body. */
export async function httpGet(url: string, dial: Dial, timeoutMs: number): Promise<string> {
  const u = new URL(url);
  const https = u.protocol === "https:";
  if (!https && u.protocol !== "http:") throw new Error(`${url}: only http and https URLs`);
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const raw = await dial(host, Number(u.port || (https ? 443 : 80)));
  const sock = https ? tlsConnect({ socket: raw, servername: isIP(host) ? undefined : host }) : raw;
  sock.setTimeout(timeoutMs, () =>
    sock.destroy(new Error(`no answer from ${u.host} within ${timeoutMs} ms`)),
  );
  // HTTP/1.0: no chunked encoding to undo; some echo services only answer curl with plain text.
  sock.write(
    `GET ${u.pathname}${u.search} HTTP/1.0\r\nHost: ${u.host}\r\nUser-Agent: curl/8 (wg-egress doctor)\r\nAccept: text/plain\r\n\r\n`,
  );
  const chunks: Buffer[] = [];
  let size = 0;
  await new Promise<void>((resolve, reject) => {
    sock.on("data", (d: Buffer) => {
      size += d.length;
      if (size > BODY_LIMIT) sock.destroy(new Error(`answer from ${u.host} larger than ${BODY_LIMIT} bytes`));
      else chunks.push(d);
    });
    sock
      .once("end", resolve)
      .once("close", () => resolve())
      .once("error", reject);
  });
  const text = Buffer.concat(chunks).toString("utf8");
  const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(text)?.[1]);
  if (status !== 200) throw new Error(`${url} answered ${status ? `HTTP ${status}` : "no HTTP status"}`);
  return text.slice(text.indexOf("\r\n\r\n") + 4);
}

/** The first IP address in an echo service's answer. */
export function extractIp(body: string): string | null {
  for (const token of body.split(/[\s"'<>,;{}]+/)) if (isIP(token)) return token;
  return null;
}

export type Seen = { ip: string } | { error: string };

export interface IpObservation {
  url: string;
  direct: Seen;
  proxied: Seen;
  /** The exit's public address (gateway.peer.endpoint, resolved), or null when unknown. */
  exit: string | null;
}

/** A plain TCP connection, from `localAddress` when given. */
const dialFrom =
  (localAddress?: string): Dial =>
  (host, port) =>
    new Promise((resolve, reject) => {
      const s = tcpConnect({ host, port, localAddress });
      s.once("connect", () => resolve(s)).once("error", reject);
    });

const directDial = dialFrom();

async function seen(url: string, dial: Dial, timeoutMs: number): Promise<Seen> {
  try {
    const ip = extractIp(await httpGet(url, dial, timeoutMs));
    return ip ? { ip } : { error: `${url} answered without an IP address` };
  } catch (e) {
    return { error: errorMessage(e) };
  }
}

export interface IpCheckOptions {
  url: string;
  /** Which proxy address to test; default proxy.listen[0]. */
  proxy?: HostPort;
  timeoutMs?: number;
}

/** What the echo service sees directly and through `via`, and the exit's address to compare with. */
async function observeVia(
  url: string,
  via: Dial,
  endpoint: HostPort | undefined,
  timeoutMs: number,
): Promise<IpObservation> {
  const [direct, proxied, exit] = await Promise.all([
    seen(url, directDial, timeoutMs),
    seen(url, via, timeoutMs),
    endpoint
      ? lookup(endpoint.host).then(
          (r) => r.address,
          () => null,
        )
      : Promise.resolve(null),
  ]);
  return { url, direct, proxied, exit };
}

export async function observeIps(config: Config, opts: IpCheckOptions): Promise<IpObservation> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const proxy = opts.proxy ?? config.proxy.listen[0]!;
  // A wildcard listen address is reached via loopback.
  const target = proxy.host === "0.0.0.0" || proxy.host === "::" ? { ...proxy, host: "127.0.0.1" } : proxy;
  const user = config.proxy.users[0];
  const viaProxy: Dial = (host, port) =>
    socksConnect(target, host, port, { username: user?.name, password: user?.password, timeoutMs });
  return observeVia(opts.url, viaProxy, config.gateway.peer.endpoint, timeoutMs);
}

/**
 * Through one exit other than the first, as the proxy sends there: from that exit's tunnel address,
 * which the gateway's source rule routes into that exit's tunnel (or nowhere: its kill switch).
 */
export function observeExitIp(
  x: Pick<ExitSpec, "address" | "peer">,
  opts: { url: string; timeoutMs?: number },
): Promise<IpObservation> {
  return observeVia(opts.url, dialFrom(x.address.split("/")[0]), x.peer.endpoint, opts.timeoutMs ?? 10_000);
}

/** PURE verdict; `name` and `via` say which path was tested (the proxy, or one exit's source address). */
export function exitIpCheck(
  o: IpObservation,
  name = "exit IP through the proxy",
  via = "through the proxy",
): CheckResult {
  const direct = "ip" in o.direct ? o.direct.ip : null;
  if ("error" in o.proxied)
    return fail(
      name,
      `request ${via} failed: ${o.proxied.error}`,
      /not a SOCKS5 server/.test(o.proxied.error)
        ? "another program answers on the proxy's address: check proxy.listen (or --proxy) and what listens there (ss -ltnp)"
        : /ECONNRESET|closed the connection/.test(o.proxied.error)
          ? "the proxy dropped this host before answering: add the gateway's own address to proxy.allowClients (--allow-client), or run doctor where the proxy admits it"
          : "with the tunnel or a rule broken the path fails closed (no leak): fix the failing checks above first; else see the proxy log",
    );
  const got = o.proxied.ip;
  const about = `${o.url} sees ${got} ${via}, ${direct ?? `direct failed (${"error" in o.direct ? o.direct.error : ""})`} directly`;
  if (direct && got === direct)
    return fail(
      name,
      `LEAK: ${about}: the proxy's traffic leaves via the home line`,
      "check the nft mark rule and that the proxy runs as gateway.proxyUid (see the checks above), then wg-egress gateway up",
    );
  if (o.exit && got !== o.exit)
    return warn(
      name,
      `${about}; the exit's endpoint is ${o.exit}`,
      "fine if the exit sends from another address than it receives on; otherwise check the exit's masquerade (iptables -t nat -L POSTROUTING / nft list ruleset on the exit)",
    );
  return pass(name, `${about}${o.exit ? " (= the exit's address)" : ""}`);
}

/** For the exporter: the same decision as one bit. */
export const ipCheckOk = (o: IpObservation) => exitIpCheck(o).verdict === "pass";

export const skippedIpCheck = (why: string) => skip("exit IP through the proxy", why);
