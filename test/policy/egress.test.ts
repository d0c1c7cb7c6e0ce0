import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveExits } from "../../src/config/exits.js";
import { parseConfig } from "../../src/config/load.js";
import { EgressRoutes, egressOf, type Health, pickExit, undrained } from "../../src/policy/egress.js";
import { healthOf, STALE_REPORT_S } from "../../src/policy/exit-health.js";

/** Rules by user need a proxy that asks for passwords. */
const withUsers = { users: [{ name: "alice", password: "pw" }] };

function routesOf(raw: Record<string, unknown>): EgressRoutes {
  const c = parseConfig({ proxy: withUsers, ...raw });
  return new EgressRoutes(resolveExits(c.gateway, c.exits), c.pools, c.routes);
}

const exits = [
  { name: "fra" },
  { name: "hel", address: "10.100.1.2/24" },
  { name: "ams", address: "10.100.2.2/24" },
];
const req = (over: Partial<{ user: string; client: string; destination: string; port: number }> = {}) => ({
  client: "10.1.0.2",
  destination: "192.0.2.80",
  port: 6667,
  ...over,
});

test("rules match on user, client CIDR, destination CIDR and port; the first match wins; else the default", () => {
  const r = routesOf({
    exits,
    pools: { irc: ["hel", "ams"] },
    routes: {
      default: "irc",
      rules: [
        { users: ["alice"], to: "fra" },
        { users: ["bob"], ports: [443], to: "ams" },
        { users: ["bob"], to: "hel" },
        { clients: ["10.1.0.128/25"], destinations: ["198.51.100.0/24"], to: "fra" },
        { clients: ["10.1.0.128/25", "fd00::/64"], to: "hel" },
      ],
    },
  });
  assert.deepEqual(r.select(req({ user: "alice" })), { name: "fra", members: ["fra"], pool: false, rule: 0 });
  assert.equal(r.select(req({ user: "bob", port: 443 })).name, "ams");
  assert.equal(r.select(req({ user: "bob" })).name, "hel");
  assert.equal(r.select(req({ client: "10.1.0.200", destination: "198.51.100.7" })).name, "fra");
  assert.equal(r.select(req({ client: "10.1.0.200" })).name, "hel");
  assert.equal(r.select(req({ client: "fd00::5" })).name, "hel");
  assert.equal(
    r.select(req({ client: "::ffff:10.1.0.200" })).name,
    "hel",
    "IPv4-mapped clients match IPv4 rules",
  );
  assert.deepEqual(r.select(req({ user: "carol" })), {
    name: "irc",
    members: ["hel", "ams"],
    pool: true,
    rule: -1,
  });
  assert.equal(r.select(req()).name, "irc");
});

test("without routes everything goes to the first exit; today's config goes to default", () => {
  assert.deepEqual(routesOf({ exits }).select(req({ user: "x" })).members, ["fra"]);
  assert.deepEqual(routesOf({}).select(req()), {
    name: "default",
    members: ["default"],
    pool: false,
    rule: -1,
  });
});

test("a single exit never moves, whatever its health", () => {
  const t = { name: "fra", members: ["fra"], pool: false, rule: 0 };
  assert.equal(
    pickExit(t, () => "unhealthy", "alice"),
    "fra",
  );
});

test("a pool picks a healthy member, sticky per key; moves only the failed member's users; refuses when none is healthy", () => {
  const t = { name: "irc", members: ["fra", "hel", "ams"], pool: true, rule: -1 };
  const all: Health = "healthy";
  const users = Array.from({ length: 60 }, (_, i) => `user${i}`);
  const before = new Map(users.map((u) => [u, pickExit(t, () => all, u)]));
  for (const u of users)
    assert.equal(
      pickExit(t, () => all, u),
      before.get(u),
      "same answer every time",
    );
  const spread = new Set(before.values());
  assert.equal(spread.size, 3, "users are spread over the members");
  const down = (x: string) => (x === "hel" ? "unhealthy" : "healthy") as Health;
  for (const u of users) {
    const now = pickExit(t, down, u);
    assert.notEqual(now, "hel");
    if (before.get(u) !== "hel") assert.equal(now, before.get(u), `${u} was not on hel and stays`);
  }
  // hel back: everyone is where they were (new connections go back)
  for (const u of users)
    assert.equal(
      pickExit(t, () => all, u),
      before.get(u),
    );
  assert.equal(
    pickExit(t, () => "unhealthy", "alice"),
    null,
  );
  // healthy beats unknown (no report yet); unknown is used when nothing is known healthy
  assert.equal(
    pickExit(t, (x) => (x === "ams" ? "healthy" : "unknown"), "alice"),
    "ams",
  );
  assert.ok(["fra", "hel"].includes(pickExit(t, (x) => (x === "ams" ? "unhealthy" : "unknown"), "a") ?? ""));
});

test("an exit's health from its agent's report: up is healthy; a missing or old report is unknown", () => {
  const now = 1_800_000_000;
  const report = (state: "up" | "stale" | "down", checkedAt = now - 5) => ({
    exit: "fra",
    interface: "wg-egress",
    state,
    handshakeAgeSeconds: 3,
    checkedAt,
  });
  assert.equal(healthOf(report("up"), now), "healthy");
  assert.equal(healthOf(report("stale"), now), "unhealthy");
  assert.equal(healthOf(report("down"), now), "unhealthy");
  assert.equal(healthOf(null, now), "unknown", "no agent has reported");
  assert.equal(healthOf(report("up", now - STALE_REPORT_S - 1), now), "unknown", "the agent stopped writing");
  assert.equal(healthOf(report("down", now - STALE_REPORT_S - 1), now), "unknown");
});

