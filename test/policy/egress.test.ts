import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveExits } from "../../src/config/exits.js";
import { parseConfig } from "../../src/config/load.js";
import { EgressRoutes, egressOf, type Health, pickExit, undrained } from "../../src/policy/egress.js";
import { resolveThroughExit } from "../../src/policy/exit-dns.js";
import { healthOf, STALE_REPORT_S } from "../../src/policy/exit-health.js";
import { DnsError } from "../../src/policy/resolve.js";

/** Rules by user need a proxy that asks for passwords; several exits need DNS servers. */
const withUsers = { users: [{ name: "alice", password: "pw" }], dns: { servers: ["192.0.2.53"] } };

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

/** Fake resolvers: each exit answers from its own table; every lookup recorded as "exit:name". */
function resolvers(answers: Record<string, Record<string, string[]>>) {
  const asked: string[] = [];
  const seen: string[] = [];
  const of = (exit: string) => ({
    resolve: async (name: string) => {
      asked.push(`${exit}:${name}`);
      const a = answers[exit]?.[name];
      if (!a) throw new DnsError("ENOTFOUND", name);
      return a;
    },
  });
  const observe = (_s: number, outcome: string, exit: string | undefined) => seen.push(`${exit}:${outcome}`);
  return { of, asked, seen, observe };
}

/** Bob on exit hel, carol on pool irc (hel, ams), the rest on fra; `drainHel`: hel's exits[].drain. */
const bobAndCarol = (drainHel?: unknown) =>
  parseConfig({
    exits: exits.map((x) => (x.name === "hel" && drainHel ? { ...x, drain: drainHel } : x)),
    pools: { irc: ["hel", "ams"] },
    routes: {
      rules: [
        { users: ["bob"], to: "hel" },
        { users: ["carol"], to: "irc" },
      ],
    },
    proxy: withUsers,
  });

test("a name is resolved through the exit the connection takes: its user's, its pool member's", async () => {
  const c = bobAndCarol();
  let amsUp: Health = "healthy";
  const e = egressOf(resolveExits(c.gateway, c.exits), c.pools, c.routes, (x) =>
    x === "ams" ? amsUp : "healthy",
  );
  const r = resolvers({
    fra: { "irc.test": ["192.0.2.1"] },
    hel: { "irc.test": ["192.0.2.2"] },
    ams: { "irc.test": ["192.0.2.3"] },
  });
  const lookup = (user?: string) =>
    resolveThroughExit(e, r.of, { user, client: "10.1.0.2", port: 6667 }, "irc.test", r.observe);
  assert.deepEqual(await lookup("bob"), { exit: "hel", addresses: ["192.0.2.2"] });
  assert.deepEqual(await lookup(), { exit: "fra", addresses: ["192.0.2.1"] }, "the default");
  const member = (await lookup("carol")).exit!;
  assert.ok(["hel", "ams"].includes(member));
  assert.deepEqual(
    r.asked,
    ["hel:irc.test", "fra:irc.test", `${member}:irc.test`],
    "one lookup each, no other exit asked",
  );
  assert.deepEqual(r.seen, ["hel:ok", "fra:ok", `${member}:ok`]);
  // ams down: carol's names move with her connections (if she was there), never through a down member
  amsUp = "unhealthy";
  assert.equal((await lookup("carol")).exit, "hel");
  // a failed lookup names its exit (and is observed under it)
  const failed = await resolveThroughExit(
    e,
    r.of,
    { user: "bob", client: "10.1.0.2", port: 1 },
    "nx.test",
    r.observe,
  );
  assert.equal(failed.exit, "hel");
  assert.equal(failed.error?.code, "ENOTFOUND");
  assert.equal(r.seen.at(-1), "hel:ENOTFOUND");
});

test("a pool with no healthy member is refused before any lookup", async () => {
  const c = parseConfig({
    exits,
    pools: { irc: ["hel", "ams"] },
    routes: { default: "irc" },
    proxy: withUsers,
  });
  const e = egressOf(resolveExits(c.gateway, c.exits), c.pools, c.routes, () => "unhealthy");
  const r = resolvers({});
  const got = await resolveThroughExit(e, r.of, { client: "10.1.0.2", port: 80 }, "a.test", r.observe);
  assert.match(got.refused ?? "", /no healthy exit in pool irc/);
  assert.deepEqual(r.asked, []);
});

