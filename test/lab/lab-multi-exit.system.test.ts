/**
 * Several exits, end to end (issue 13): `wg-egress lab up --exits 2` builds the lab with a second exit
 * namespace (another public address), two WireGuard tunnels on the gateway, one agent per exit, and the
 * real proxy (uid 400) routing by user and client address. Proven here: alice sees exit one's IP, bob
 * exit two's, the pod's second address exit two's; with exit one's tunnel down (its agent stopped, as
 * `systemctl stop`, and the link down) its single-exit users fail at once with 0 packets from the home
 * line, pool users on exit one move to exit two, the others stay; restored, new connections go back; an
 * idle connection on exit two is untouched throughout. Holds /tmp/wgelab.lock for the whole file.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { askedBy } from "../../src/lab/scenarios.js";
import { ADDR2, POOL, POOL_USERS } from "../../src/lab/second-exit.js";
import { ADDR, GW_IF, LINE_PORT, NS, PROXY_PORT } from "../../src/lab/topology.js";
import { agentPids, echoAs, inNs, SERVERS_LOG, startAgent, stopAgent } from "../../src/lab/up.js";
import { pickExit } from "../../src/policy/egress.js";
import { waitFor } from "../support/poll.js";
import { leaked, ONE, TWO, useTwoExitLab } from "./two-exit-lab.js";

useTwoExitLab();

/** Where each pool user goes while both exits are healthy: the proxy's own choice, computed here too. */
const preferred = (user: string) =>
  pickExit({ name: POOL, members: ["one", "two"], pool: true, rule: 0 }, () => "healthy", user) === "one"
    ? ONE
    : TWO;

/** bob, through the proxy (PySocks): idle until the line server speaks 40 s later (2x exit two's conntrack timeout). */
const IDLE_CLIENT = `
import socks
s = socks.socksocket()
s.set_proxy(socks.SOCKS5, "${ADDR.gwLan}", ${PROXY_PORT}, username="bob", password="bob")
s.settimeout(80)
s.connect(("${ADDR.server}", ${LINE_PORT}))
s.sendall(b"WAIT 40\\n")
print(s.recv(64).decode().strip())
`;

/** curl as `user` through the proxy (to `name`: resolved by the proxy): exit code and curl's error text. */
const refused = (user: string, name?: string) =>
  inNs(
    NS.pod,
    [
      "curl",
      "-sS",
      "--max-time",
      "8",
      name ? "--socks5-hostname" : "--socks5",
      `${ADDR.gwLan}:${PROXY_PORT}`,
      "--proxy-user",
      `${user}:${user}`,
      `http://${name ?? ADDR.server}/`,
    ],
    { allowFail: true },
  );

/** A name nobody asked for yet (the lab's DNS answers every name with the server's address). */
const fresh = () => `n${randomBytes(4).toString("hex")}.wgelab.example`;

/**
 * Through `user`'s exit by name: the IP the server saw, and which exits' addresses asked the
 * internet's DNS server for the name (each exit's resolver forwards to it from its public address).
 */
async function byName(user: string, opts: { from?: string; maxTime?: number } = {}) {
  const name = fresh();
  const seen = await echoAs(user, { ...opts, name });
  return { seen, askedBy: [...new Set(askedBy(SERVERS_LOG, name))].join(",") };
}

test("users and client addresses leave through their own exit; pool users stick to their member", async () => {
  assert.equal(await echoAs("alice"), ONE);
  assert.equal(await echoAs("bob"), TWO);
  assert.equal(await echoAs("dave", { from: ADDR2.podAlt }), TWO, "client 10.1.0.66 → exit two");
  assert.equal(await echoAs("dave"), ONE, "no rule: the default exit");
  for (const u of POOL_USERS) assert.equal(await echoAs(u), preferred(u), u);
  assert.ok(
    POOL_USERS.some((u) => preferred(u) === ONE),
    "a pool user on exit one (else the outage below moves nobody)",
  );
  const gw = await inNs(NS.gw, ["curl", "-sS", "--max-time", "5", `http://${ADDR.server}:8080/`]);
  assert.equal(gw.stdout.trim(), ADDR.gwWan, "the gateway's own traffic keeps the home IP");
});

test("names are resolved at each user's exit: by its resolver, asked from that exit's address only", async () => {
  assert.deepEqual(await byName("alice"), { seen: ONE, askedBy: ONE });
  assert.deepEqual(await byName("bob"), { seen: TWO, askedBy: TWO });
  assert.deepEqual(
    await byName("dave", { from: ADDR2.podAlt }),
    { seen: TWO, askedBy: TWO },
    "client 10.1.0.66",
  );
  assert.deepEqual(await byName("dave"), { seen: ONE, askedBy: ONE });
  for (const u of POOL_USERS) {
    const at = preferred(u);
    assert.deepEqual(await byName(u), { seen: at, askedBy: at }, u);
  }
});

