/**
 * Destination policy against destinations that are not loopback (issue 9.5, 9.7, 9.8), with real
 * sockets. The whole file runs inside a network namespace of its own with only `lo`; the destinations
 * live in a second, nested one ("the internet": a veth pair, routes, an echo server on every address),
 * so that they are neither loopback nor the proxy's own addresses. Needs root.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { after, before, test } from "node:test";
import ipaddr from "ipaddr.js";
import { run } from "../../src/util/run.js";
import { insideIsolatedNetns } from "../support/netns.js";
import { sleep, waitFor } from "../support/poll.js";
import { tied } from "../support/tied.js";
import { dnsStub, httpConnect, type ProxyProcess, RawClient, startProxy } from "./proxy-helpers.js";

/** Where the echo server listens, in the nested namespace, on every address below. */
const PORT = 7777;
/** Addresses in the nested namespace (public-looking, but only ever inside these namespaces). */
const INET = {
  v4: ["1.2.3.4", "5.6.7.8", "10.0.0.1"],
  v6: [
    "2001:4860::8", // an ordinary global address
    "64:ff9b::a9fe:a9fe", // NAT64 well-known prefix: 169.254.169.254 through a translator
    "64:ff9b:1::a9fe:a9fe", // NAT64 local-use prefix
    "2002:a9fe:a9fe::1", // 6to4 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:3fff:fdd2", // Teredo
  ],
};