test("Egress binds to the chosen exit's address of the destination's family; one exit binds nothing", () => {
  const c = parseConfig({
    exits: [{ name: "fra" }, { name: "hel", address: "10.100.1.2/24", address6: "fd00:1::2/64" }],
    routes: { rules: [{ users: ["bob"], to: "hel" }] },
    proxy: withUsers,
  });
  const e = egressOf(resolveExits(c.gateway, c.exits), c.pools, c.routes, () => "healthy");
  assert.deepEqual(e.choose(req({ user: "bob" })), { exit: "hel", localAddress: "10.100.1.2" });
  assert.deepEqual(e.choose(req({ user: "bob", destination: "2001:db8::1" })), {
    exit: "hel",
    localAddress: "fd00:1::2",
  });
  assert.deepEqual(e.choose(req()), { exit: "fra", localAddress: "10.100.0.2" });
  assert.match(
    e.choose(req({ destination: "2001:db8::1" })).refused ?? "",
    /exit fra has no IPv6 tunnel address/,
  );
  const one = parseConfig({});
  const single = egressOf(resolveExits(one.gateway, one.exits), one.pools, one.routes, () => "unhealthy");
  assert.deepEqual(
    single.choose(req()),
    { exit: "default" },
    "today's data path: nothing bound, never refused",
  );
});

test("undrained: a pool skips a draining member (all drain: their replacements); one exit goes to its replacement", () => {
  const pool = { name: "irc", members: ["fra", "hel", "ams"], pool: true, rule: 0 };
  const one = { name: "hel", members: ["hel"], pool: false, rule: 1 };
  assert.deepEqual(undrained(pool, new Map([["hel", null]]))?.members, ["fra", "ams"]);
  assert.deepEqual(undrained(pool, new Map([["hel", "zrh"]]))?.members, ["fra", "ams"], "a pool skips it");
  const lone = { ...pool, members: ["hel", "ams"] };
  const both = new Map([
    ["hel", "zrh"],
    ["ams", "zrh"],
  ]);
  assert.deepEqual(undrained(lone, both)?.members, ["zrh"], "every member drains: their replacements, once");
  assert.deepEqual(undrained(one, new Map([["hel", "ams"]])), { ...one, members: ["ams"] });
  assert.equal(undrained(one, new Map([["hel", null]])), null);
  assert.equal(undrained({ ...pool, members: ["hel"] }, new Map([["hel", null]])), null);
  assert.deepEqual(undrained(one, new Map()), one);
});

const POOLED = ["carol", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory"];

test("Egress while an exit drains: new connections go to its replacement, never to it; none → refused at once", () => {
  const choose = (
    drains: Record<string, unknown>,
    user: string,
    health: (x: string) => Health = () => "healthy",
  ) => {
    const c = parseConfig({
      exits: exits.map((x) => (x.name in drains ? { ...x, drain: drains[x.name] } : x)),
      pools: { irc: ["fra", "hel"] },
      routes: {
        default: "fra",
        rules: [
          { users: ["alice"], to: "fra" },
          { users: ["bob"], to: "hel" },
          { users: POOLED, to: "irc" },
        ],
      },
      proxy: { users: ["alice", "bob", ...POOLED].map((name) => ({ name, password: "pw" })) },
    });
    return egressOf(resolveExits(c.gateway, c.exits), c.pools, c.routes, health).choose(req({ user }));
  };
  assert.equal(choose({}, "bob").exit, "hel");
  assert.deepEqual(choose({ hel: { to: "ams" } }, "bob"), { exit: "ams", localAddress: "10.100.2.2" });
  assert.equal(choose({ hel: { to: "ams" } }, "alice").exit, "fra", "other routes are untouched");
  assert.equal(
    choose({ hel: { to: "ams" } }, "bob", () => "unhealthy").exit,
    "ams",
    "a route to one exit never moves on",
  );
  assert.equal(
    choose({ fra: { to: "hel" }, hel: { to: "ams" } }, "alice").exit,
    "ams",
    "a chain is followed",
  );
  const refused = choose({ hel: {} }, "bob");
  assert.equal(refused.exit, undefined);
  assert.match(refused.refused ?? "", /exit hel is draining without a replacement/);
  // Pool users who would pick hel when both are up: while hel drains, every one of them takes fra.
  const onHel = POOLED.filter((u) => choose({}, u).exit === "hel");
  assert.ok(onHel.length > 0 && onHel.length < POOLED.length, "both members have users");
  for (const u of onHel)
    assert.equal(choose({ hel: {} }, u).exit, "fra", "the pool skips its draining member");
  assert.equal(
    choose({ hel: { to: "ams" }, fra: { to: "ams" } }, "carol").exit,
    "ams",
    "all drain: replacements",
  );
  assert.match(
    choose({ hel: {}, fra: { to: "hel" } }, "carol").refused ?? "",
    /every exit of pool irc is draining/,
  );
  assert.match(
    choose({ hel: {} }, "carol", (x) => (x === "fra" ? "unhealthy" : "healthy")).refused ?? "",
    /no healthy exit in pool irc/,
    "never the draining member, even as a last resort",
  );
  const draining = egressOf(
    resolveExits(
      parseConfig({}).gateway,
      exits.map((x) =>
        x.name === "hel" ? { ...x, drain: { to: "fra", deadline: "2026-12-01T00:00:00Z" } } : x,
      ),
    ),
    {},
    undefined,
    () => "healthy",
  );
  assert.deepEqual(draining.exits, ["fra", "hel", "ams"]);
  assert.deepEqual(
    [...draining.draining],
    [["hel", { to: "fra", deadline: Date.parse("2026-12-01T00:00:00Z") }]],
  );
});