test("exit one down: its users fail at once, 0 home packets; pool users move; bob's idle connection survives; restore", async () => {
  const leak0 = await leaked();
  const idle = inNs(NS.pod, ["/usr/bin/python3", "-c", IDLE_CLIENT], { allowFail: true, timeoutMs: 90_000 });
  const t0 = Date.now();
  await waitFor("bob's idle connection, on exit two", 10_000, async () =>
    (
      await inNs(NS.gw, ["ss", "-tnH", "state", "established", "dst", `${ADDR.server}:${LINE_PORT}`])
    ).stdout.includes(ADDR2.gwTunnel),
  );

  await stopAgent("one");
  assert.equal(agentPids("one").length, 0);
  assert.equal(agentPids("two").length, 1, "exit two's agent runs on");
  await inNs(NS.gw, ["ip", "link", "set", GW_IF, "down"]);

  const tFail = Date.now();
  for (const user of ["alice", "dave"]) {
    // alice: exit one only; dave: the default, exit one. The proxy answers with a failure reply at
    // once (the tunnel route is gone: unreachable), the client does not wait for a timeout.
    const r = await refused(user);
    assert.notEqual(r.code, 0, `${user}: ${r.stdout}`);
    assert.match(
      r.stderr,
      /Can't complete SOCKS5 connection to .*\(\d\)/,
      `${user}: a SOCKS reply, not a timeout`,
    );
  }
  const failMs = (Date.now() - tFail) / 2;
  // The same by name: their names are resolved through exit one, whose tunnel is gone; refused at once.
  const tName = Date.now();
  for (const user of ["alice", "dave"]) {
    const name = fresh();
    const r = await refused(user, name);
    assert.notEqual(r.code, 0, `${user}: ${r.stdout}`);
    assert.match(r.stderr, /Can't complete SOCKS5 connection to .*\(\d\)/, `${user} by name: a SOCKS reply`);
    assert.deepEqual(askedBy(SERVERS_LOG, name), [], `${user}'s name asked nowhere`);
  }
  const nameFailMs = (Date.now() - tName) / 2;
  assert.equal(await echoAs("bob"), TWO, "bob stays on exit two");
  assert.equal(await echoAs("dave", { from: ADDR2.podAlt }), TWO);
  for (const u of POOL_USERS)
    await waitFor(`${u} on exit two`, 5000, async () => (await echoAs(u, { maxTime: 3 })) === TWO);
  // Names of exit two's users (and of pool users, now on exit two) resolve at exit two, exit one down.
  assert.deepEqual(await byName("bob"), { seen: TWO, askedBy: TWO });
  assert.deepEqual(await byName("dave", { from: ADDR2.podAlt }), { seen: TWO, askedBy: TWO });
  for (const u of POOL_USERS) assert.deepEqual(await byName(u), { seen: TWO, askedBy: TWO }, u);
  assert.equal(await leaked(), leak0, "no packet left through the home line");

  await inNs(NS.gw, ["ip", "link", "set", GW_IF, "up"]);
  startAgent("one");
  await waitFor(
    "alice back on exit one",
    20_000,
    async () => (await echoAs("alice", { maxTime: 2 })) === ONE,
  );
  for (const u of POOL_USERS)
    await waitFor(`${u} back`, 10_000, async () => (await echoAs(u, { maxTime: 2 })) === preferred(u));
  assert.equal(await echoAs("bob"), TWO);

  const line = await idle; // bob's idle connection on exit two, through the whole outage
  assert.equal(line.stdout.trim(), "PING wgelab", line.stderr);
  assert.equal(await leaked(), leak0, "no packet left through the home line");
  process.stdout.write(
    `# exit one down: single-exit requests failed in ${failMs.toFixed(0)} ms (by name: ${nameFailMs.toFixed(0)} ms); idle connection survived ${((Date.now() - t0) / 1000).toFixed(0)} s\n`,
  );
});

test("exit two's source address never leaves through exit one's tunnel or the home line, whatever the routing says", async () => {
  const leak0 = await leaked();
  // Someone else's rule, ahead of ours, sends exit two's source elsewhere: the home line (main), then
  // exit one's table. Exit two's kill switch refuses both at once.
  for (const table of ["main", "51820"]) {
    await inNs(NS.gw, ["ip", "rule", "add", "priority", "100", "from", ADDR2.gwTunnel, "lookup", table]);
    try {
      const r = await inNs(
        NS.gw,
        ["curl", "-sS", "--max-time", "3", "--interface", ADDR2.gwTunnel, `http://${ADDR.server}/`],
        { allowFail: true },
      );
      assert.notEqual(r.code, 0, `via ${table}: ${r.stdout}`);
      assert.doesNotMatch(r.stderr, /timed out/, `refused at once via ${table}`);
    } finally {
      await inNs(NS.gw, ["ip", "rule", "del", "priority", "100", "from", ADDR2.gwTunnel, "lookup", table]);
    }
  }
  assert.equal(await leaked(), leak0, "no packet left through the home line");
  // and without the foreign rule it goes through exit two
  const ok = await inNs(NS.gw, [
    "curl",
    "-sS",
    "--max-time",
    "3",
    "--interface",
    ADDR2.gwTunnel,
    `http://${ADDR.server}/`,
  ]);
  assert.equal(ok.stdout.trim(), TWO);
});
