import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { once } from "node:events";
import { isIP, isIPv4 } from "node:net";
import { canonicalIp } from "../policy/addresses.js";
import { parseUdpDatagram, serializeUdpHeader } from "./protocol.js";
import { type ProxySettings, resolveDestination } from "./settings.js";

/** Resolved names (by exit and port) per association (a client usually talks to a handful of names). */
const MAX_NAMES = 64;
/**
 * Destinations (address and port) an association relays answers from, least recently used dropped
 * first: answers from a destination the client has not sent to for this many others are dropped.
 */
export const MAX_PEERS = 1024;
/** Name lookups under way per association; datagrams to further unknown names are dropped meanwhile. */
const MAX_LOOKUPS = 16;

/** What an association reports to its connection. */
export interface AssociationHost {
  observeDns(seconds: number, outcome: string, exit: string | undefined): void;
  /** A bug hit while handling a datagram: the connection (and with it the association) ends. */
  crashed(err: unknown): void;
  /** The authenticated user, for the choice of exit. */
  readonly user: string | undefined;
}

/**
 * One UDP ASSOCIATE (RFC 1928 §7): a socket facing the client, bound to the address the client
 * reached us on, and outbound sockets (per family, or per exit's tunnel address with several exits)
 * whose source the routing (and the gateway's marking) chooses. Every datagram goes through the same name check and destination policy as a
 * CONNECT, on its resolved address; only answers from destinations the client has sent to are relayed
 * back, each with the RFC header. The association lives exactly as long as its TCP control connection.
 */
export class UdpAssociation {
  /** Outbound sockets by the address they are bound to ("" + family when unbound). */
  private readonly outs = new Map<string, Socket>();
  private clientPort: number;
  /** "ip|port" of the destinations sent to, in order of last use (a Map keeps insertion order). */
  private readonly peers = new Map<string, true>();
  /** "exit|port|name" → the address it resolved to, and the exit that resolved it. */
  private readonly names = new Map<string, { ip: string; exit?: string }>();
  private lookups = 0;
  up = 0;
  down = 0;
  /** Datagrams dropped: wrong sender, fragments, malformed, refused by policy, unresolvable. */
  dropped = 0;
  /** The exits its datagrams went out by (at most every exit once): a drain deadline ends the association. */
  readonly exits = new Set<string>();

  private constructor(
    private readonly relay: Socket,
    private readonly clientIp: string,
    expectedPort: number,
    private readonly settings: ProxySettings,
    private readonly host: AssociationHost,
  ) {
    this.clientPort = expectedPort;
    relay.on("message", (msg, from) => {
      try {
        this.fromClient(msg, from);
      } catch (err) {
        host.crashed(err);
      }
    });
    relay.on("error", () => this.close());
  }

  /** `localAddress` = the TCP control connection's local address; `expectedPort` 0 = learn it from the first datagram. */
  static async open(
    localAddress: string,
    clientIp: string,
    expectedPort: number,
    settings: ProxySettings,
    host: AssociationHost,
  ): Promise<UdpAssociation> {
    const local = canonicalIp(localAddress);
    if (local === undefined) throw new Error(`no usable local address (${localAddress})`);
    const relay = createSocket(isIPv4(local) ? "udp4" : "udp6");
    try {
      relay.bind(0, local);
      await once(relay, "listening");
    } catch (err) {
      relay.close();
      throw err;
    }
    return new UdpAssociation(relay, clientIp, expectedPort, settings, host);
  }

  get address(): { host: string; port: number } {
    const a = this.relay.address();
    return { host: a.address, port: a.port };
  }

  /** Distinct destinations currently remembered for answers (at most MAX_PEERS). */
  get peerCount(): number {
    return this.peers.size;
  }

