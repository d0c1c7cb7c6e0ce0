import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { once } from "node:events";
import { isIP, isIPv4 } from "node:net";
import { unmapIPv4 } from "../policy/addresses.js";
import { parseUdpDatagram, serializeUdpHeader } from "./protocol.js";
import type { ProxySettings } from "./settings.js";

/** Resolved names per association (a client usually talks to a handful of names). */
const MAX_NAMES = 64;

/**
 * One UDP ASSOCIATE (RFC 1928 §7): a socket facing the client, bound to the address the client
 * reached us on, and outbound sockets (per family) whose source the routing (and the gateway's
 * marking) chooses. Every datagram goes through the destination policy on its resolved address; only
 * answers from destinations the client has sent to are relayed back, each with the RFC header. The
 * association lives exactly as long as its TCP control connection.
 */
export class UdpAssociation {
  private out4: Socket | undefined;
  private out6: Socket | undefined;
  private clientPort: number;
  private readonly peers = new Set<string>();
  private readonly names = new Map<string, string>();
  up = 0;
  down = 0;
  /** Datagrams dropped: wrong sender, fragments, malformed, refused by policy, unresolvable. */
  dropped = 0;

  private constructor(
    private readonly relay: Socket,
    private readonly clientIp: string,
    expectedPort: number,
    private readonly settings: ProxySettings,
    private readonly observeDns: (seconds: number, outcome: string) => void,
  ) {
    this.clientPort = expectedPort;
    relay.on("message", (msg, from) => this.fromClient(msg, from));
    relay.on("error", () => this.close());
  }

  /** `localAddress` = the TCP control connection's local address; `expectedPort` 0 = learn it from the first datagram. */
  static async open(
    localAddress: string,
    clientIp: string,
    expectedPort: number,
    settings: ProxySettings,
    observeDns: (seconds: number, outcome: string) => void,
  ): Promise<UdpAssociation> {
    const local = unmapIPv4(localAddress);
    const relay = createSocket(isIPv4(local) ? "udp4" : "udp6");
    relay.bind(0, local);
    await once(relay, "listening");
    return new UdpAssociation(relay, clientIp, expectedPort, settings, observeDns);
  }

  get address(): { host: string; port: number } {
    const a = this.relay.address();
    return { host: a.address, port: a.port };
  }

  private fromClient(msg: Buffer, from: RemoteInfo): void {
    if (
      unmapIPv4(from.address) !== this.clientIp ||
      (this.clientPort !== 0 && from.port !== this.clientPort)
    ) {
      this.dropped++;
      return;
    }
    this.clientPort = from.port;
    const d = parseUdpDatagram(msg);
    if (d.status !== "ok" || d.value.frag !== 0) {
      this.dropped++; // fragmentation is optional in RFC 1928 and not supported
      return;
    }
    const { host, port, data } = d.value;
    const policy = this.settings.destinations;
    const literal = isIP(host) !== 0;
    if (policy.checkPort(port) || (!literal && policy.checkName(host))) {
      this.dropped++;
      return;
    }
    const known = literal ? unmapIPv4(host) : this.names.get(host);
    if (known !== undefined) this.send(known, port, data);
    else void this.resolveAndSend(host, port, data);
  }

  private async resolveAndSend(name: string, port: number, data: Buffer): Promise<void> {
    const t0 = performance.now();
    try {
      const addresses = await this.settings.resolver.resolve(name);
      this.observeDns((performance.now() - t0) / 1000, "ok");
      const ip = addresses.find((a) => !this.settings.destinations.checkAddress(a));
      if (ip === undefined) {
        this.dropped++;
        return;
      }
      if (this.names.size >= MAX_NAMES) this.names.clear();
      this.names.set(name, ip);
      this.send(ip, port, data);
    } catch (e) {
      this.observeDns((performance.now() - t0) / 1000, (e as NodeJS.ErrnoException).code ?? "error");
      this.dropped++;
    }
  }

  private send(ip: string, port: number, data: Buffer): void {
    if (this.settings.destinations.checkAddress(ip)) {
      this.dropped++;
      return;
    }
    this.peers.add(`${ip}|${port}`);
    this.up += data.length;
    this.outbound(isIPv4(ip)).send(data, port, ip);
  }

  private outbound(v4: boolean): Socket {
    let s = v4 ? this.out4 : this.out6;
    if (!s) {
      s = createSocket(v4 ? "udp4" : "udp6");
      s.on("message", (msg, from) => this.fromDestination(msg, from));
      s.on("error", () => {}); // e.g. ICMP unreachable surfacing as ECONNREFUSED: UDP carries on
      if (v4) this.out4 = s;
      else this.out6 = s;
    }
    return s;
  }

  private fromDestination(msg: Buffer, from: RemoteInfo): void {
    const ip = unmapIPv4(from.address);
    if (!this.peers.has(`${ip}|${from.port}`) || this.clientPort === 0) {
      this.dropped++;
      return;
    }
    this.down += msg.length;
    this.relay.send([serializeUdpHeader(ip, from.port), msg], this.clientPort, this.clientIp);
  }

  close(): void {
    for (const s of [this.relay, this.out4, this.out6]) {
      try {
        s?.close();
      } catch {
        // already closed
      }
    }
  }
}
