import assert from "node:assert/strict";
import { test } from "node:test";
import { exitDnsServers, resolveExits } from "../../src/config/exits.js";
import { parseConfig } from "../../src/config/load.js";
import { UserError } from "../../src/util/errors.js";
import { cli } from "../support/cli.js";
import { writeConfig } from "../support/config.js";
import { tempDir } from "../support/tmp.js";

const KEY = "x".repeat(42) + "A=";

function errorOf(raw: unknown): string {
  try {
    parseConfig(raw, "c.yaml");
  } catch (e) {
    assert.ok(e instanceof UserError, `expected UserError, got ${e}`);
    assert.ok(!e.message.includes("\n"), "one line");
    return e.message;
  }
  assert.fail("expected an error");
}

test("today's config is the one exit named default, with the gateway section's values", () => {
  const c = parseConfig({
    gateway: { interface: "wg0", address: "10.9.0.2/24", table: 100, fwmark: 7, peer: { publicKey: KEY } },
  });
  const [x, ...rest] = resolveExits(c.gateway, c.exits);
  assert.equal(rest.length, 0);
  assert.equal(x.name, "default");
  assert.equal(x.primary, true);
  assert.equal(x.interface, "wg0");
  assert.equal(x.address, "10.9.0.2/24");
  assert.equal(x.table, 100);
  assert.equal(x.fwmark, 7);
  assert.equal(x.rulePriority, 5182);
  assert.equal(x.nftTable, "wg-egress");
  assert.equal(x.peer.publicKey, KEY);
});

test("exits: the first inherits the gateway section, the others get derived unique values", () => {
  const c = parseConfig({
    gateway: { address: "10.100.0.2/24", peer: { endpoint: "203.0.113.10:51820" } },
    exits: [
      { name: "fra" },
      { name: "hel", address: "10.100.1.2/24", peer: { endpoint: "203.0.113.20:51820" } },
    ],
  });
  const [a, b] = resolveExits(c.gateway, c.exits);
  assert.deepEqual(
    [a.name, a.interface, a.table, a.fwmark, a.rulePriority, a.address, String(a.peer.endpoint), a.nftTable],
    ["fra", "wg-egress", 51820, 0xca6c, 5182, "10.100.0.2/24", "203.0.113.10:51820", "wg-egress"],
  );
  assert.deepEqual(
    [b.name, b.interface, b.table, b.fwmark, b.rulePriority, b.address, String(b.peer.endpoint), b.nftTable],
    ["hel", "wge-hel", 51821, 0xca6d, 5172, "10.100.1.2/24", "203.0.113.20:51820", "wg-egress-hel"],
  );
  assert.equal(b.privateKeyFile, c.gateway.privateKeyFile, "one gateway key unless an exit names its own");
  assert.deepEqual(c.proxy.dns.servers, ["10.100.0.1"], "still resolved at the (first) exit");
});

test("the config check names every collision between exits, in one line", () => {
  const two = (b: Record<string, unknown>) => ({
    exits: [{ name: "a" }, { name: "b", address: "10.100.1.2/24", ...b }],
  });
  assert.match(errorOf(two({ table: 51820 })), /exits\[1\]\.table.*exit b uses table 51820, as exit a does/);
  assert.match(errorOf(two({ interface: "wg-egress" })), /exits\[1\]\.interface.*interface wg-egress/);
  assert.match(errorOf(two({ fwmark: "0xca6c" })), /exits\[1\]\.fwmark.*fwmark 0xca6c/);
  assert.match(
    errorOf(two({ address: "10.100.0.2/16" })),
    /exits\[1\]\.address.*tunnel address 10\.100\.0\.2/,
  );
  assert.match(errorOf(two({ rulePriority: 5184 })), /exits\[1\]\.rulePriority.*rule priority 5184/);
  assert.match(
    errorOf(two({ rulePriority: 6000 })),
    /rulePriority 6000 must be below the first exit's \(5182\)/,
  );
  assert.match(
    errorOf({ exits: [{ name: "a" }, { name: "b" }] }),
    /exits\[1\]\.address.*exit b has no tunnel address: set address/,
  );
  assert.match(
    errorOf({ exits: [{ name: "a" }, { name: "a", address: "10.100.1.2/24" }] }),
    /exit name a is used twice/,
  );
  assert.match(errorOf({ exits: [{ name: "Bad Name" }] }), /exits\[0\]\.name.*lowercase/);
  assert.match(
    errorOf({
      exits: [
        { name: "a", listenPort: 5000 },
        { name: "b", address: "10.1.1.1/24", listenPort: 5000 },
      ],
      proxy: { dns: { servers: ["192.0.2.53"] } },
    }),
    /listen port 5000/,
  );
});