if (insideIsolatedNetns(import.meta.url)) {
  let inet: ChildProcess;
  let server: ChildProcess;
  let dns: Awaited<ReturnType<typeof dnsStub>>;
  const proxies: ProxyProcess[] = [];

  const ip = async (...args: string[]) => {
    const r = await run("ip", args, { allowFail: true });
    assert.equal(r.code, 0, `ip ${args.join(" ")}: ${r.stderr}`);
  };
  const nsenter = async (cmd: string, ...args: string[]) => {
    const r = await run("nsenter", ["-t", String(inet.pid), "-n", cmd, ...args], { allowFail: true });
    assert.equal(r.code, 0, `${cmd} ${args.join(" ")}: ${r.stderr}`);
  };

  before(async () => {
    // The nested namespace, held by a sleeping process, linked by a veth pair.
    const [cmd, ...args] = tied(["unshare", "-n", "sleep", "100000"]);
    inet = spawn(cmd!, args, { stdio: "ignore" });
    await sleep(200);
    await ip(
      "link",
      "add",
      "wgetest-o",
      "type",
      "veth",
      "peer",
      "name",
      "wgetest-i",
      "netns",
      String(inet.pid),
    );
    await ip("link", "set", "wgetest-o", "up");
    await ip("addr", "add", "10.99.0.1/24", "dev", "wgetest-o");
    await ip("-6", "addr", "add", "fd99::1/64", "dev", "wgetest-o", "nodad");
    await ip("route", "add", "default", "via", "10.99.0.2");
    await ip("-6", "route", "add", "default", "via", "fd99::2");
    await nsenter("ip", "link", "set", "lo", "up");
    await nsenter("ip", "link", "set", "wgetest-i", "up");
    await nsenter("ip", "addr", "add", "10.99.0.2/24", "dev", "wgetest-i");
    await nsenter("ip", "-6", "addr", "add", "fd99::2/64", "dev", "wgetest-i", "nodad");
    for (const a of INET.v4) await nsenter("ip", "addr", "add", `${a}/32`, "dev", "lo");
    for (const a of INET.v6) await nsenter("ip", "-6", "addr", "add", `${a}/128`, "dev", "lo", "nodad");
    await nsenter("ip", "route", "add", "default", "via", "10.99.0.1");
    await nsenter("ip", "-6", "route", "add", "default", "via", "fd99::1");
    server = spawn(
      "nsenter",
      [
        "-t",
        String(inet.pid),
        "-n",
        process.execPath,
        "-e",
        `require("net").createServer((s) => { s.on("error", () => {}); s.pipe(s); }).listen(${PORT}, "::")`,
      ],
      { stdio: "ignore" },
    );
    // A name under an allowed domain that resolves to an address in the nested namespace.
    dns = await dnsStub({ "www.example.test": "1.2.3.4" });
    await waitFor("the echo server in the nested namespace", 10_000, () => canReach("5.6.7.8"));
  });

  after(async () => {
    for (const p of proxies) await p.stop();
    server?.kill();
    inet?.kill();
    dns?.close();
  });

  /** A plain TCP connect from this namespace (no proxy). */
  async function canReach(host: string): Promise<boolean> {
    try {
      (await RawClient.open(PORT, host)).close();
      return true;
    } catch {
      return false;
    }
  }

  async function proxy(args: string[]): Promise<ProxyProcess> {
    const p = await startProxy(["--dns", `127.0.0.1:${dns.port}`, "--connect-timeout", "3", ...args]);
    proxies.push(p);
    return p;
  }

  /** The SOCKS5 reply code for a CONNECT to host:PORT (IPv4/IPv6 literal or name). */
  async function connectReply(p: ProxyProcess, host: string, port = PORT): Promise<number> {
    const c = await RawClient.open(p.port);
    try {
      c.send([5, 1, 0]);
      await c.read(2);
      const isV6 = host.includes(":");
      const isV4 = /^\d+\.\d+\.\d+\.\d+$/.test(host);
      const addr = isV4
        ? [1, ...host.split(".").map(Number)]
        : isV6
          ? [4, ...ipaddr.IPv6.parse(host).toByteArray()]
          : [3, host.length, ...Buffer.from(host)];
      c.send([5, 1, 0, ...addr, port >> 8, port & 255]);
      return (await c.read(2))[1];
    } finally {
      c.close();
    }
  }

  test("the setup: an ordinary address in the nested namespace is reached through the proxy", async () => {
    const p = await proxy([]);
    assert.equal(await connectReply(p, "5.6.7.8"), 0);
    assert.equal(await connectReply(p, "2001:4860::8"), 0);
  });

  test("issue 9.8: NAT64, 6to4 and Teredo destinations are refused (0x02), as is their HTTP CONNECT (403)", async () => {
    const p = await proxy([]);
    for (const a of INET.v6.slice(1)) {
      assert.equal(await connectReply(p, a), 2, a);
      assert.equal((await httpConnect(p.port, `[${a}]:${PORT}`)).status, 403, a);
    }
    const line = await p.waitLog((l) => l.destination === `[64:ff9b::a9fe:a9fe]:${PORT}`);
    assert.match(String(line.why), /NAT64/);
  });

  test("issue 9.8: an IPv6 rule never matches an IPv4 destination (allow ::/0 leaves 10.0.0.1 refused)", async () => {
    const p = await proxy(["--allow-destination", "::/0"]);
    assert.equal(await connectReply(p, "10.0.0.1"), 2);
    assert.equal(await connectReply(p, "64:ff9b::a9fe:a9fe"), 0, "but it does allow IPv6 destinations");
    const v4 = await proxy(["--allow-destination", "0.0.0.0/0"]);
    assert.equal(await connectReply(v4, "10.0.0.1"), 0, "an IPv4 rule allows it");
    assert.equal(await connectReply(v4, "64:ff9b::a9fe:a9fe"), 2, "and no IPv6 destination");
  });

  test("issue 9.5: with --allow-domain, IP literals are refused unless a destination rule allows them", async () => {
    const p = await proxy(["--allow-domain", "example.test"]);
    assert.equal(await connectReply(p, "1.2.3.4"), 2, "SOCKS5 IPv4 literal");
    assert.equal(await connectReply(p, "2001:4860::8"), 2, "SOCKS5 IPv6 literal");
    assert.equal((await httpConnect(p.port, `1.2.3.4:${PORT}`)).status, 403, "HTTP CONNECT literal");
    assert.equal(await connectReply(p, "www.example.test"), 0, "a name under the allowed domain");
    assert.equal(await connectReply(p, "www.other.test"), 2);
    const allowed = await proxy(["--allow-domain", "example.test", "--allow-destination", "1.2.3.4/32"]);
    assert.equal(await connectReply(allowed, "1.2.3.4"), 0, "allowed by a destination rule");
    assert.equal(await connectReply(allowed, "5.6.7.8"), 2);
  });

  test("issue 9.7: own addresses come from the local routing table: no-carrier interfaces, AnyIP, changes within 2 s", async () => {
    // An interface that is up without carrier: Linux delivers to its address all the same.
    await ip("link", "add", "wgetest-nc", "type", "veth", "peer", "name", "wgetest-nc2");
    await ip("link", "set", "wgetest-nc", "up");
    await ip("addr", "add", "7.7.7.7/32", "dev", "wgetest-nc");
    const local = spawn(
      process.execPath,
      ["-e", `require("net").createServer((s) => s.pipe(s)).listen(${PORT}, "0.0.0.0")`],
      { stdio: "ignore" },
    );
    try {
      await waitFor("a local server", 10_000, () => canReach("7.7.7.7"));
      const p = await proxy([]);
      assert.equal(await connectReply(p, "7.7.7.7"), 2, "an address on a no-carrier interface");
      assert.equal(await connectReply(p, "5.6.7.8"), 0);
      // AnyIP: a whole prefix delivered locally
      await ip("route", "add", "local", "8.8.0.0/16", "dev", "lo");
      await sleep(2000);
      assert.equal(await connectReply(p, "8.8.1.1"), 2, "an AnyIP prefix");
      // An address added while the proxy runs is refused within 2 s, and allowed again once removed.
      await ip("addr", "add", "6.6.6.6/32", "dev", "lo");
      await sleep(2000);
      assert.equal(await connectReply(p, "6.6.6.6"), 2, "an address added after start");
      await ip("addr", "del", "6.6.6.6/32", "dev", "lo");
      await nsenter("ip", "addr", "add", "6.6.6.6/32", "dev", "lo");
      await sleep(2000);
      assert.equal(
        await connectReply(p, "6.6.6.6"),
        0,
        "no longer ours: it is reached in the nested namespace",
      );
      const line = await p.waitLog((l) => l.destination === `7.7.7.7:${PORT}`);
      assert.match(String(line.why), /address of this gateway/);
    } finally {
      local.kill();
    }
  });
}