test("a draining exit gets no name either: the name is resolved (and connected) through its replacement", async () => {
  const r = resolvers({ fra: { "irc.test": ["192.0.2.1"] }, ams: { "irc.test": ["192.0.2.3"] } });
  const lookup = (c: ReturnType<typeof bobAndCarol>, user: string) =>
    resolveThroughExit(
      egressOf(resolveExits(c.gateway, c.exits), c.pools, c.routes, () => "healthy"),
      r.of,
      { user, client: "10.1.0.2", port: 6667 },
      "irc.test",
      r.observe,
    );
  const toFra = bobAndCarol({ to: "fra" });
  assert.deepEqual(await lookup(toFra, "bob"), { exit: "fra", addresses: ["192.0.2.1"] });
  assert.deepEqual(
    await lookup(toFra, "carol"),
    { exit: "ams", addresses: ["192.0.2.3"] },
    "the pool skips hel",
  );
  const nowhere = await lookup(bobAndCarol({}), "bob");
  assert.match(nowhere.refused ?? "", /exit hel is draining without a replacement/);
  assert.ok(!r.asked.some((a) => a.startsWith("hel:")), "hel's resolver never asked");
});

test("a rule by destination: the name is resolved again through the exit its address routes to, or refused", async () => {
  const c = parseConfig({
    exits,
    routes: {
      default: "fra",
      rules: [
        { destinations: ["198.51.100.0/24"], to: "hel" },
        { users: ["alice"], ports: [6697], to: "ams" },
      ],
    },
    proxy: withUsers,
  });
  const e = egressOf(resolveExits(c.gateway, c.exits), c.pools, c.routes, () => "healthy");
  // forName skips the rule it cannot decide yet; exitFor decides it, keeping the member already picked
  const via = e.forName({ client: "10.1.0.2", port: 80 });
  assert.equal(via.exit, "fra");
  assert.deepEqual(e.exitFor(via as typeof via & { exit: string }, req({ destination: "198.51.100.7" })), {
    exit: "hel",
  });
  assert.deepEqual(e.exitFor(via as typeof via & { exit: string }, req({ destination: "192.0.2.7" })), {
    exit: "fra",
  });
  const r = resolvers({
    fra: {
      "moved.test": ["198.51.100.7"],
      "mixed.test": ["198.51.100.7", "192.0.2.7"],
      "split.test": ["198.51.100.9"],
    },
    hel: { "moved.test": ["198.51.100.7"], "split.test": ["192.0.2.9"] },
  });
  const lookup = (name: string, user?: string, port = 80) =>
    resolveThroughExit(e, r.of, { user, client: "10.1.0.2", port }, name, r.observe);
  assert.deepEqual(await lookup("moved.test"), { exit: "hel", addresses: ["198.51.100.7"] });
  assert.deepEqual(r.asked.splice(0), ["fra:moved.test", "hel:moved.test"], "resolved again through hel");
  assert.deepEqual(
    await lookup("mixed.test"),
    { exit: "fra", addresses: ["192.0.2.7"] },
    "only what routes to fra",
  );
  assert.deepEqual(r.asked.splice(0), ["fra:mixed.test"]);
  const split = await lookup("split.test");
  assert.equal(split.addresses, undefined, "hel's answer routes back to fra: refused, no loop");
  assert.match(
    split.refused ?? "",
    /split\.test resolved through exit hel to addresses that route to another exit/,
  );
  assert.deepEqual(r.asked.splice(0), ["fra:split.test", "hel:split.test"]);
  // the rule after the destination rule still decides before DNS: alice on 6697 resolves through ams
  r.asked.length = 0;
  await lookup("moved.test", "alice", 6697);
  assert.equal(r.asked[0], "ams:moved.test");
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
      proxy: {
        users: ["alice", "bob", ...POOLED].map((name) => ({ name, password: "pw" })),
        dns: { servers: ["192.0.2.53"] },
      },
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
