/**
 * Parses `wg show <if> dump` (and `wg show all dump`), the machine-readable form that kernel WireGuard
 * and wireguard-go both produce. Pure: the caller runs the command.
 *
 * Interface line: [ifname] private-key public-key listen-port fwmark
 * Peer line:      [ifname] public-key preshared-key endpoint allowed-ips latest-handshake rx tx keepalive
 */

export interface WgPeer {
  interface: string;
  publicKey: string;
  endpoint: string | null;
  allowedIps: string[];
  /** UNIX seconds of the latest handshake; 0 = never. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  persistentKeepalive: number | null;
}

export interface WgInterface {
  name: string;
  publicKey: string;
  listenPort: number;
  fwmark: number | null;
  peers: WgPeer[];
}

const none = (v: string) => (v === "(none)" || v === "off" ? null : v);

/** `ifname` is required when the dump came from `wg show <if> dump` (which omits the name column). */
export function parseWgDump(text: string, ifname?: string): WgInterface[] {
  const result: WgInterface[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const cols = line.split("\t");
    const name = ifname ?? cols.shift()!;
    const current = result.find((i) => i.name === name);
    if (!current) {
      // The first line for an interface describes the interface itself (its private key is never kept).
      if (cols.length < 4) throw new Error(`unexpected wg dump interface line with ${cols.length} columns`);
      const fw = none(cols[3]);
      result.push({
        name,
        publicKey: cols[1],
        listenPort: Number(cols[2]),
        fwmark: fw === null ? null : Number(fw),
        peers: [],
      });
      continue;
    }
    if (cols.length < 8) throw new Error(`unexpected wg dump peer line with ${cols.length} columns`);
    const ka = none(cols[7]);
    const allowed = none(cols[3]);
    current.peers.push({
      interface: name,
      publicKey: cols[0],
      endpoint: none(cols[2]),
      allowedIps: allowed ? allowed.split(",") : [],
      latestHandshake: Number(cols[4]),
      rxBytes: Number(cols[5]),
      txBytes: Number(cols[6]),
      persistentKeepalive: ka === null ? null : Number(ka),
    });
  }
  return result;
}

/** Tunnel verdict with the seed's thresholds: up < 150 s, stale < 300 s, else down (0 = never = down). */
export type TunnelState = "up" | "stale" | "down";

export function tunnelState(latestHandshake: number, nowSeconds: number): TunnelState {
  if (!latestHandshake) return "down";
  const age = nowSeconds - latestHandshake;
  if (age < 150) return "up";
  if (age < 300) return "stale";
  return "down";
}
