/** The loopback server the idle-connection test connects to through the proxies: it holds connections. */
import net from "node:net";

const ONE = Buffer.from("x");

function listen(srv: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    srv.once("error", reject);
    srv.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, () =>
      resolve((srv.address() as net.AddressInfo).port),
    );
  });
}

export interface HoldServer {
  port: number;
  readonly count: number;
  /** Sends one byte on every held connection: the clients count who got it, the rest were lost. */
  poke(): void;
  /** Closes every held connection, server side first so TIME_WAIT does not use up client ports. */
  dropAll(): void;
  close(): void;
}

export async function startHoldServer(): Promise<HoldServer> {
  const held = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    held.add(s);
    s.on("error", () => {});
    s.on("close", () => held.delete(s));
  });
  const port = await listen(srv);
  return {
    port,
    get count() {
      return held.size;
    },
    poke: () => {
      for (const s of held) s.write(ONE);
    },
    dropAll: () => {
      for (const s of held) s.destroy();
    },
    close: () => srv.close(),
  };
}