test("a route or pool naming an unknown exit is a one-line error naming it", () => {
  const exits = [
    { name: "fra", peer: { publicKey: KEY } },
    { name: "hel", address: "10.100.1.2/24" },
  ];
  assert.match(
    errorOf({ exits, routes: { rules: [{ users: ["alice"], to: "ams" }] } }),
    /routes\.rules\[0\]\.to.*route rule 1 goes to ams, which is neither an exit nor a pool \(known: fra, hel\)/,
  );
  assert.match(errorOf({ exits, routes: { default: "nowhere" } }), /routes\.default names nowhere/);
  assert.match(
    errorOf({ exits, pools: { irc: ["fra", "ams"] } }),
    /pools\.irc\[1\].*pool irc names exit ams/,
  );
  assert.match(errorOf({ exits, pools: { fra: ["hel"] } }), /pool fra has the name of an exit/);
  assert.match(
    errorOf({ routes: { rules: [{ to: "fra" }] } }),
    /known: default/,
    "the one-exit case is named default",
  );
  // and a valid one passes
  const c = parseConfig({
    exits,
    proxy: { users: [{ name: "alice", password: "secret" }] },
    pools: { irc: ["fra", "hel"] },
    routes: {
      default: "irc",
      rules: [
        { users: ["alice"], to: "fra" },
        { clients: ["10.1.0.128/25"], to: "hel" },
      ],
    },
  });
  assert.equal(c.routes?.rules.length, 2);
});

test("every command stops on such a config with exit 2 and the one line, before doing anything", async () => {
  const dir = tempDir();
  const file = writeConfig(dir, {
    exits: [{ name: "fra" }, { name: "hel", address: "10.100.1.2/24" }],
    routes: { rules: [{ users: ["bob"], to: "helsinki" }] },
  });
  const r = await cli(["gateway", "up", "--dry-run", "--config", file]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /routes\.rules\[0\]\.to = "helsinki": route rule 1 goes to helsinki/);
  assert.equal(r.stdout, "");
});

test("rules by user need a proxy that asks for passwords; exits never use the kernel's reserved tables", () => {
  const exits = [
    { name: "fra", peer: { publicKey: KEY } },
    { name: "hel", address: "10.100.1.2/24" },
  ];
  const byUser = { exits, routes: { rules: [{ users: ["alice"], to: "hel" }] } };
  assert.match(
    errorOf(byUser),
    /routes\.rules\[0\]\.users.*route rule 1 matches users, but the proxy asks no password/,
  );
  assert.match(
    errorOf({ ...byUser, proxy: { users: [{ name: "alice", password: "pw" }], auth: "none" } }),
    /route rule 1 matches users, but the proxy asks no password/,
  );
  assert.equal(
    parseConfig({ ...byUser, proxy: { users: [{ name: "alice", password: "pw" }] } }).routes?.rules.length,
    1,
  );
  // 252 + 1 = the kernel's "default" table for the second exit
  assert.match(
    errorOf({ gateway: { table: 252 }, exits }),
    /exit hel uses routing table 253, which the kernel reserves/,
  );
  assert.match(errorOf({ exits: [{ name: "fra", table: 255 }] }), /exit fra uses routing table 255/);
  assert.match(errorOf({ exits: [{ name: "fra", rulePriority: 32764 }] }), /rulePriority/);
});

test("DNS per exit: each exit resolves at its own exit by default; proxy.dns.servers or dnsServers otherwise", () => {
  const servers = (raw: Record<string, unknown>) => {
    const c = parseConfig(raw);
    return exitDnsServers(resolveExits(c.gateway, c.exits), c.exits, c.proxy.dns.servers);
  };
  const peer = { publicKey: KEY };
  const exits = [
    { name: "fra", peer },
    { name: "hel", address: "10.100.1.2/24" },
  ];
  assert.deepEqual(servers({ exits }), [["10.100.0.1"], ["10.100.1.1"]], "each exit's own resolver");
  assert.deepEqual(servers({ exits, exit: { address: "10.9.0.1/24" } }), [["10.9.0.1"], ["10.100.1.1"]]);
  assert.deepEqual(
    servers({ exits, proxy: { dns: { servers: ["192.0.2.53"] } } }),
    [["192.0.2.53"], ["192.0.2.53"]],
    "explicit servers: the same servers, each through its own exit",
  );
  assert.deepEqual(
    servers({
      exits: [
        { ...exits[0], dnsServers: ["10.100.0.1:5353"] },
        { ...exits[1], dnsServers: ["192.0.2.54"] },
      ],
    }),
    [["10.100.0.1:5353"], ["192.0.2.54"]],
  );
  // today's config: one exit, the proxy's servers (or the system resolver), nothing else changes
  assert.deepEqual(servers({ gateway: { peer } }), [["10.100.0.1"]]);
  assert.deepEqual(servers({}), [[]], "one exit may use the system resolver");
  assert.deepEqual(
    parseConfig({ gateway: { peer } }),
    parseConfig({ gateway: { peer }, proxy: { dns: { servers: ["10.100.0.1"] } } }),
  );
  assert.equal("exits" in parseConfig({ gateway: { peer } }), false);
});

