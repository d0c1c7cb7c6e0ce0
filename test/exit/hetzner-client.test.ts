import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { Progress } from "../../src/exit/progress.js";
import { waitForActions } from "../../src/exit/providers/hetzner/actions.js";
import { type HetznerApiError, HetznerClient } from "../../src/exit/providers/hetzner/client.js";
import { type FakeHetzner, type FakeOptions, startFakeHetzner } from "../fakes/hetzner/server.js";

/** The typed client against the local fake of the Hetzner Cloud API. */

let fake: FakeHetzner | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function setup(opts: FakeOptions = {}, token?: string) {
  fake = await startFakeHetzner(opts);
  const waits: number[] = [];
  const client = new HetznerClient({
    token: token ?? fake.token,
    endpoint: fake.url,
    maxRetries: 4,
    onRateLimited: (ms) => waits.push(ms),
  });
  return { fake, client, waits };
}

function lines() {
  const out: string[] = [];
  return { out, progress: new Progress({ write: (s: string) => out.push(s), isTTY: false }) };
}

test("lists follow meta.pagination across pages", async () => {
  const { fake, client } = await setup();
  for (let i = 0; i < 120; i++) fake.seedServer(`s${i}`, i % 3 === 0 ? { "managed-by": "wg-egress" } : {});
  const all = await client.listServers();
  assert.equal(all.length, 120);
  assert.equal(new Set(all.map((s) => s.id)).size, 120);
  assert.equal(fake.requests.filter((r) => r.path === "/v1/servers").length, 3, "50 per page → 3 pages");
  const ours = await client.listServers({ label_selector: "managed-by=wg-egress" });
  assert.equal(ours.length, 40);
  assert.deepEqual(
    (await client.listServers({ name: "s7" })).map((s) => s.name),
    ["s7"],
  );
});

test("actions go from running to success; waiting reports progress as plain lines off a terminal", async () => {
  const { client } = await setup({ actionPolls: 3 });
  const { firewall } = await client.createFirewall({ name: "fw", labels: {}, rules: [] });
  const actions = await client.setFirewallRules(firewall.id, []);
  assert.equal(actions[0].status, "running");
  const { out, progress } = lines();
  await waitForActions(client, actions, progress, { intervalMs: 10 });
  assert.equal((await client.getAction(actions[0].id)).status, "success");
  assert.ok(out.length >= 2 && out.every((l) => /^set firewall rules: \d+%\n$/.test(l)), out.join(""));
  assert.equal(out.at(-1), "set firewall rules: 100%\n");
});

test("actions can also take a given time instead of a number of polls", async () => {
  const { client } = await setup({ actionMs: 150 });
  const { firewall } = await client.createFirewall({ name: "fw", labels: {}, rules: [] });
  const [action] = await client.setFirewallRules(firewall.id, []);
  assert.equal((await client.getAction(action.id)).status, "running");
  await new Promise((r) => setTimeout(r, 200));
  assert.equal((await client.getAction(action.id)).status, "success");
});

test("a 429 is retried after the rate limit resets; a persistent one is an honest error", async () => {
  const { fake, client, waits } = await setup({ rateLimit: 3, rateWindowMs: 1200 });
  for (let i = 0; i < 5; i++) await client.listLocations();
  assert.ok(fake.rateLimited >= 1, "the budget of 3 was exceeded");
  assert.ok(waits.length >= 1 && waits.every((w) => w >= 200 && w <= 2500), `waits ${waits}`);

  const impatient = new HetznerClient({ token: fake.token, endpoint: fake.url, maxRetries: 0 });
  for (let i = 0; i < 3; i++) await impatient.listLocations().catch(() => {});
  await assert.rejects(impatient.listLocations(), (e: HetznerApiError) => {
    assert.equal(e.code, "rate_limit_exceeded");
    assert.match(e.message, /rate limit exceeded/);
    return true;
  });
});

test("API errors keep their code and read as one line with the fix", async () => {
  const { client, fake } = await setup({ serverLimit: 1 });
  const bad = new HetznerClient({ token: "wrong", endpoint: fake.url });
  await assert.rejects(
    bad.listServers(),
    /^HetznerApiError: HCLOUD_TOKEN rejected by the API: unable to authenticate/,
  );
  await assert.rejects(bad.listServers(), (e: HetznerApiError) => e.status === 401 && e.exitCode === 1);

  const req = { name: "a", server_type: "cax11", image: "debian-12", location: "fsn1" };
  await client.createServer(req);
  await assert.rejects(
    client.createServer(req),
    (e: HetznerApiError) => e.code === "uniqueness_error" && e.status === 409,
  );
  await assert.rejects(
    client.createServer({ ...req, name: "b" }),
    /resource limit reached.*server limit exceeded/,
  );
  await assert.rejects(
    client.createServer({ ...req, name: "c", server_type: "nope" }),
    /invalid_input \(HTTP 400\).*server_type: server type not found/,
  );

  await client.createFirewall({ name: "fw", rules: [] });
  await assert.rejects(
    client.createFirewall({ name: "fw", rules: [] }),
    (e: HetznerApiError) => e.code === "uniqueness_error",
  );
  await assert.rejects(
    client.getServer(99999),
    (e: HetznerApiError) => e.code === "not_found" && e.status === 404,
  );
});

test("a firewall cannot be deleted while applied; it can once the server is gone", async () => {
  const { client } = await setup({ actionPolls: 1 });
  const { firewall } = await client.createFirewall({ name: "fw", rules: [] });
  const { server, action } = await client.createServer({
    name: "s",
    server_type: "cax11",
    image: "debian-12",
    firewalls: [{ firewall: firewall.id }],
  });
  const { progress } = lines();
  await waitForActions(client, [action], progress, { intervalMs: 10 });
  await assert.rejects(
    client.deleteFirewall(firewall.id),
    (e: HetznerApiError) => e.code === "resource_in_use" && e.status === 422,
  );
  await waitForActions(client, [await client.deleteServer(server.id)], progress, { intervalMs: 10 });
  await client.deleteFirewall(firewall.id);
  assert.deepEqual(await client.listFirewalls(), []);
});

test("an unreachable endpoint is a clear error", async () => {
  const { fake } = await setup();
  const url = fake.url;
  await fake.close();
  const client = new HetznerClient({ token: "t", endpoint: url });
  await assert.rejects(
    client.listServers(),
    /cannot reach the Hetzner API at http:\/\/127\.0\.0\.1:\d+\/v1.*ECONNREFUSED/,
  );
});
