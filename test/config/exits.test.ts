import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveExits } from "../../src/config/exits.js";
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
    }),
    /listen port 5000/,
  );
});

test("a route or pool naming an unknown exit is a one-line error naming it", () => {
  const exits = [{ name: "fra" }, { name: "hel", address: "10.100.1.2/24" }];
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
  const exits = [{ name: "fra" }, { name: "hel", address: "10.100.1.2/24" }];
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

test("exits[].drain: its replacement must be another exit, the chain must end, the deadline carry its offset", () => {
  const exits = (drainTwo: unknown, drainThree?: unknown) => [
    { name: "one" },
    { name: "two", address: "10.100.1.2/24", drain: drainTwo },
    { name: "three", address: "10.100.2.2/24", ...(drainThree ? { drain: drainThree } : {}) },
  ];
  assert.match(
    errorOf({ exits: exits({ to: "four" }) }),
    /exits\[1\]\.drain\.to.*exit two drains to four, which is not an exit/,
  );
  assert.match(
    errorOf({ exits: exits({ to: "both" }), pools: { both: ["one", "three"] } }),
    /a pool is not a replacement/,
  );
  assert.match(errorOf({ exits: exits({ to: "two" }) }), /exit two drains to itself/);
  assert.match(errorOf({ exits: exits({ to: "three" }, { to: "two" }) }), /go round in a circle/);
  assert.match(errorOf({ exits: exits({ deadline: "2026-12-01 10:00" }) }), /exits\[1\]\.drain\.deadline/);
  assert.match(errorOf({ exits: exits({ until: "x" }) }), /unknown key\(s\) until/);
  const c = parseConfig({ exits: exits({ to: "three", deadline: "2026-12-01T10:00:00+01:00" }, {}) });
  const [, two, three] = resolveExits(c.gateway, c.exits);
  assert.deepEqual(two.drain, { to: "three", deadline: Date.parse("2026-12-01T09:00:00Z") });
  assert.deepEqual(
    three.drain,
    { to: undefined, deadline: undefined },
    "drain: {} drains without a replacement",
  );
  assert.equal(resolveExits(parseConfig({}).gateway, [{ name: "one" }])[0].drain, undefined);
});