test("DNS per exit: the config check names what cannot resolve through its exit, in one line", () => {
  const two = [{ name: "fra" }, { name: "hel", address: "10.100.1.2/24" }];
  // several exits are tunnels even before they have a peer: each resolves at its own exit by default
  const c = parseConfig({ exits: two });
  assert.deepEqual(exitDnsServers(resolveExits(c.gateway, c.exits), c.exits, c.proxy.dns.servers), [
    ["10.100.0.1"],
    ["10.100.1.1"],
  ]);
  const system = { dns: { servers: [] } };
  assert.match(
    errorOf({ exits: two, proxy: system }),
    /^invalid config c\.yaml: proxy\.dns\.servers = \[\]: with several exits each exit resolves names through its own tunnel, which the system resolver \(proxy\.dns\.servers empty\) cannot do: set proxy\.dns\.servers, or dnsServers on exits fra, hel$/,
  );
  assert.match(
    errorOf({ exits: [two[0], { ...two[1], dnsServers: ["10.100.1.1"] }], proxy: system }),
    /dnsServers on exit fra$/,
  );
  assert.match(
    errorOf({ exits: two, proxy: { dns: { servers: ["2001:db8::53"] } } }),
    /proxy\.dns\.servers.*exit fra has no address6, so it cannot query the IPv6 DNS server 2001:db8::53 through its tunnel: set address6/,
  );
  assert.match(
    errorOf({
      exits: [
        { name: "fra", address6: "fd00::2/64" },
        { ...two[1], dnsServers: ["[2001:db8::53]:53"] },
      ],
      proxy: { dns: { servers: ["2001:db8::53"] } },
    }),
    /exits\[1\]\.dnsServers.*exit hel has no address6, so it cannot query the IPv6 DNS server \[2001:db8::53\]:53/,
  );
  // a gateway whose later exit's resolver cannot be derived from its address
  const peer = { publicKey: KEY };
  for (const address of ["10.100.1.1/24", "10.100.1.2/32"])
    assert.match(
      errorOf({
        exits: [
          { name: "fra", peer },
          { name: "hel", address },
        ],
      }),
      /exits\[1\]\.dnsServers = \[\]: no DNS server for this exit: list its resolver/,
      address,
    );
  assert.match(
    errorOf({
      exits: [
        { name: "fra", peer },
        { name: "hel", address: "10.100.1.2/24", dnsServers: ["dns.example"] },
      ],
    }),
    /exits\[1\]\.dnsServers\[0\] = "dns\.example": expected an IP address, IP:PORT or \[IPv6\]:PORT of a DNS server/,
  );
});

test("exits[].drain: its replacement must be another exit, the chain must end, the deadline carry its offset", () => {
  const exits = (drainTwo: unknown, drainThree?: unknown) => [
    { name: "one" },
    { name: "two", address: "10.100.1.2/24", drain: drainTwo },
    { name: "three", address: "10.100.2.2/24", ...(drainThree ? { drain: drainThree } : {}) },
  ];
  const dns = { proxy: { dns: { servers: ["192.0.2.53"] } } };
  assert.match(
    errorOf({ ...dns, exits: exits({ to: "four" }) }),
    /exits\[1\]\.drain\.to.*exit two drains to four, which is not an exit/,
  );
  assert.match(
    errorOf({ ...dns, exits: exits({ to: "both" }), pools: { both: ["one", "three"] } }),
    /a pool is not a replacement/,
  );
  assert.match(errorOf({ ...dns, exits: exits({ to: "two" }) }), /exit two drains to itself/);
  assert.match(errorOf({ ...dns, exits: exits({ to: "three" }, { to: "two" }) }), /go round in a circle/);
  assert.match(
    errorOf({ ...dns, exits: exits({ deadline: "2026-12-01 10:00" }) }),
    /exits\[1\]\.drain\.deadline/,
  );
  assert.match(errorOf({ ...dns, exits: exits({ until: "x" }) }), /unknown key\(s\) until/);
  const c = parseConfig({ ...dns, exits: exits({ to: "three", deadline: "2026-12-01T10:00:00+01:00" }, {}) });
  const [, two, three] = resolveExits(c.gateway, c.exits);
  assert.deepEqual(two.drain, { to: "three", deadline: Date.parse("2026-12-01T09:00:00Z") });
  assert.deepEqual(
    three.drain,
    { to: undefined, deadline: undefined },
    "drain: {} drains without a replacement",
  );
  assert.equal(resolveExits(parseConfig({}).gateway, [{ name: "one" }])[0].drain, undefined);
});