  private fromClient(msg: Buffer, from: RemoteInfo): void {
    if (
      canonicalIp(from.address) !== this.clientIp ||
      (this.clientPort !== 0 && from.port !== this.clientPort)
    ) {
      this.dropped++;
      return;
    }
    this.clientPort = from.port;
    // The parser checks the destination like a CONNECT's (parseHost): a canonical IP or a valid name.
    const d = parseUdpDatagram(msg);
    if (d.status !== "ok" || d.value.frag !== 0 || d.value.port === 0 || d.value.invalid) {
      // Fragmentation is optional in RFC 1928 and not supported; port 0 and invalid names are no destination.
      this.dropped++;
      return;
    }
    const { host, port, data } = d.value;
    const policy = this.settings.destinations;
    const literal = isIP(host) !== 0;
    if (policy.checkPort(port) || (literal ? policy.checkLiteral(host) : policy.checkName(host))) {
      this.dropped++;
      return;
    }
    if (literal) {
      this.send(host, port, data);
      return;
    }
    // A name is resolved through the exit its datagrams take, which may depend on the port.
    const req = { user: this.host.user, client: this.clientIp, port };
    const via = this.settings.egress?.forName(req);
    if (via?.refused !== undefined) {
      this.dropped++;
      return;
    }
    const key = `${via?.exit ?? ""}|${port}|${host}`;
    const known = this.names.get(key);
    if (known !== undefined) this.send(known.ip, port, data, known.exit);
    else if (this.lookups >= MAX_LOOKUPS) this.dropped++;
    else void this.resolveAndSend(key, host, port, data);
  }

  private async resolveAndSend(key: string, name: string, port: number, data: Buffer): Promise<void> {
    this.lookups++;
    try {
      const req = { user: this.host.user, client: this.clientIp, port };
      const r = await resolveDestination(this.settings, req, name, (s, o, x) =>
        this.host.observeDns(s, o, x),
      );
      const ip = r.addresses?.find((a) => !this.settings.destinations.checkAddress(a));
      if (ip === undefined) {
        this.dropped++;
        return;
      }
      if (this.names.size >= MAX_NAMES) this.names.clear();
      this.names.set(key, { ip, exit: r.exit });
      this.send(ip, port, data, r.exit);
    } catch (err) {
      this.host.crashed(err);
    } finally {
      this.lookups--;
    }
  }

  /** `via`: the exit that resolved the destination's name, the only one it may leave through. */
  private send(ip: string, port: number, data: Buffer, via?: string): void {
    if (this.settings.destinations.checkAddress(ip)) {
      this.dropped++;
      return;
    }
    const key = `${ip}|${port}`;
    // Most recently used last; the oldest goes when the set is full.
    this.peers.delete(key);
    this.peers.set(key, true);
    if (this.peers.size > MAX_PEERS) this.peers.delete(this.peers.keys().next().value!);
    const egress = this.settings.egress;
    const choice =
      via !== undefined
        ? egress?.bind(via, ip)
        : egress?.choose({ user: this.host.user, client: this.clientIp, destination: ip, port });
    if (choice?.refused !== undefined) {
      this.dropped++;
      return;
    }
    if (choice) this.exits.add(choice.exit);
    this.up += data.length;
    this.outbound(isIPv4(ip), choice?.localAddress).send(data, port, ip);
  }

  private outbound(v4: boolean, localAddress: string | undefined): Socket {
    const key = localAddress ?? (v4 ? "4" : "6");
    let s = this.outs.get(key);
    if (!s) {
      const sock = createSocket(v4 ? "udp4" : "udp6");
      s = sock;
      sock.on("message", (msg, from) => {
        try {
          this.fromDestination(msg, from);
        } catch (err) {
          this.host.crashed(err);
        }
      });
      let bound = localAddress === undefined;
      sock.on("error", () => {
        // e.g. ICMP unreachable surfacing as ECONNREFUSED: UDP carries on. A bind that failed (the
        // exit's address is gone) drops what was queued; the socket is never used again, since a later
        // send would bind it to any address, outside its exit.
        if (bound || this.outs.get(key) !== sock) return;
        this.outs.delete(key);
        sock.close();
      });
      if (localAddress !== undefined) {
        sock.once("listening", () => {
          bound = true;
        });
        sock.bind(0, localAddress);
      }
      this.outs.set(key, sock);
    }
    return s;
  }

  private fromDestination(msg: Buffer, from: RemoteInfo): void {
    const ip = canonicalIp(from.address);
    if (ip === undefined || !this.peers.has(`${ip}|${from.port}`) || this.clientPort === 0) {
      this.dropped++;
      return;
    }
    this.down += msg.length;
    this.relay.send([serializeUdpHeader(ip, from.port), msg], this.clientPort, this.clientIp);
  }

  close(): void {
    for (const s of [this.relay, ...this.outs.values()]) {
      try {
        s?.close();
      } catch {
        // already closed
      }
    }
  }
}
