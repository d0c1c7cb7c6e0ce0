import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { parse } from "yaml";
import { writeConfig } from "../support/config.js";
import { tempDir } from "../support/tmp.js";
import { assertNoSecretsLeaked, home, urls, useHomeIpServer, world } from "./hetzner-world.js";

/** Provisioning on Hetzner through the real CLI, against the local fake of the API. */

useHomeIpServer();

test("provision creates the server once, records the endpoint, prints the cost; status, update-home-ip, deprovision", async () => {
  const { fake, config, run } = await world();
  try {
    // The token now comes from the secrets store (secrets init stored HCLOUD_TOKEN).
    const p = await run(["exit", "provision", "--log-level", "debug"], { HCLOUD_TOKEN: "" });
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /^created server wg-exit \(id \d+\) running, endpoint (203\.0\.113\.\d+):51820$/m);
    // The primary IPv4 is billed on top of the server (GET /pricing).
    assert.match(
      p.stdout,
      /monthly cost: €4\.51 incl\. VAT \(€3\.79 net\) for cax11 in fsn1: server €3\.29 \+ primary IPv4 €0\.50 net/,
    );
    assert.match(p.stderr, /^create server: 100%$/m, "plain progress lines off a terminal");
    const [server] = fake.servers.values();
    assert.equal(fake.servers.size, 1);
    assert.deepEqual(server.labels, { "managed-by": "wg-egress" });
    const create = fake.requests.find((r) => r.method === "POST" && r.path === "/v1/servers")!.body as {
      user_data: string;
    };
    assert.match(create.user_data, /^#cloud-config\n/);
    const [fw] = fake.firewalls.values();
    assert.equal(fw.name, "wg-exit-fw");
    assert.deepEqual(fw.applied_to, [{ type: "server", server: { id: server.id } }]);
    assert.deepEqual(fw.rules.find((r) => r.port === "22")?.source_ips, ["198.51.100.7/32"]);
    assert.deepEqual(fw.rules.find((r) => r.protocol === "udp")?.port, "51820");
    const endpoint = `${server.public_net.ipv4!.ip}:51820`;
    const text = readFileSync(config, "utf8");
    assert.ok(text.startsWith("# the gateway's config; comments must survive set-endpoint\n"));
    assert.ok(text.includes(`endpoint: ${endpoint}`));
    // So that secrets rotate and exit check can reach the new exit.
    assert.equal(parse(text).exit.ssh.target, `root@${server.public_net.ipv4!.ip}`);

    const again = await run(["exit", "provision"]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^found server wg-exit/m);
    assert.equal(fake.servers.size, 1, "a re-run never creates a second server");
    assert.equal(fake.requests.filter((r) => r.method === "POST" && r.path === "/v1/servers").length, 1);

    const st = await run(["exit", "status"]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, new RegExp(`server: wg-exit \\(id ${server.id}\\) running$`, "m"));
    assert.match(st.stdout, /in tcp 22 from 198\.51\.100\.7\/32/);
    assert.match(st.stdout, /monthly cost: €4\.51/);
    assert.match(st.stdout, new RegExp(`^firewall: wg-exit-fw \\(id ${fw.id}\\) applied on wg-exit$`, "m"));

    const same = await run(["exit", "update-home-ip"]);
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stdout, /^unchanged: SSH allowed from 198\.51\.100\.7\/32$/m);
    const setRules = () => fake.requests.filter((r) => r.path.endsWith("/actions/set_rules")).length;
    const before = setRules();
    home.ip = "198.51.100.8";
    const moved = await run(["exit", "update-home-ip"]);
    assert.match(
      moved.stdout,
      /^updated: SSH allowed from 198\.51\.100\.8\/32 \(was 198\.51\.100\.7\/32\)$/m,
    );
    assert.deepEqual(fw.rules.find((r) => r.port === "22")?.source_ips, ["198.51.100.8/32"]);
    assert.match((await run(["exit", "update-home-ip"])).stdout, /^unchanged/m);
    assert.equal(setRules(), before + 1, "rules are written only when the home IP changed");

    assert.equal((await run(["exit", "set-endpoint", "203.0.113.250:51820"])).code, 0);
    assert.ok(readFileSync(config, "utf8").includes("endpoint: 203.0.113.250:51820"));
    assert.equal((await run(["exit", "set-endpoint"])).code, 0);
    assert.ok(readFileSync(config, "utf8").includes(`endpoint: ${endpoint}`));
    const badArg = await run(["exit", "set-endpoint", "no-port"]);
    assert.equal(badArg.code, 2);
    // The argument is at fault, not the config file.
    assert.equal(
      badArg.stderr.trim(),
      'wg-egress: set-endpoint "no-port": expected HOST:PORT (IPv6 as [::1]:1080), got "no-port", e.g. 203.0.113.10:51820',
    );

    const refused = await run(["exit", "deprovision"]);
    assert.equal(refused.code, 2);
    assert.equal(
      refused.stderr.trim(),
      "wg-egress: refusing to delete without confirmation: pass --yes (stdin is not a terminal)",
    );
    assert.equal(fake.servers.size, 1);

    const gone = await run(["exit", "deprovision", "--yes"]);
    assert.equal(gone.code, 0, gone.stderr);
    assert.equal(fake.servers.size, 0);
    assert.equal(fake.firewalls.size, 0);
    const deletes = fake.requests.filter((r) => r.method === "DELETE").map((r) => r.path.split("/")[2]);
    assert.deepEqual(deletes, ["servers", "firewalls"], "server first, firewall once it is detached");
    // The gateway no longer points at an address that may go to someone else.
    const after = parse(readFileSync(config, "utf8"));
    assert.equal(after.gateway.peer.endpoint, undefined);
    assert.equal(after.exit.ssh.target, undefined);
    assert.match(
      gone.stdout,
      /removed from .*: gateway\.peer\.endpoint, exit\.ssh\.target \(pointed at the deleted 203\.0\.113\.\d+\)/,
    );
    assert.match((await run(["secrets", "show"])).stdout, /^endpoint: not set$/m);
    assert.match((await run(["exit", "deprovision", "--yes"])).stdout, /nothing to delete/);
  } finally {
    home.ip = "198.51.100.7";
    await fake.close();
  }
});

test("resources without our label are refused, never adopted or deleted", async () => {
  const { fake, run } = await world();
  try {
    fake.seedServer("wg-exit", { owner: "someone-else" });
    const p = await run(["exit", "provision"]);
    assert.equal(p.code, 2);
    assert.match(p.stderr, /^wg-egress: server "wg-exit" exists but lacks the label managed-by=wg-egress/);
    assert.equal(fake.servers.size, 1);
    assert.equal(fake.firewalls.size, 0, "nothing half-applied");
    assert.equal((await run(["exit", "deprovision", "--yes"])).code, 2);
    assert.equal(fake.servers.size, 1);
  } finally {
    await fake.close();
  }
});

test("honest errors: bad token, location lacking the type, quota, no home IP; rate limits are waited out", async () => {
  const { fake, run } = await world({ serverLimit: 0 });
  try {
    const bad = await run(["exit", "status"], { HCLOUD_TOKEN: "not-the-token" });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^wg-egress: HCLOUD_TOKEN rejected by the API: unable to authenticate/);
    const ash = await run(["exit", "provision", "--location", "ash"]);
    assert.match(
      ash.stderr,
      /^wg-egress: server type cax11 is not available in location ash; locations that have it: fsn1, hel1, nbg1/,
    );
    const nowhere = await run(["exit", "provision", "--location", "mars1"]);
    assert.match(
      nowhere.stderr,
      /^wg-egress: unknown location mars1 \(exit.hetzner.location\); available: fsn1, nbg1, hel1, ash, hil$/m,
    );
    const keyless = writeConfig(tempDir("wgetest-hcloud-"), {
      exit: { sshAllowFrom: ["198.51.100.7"], hetzner: { sshKeyNames: ["desktop"] } },
    });
    const noKey = await run(["exit", "provision"], {}, keyless);
    assert.match(
      noKey.stderr,
      /SSH key "desktop" \(exit.hetzner.sshKeyNames\) is not in the Hetzner project/,
    );
    assert.equal(fake.firewalls.size, 0, "checked before anything is created");
    const quota = await run(["exit", "provision"]);
    assert.equal(quota.code, 1);
    // The firewall this run created for the server is deleted again.
    assert.match(
      quota.stderr,
      /^wg-egress: Hetzner resource limit reached \(POST \/servers\): server limit exceeded; .*; rolled back: deleted firewall wg-exit-fw \(id \d+\) \(created by this run\)$/m,
    );
    assert.equal(fake.firewalls.size, 0, "no orphaned firewall");
    assert.equal(fake.servers.size, 0);
    const noIpConfig = writeConfig(tempDir("wgetest-hcloud-"), {
      exit: { homeIpUrls: [urls.dead] },
    });
    const noIp = await run(["exit", "update-home-ip"], {}, noIpConfig);
    assert.equal(noIp.code, 1);
    assert.match(
      noIp.stderr,
      /^wg-egress: cannot detect the home IP \(http:\/\/127\.0\.0\.1:\d+\/: ECONNREFUSED\)/,
    );
  } finally {
    await fake.close();
  }
  const { fake: slow, run: runSlow } = await world({ rateLimit: 4, rateWindowMs: 1000 });
  try {
    const p = await runSlow(["exit", "provision"]);
    assert.equal(p.code, 0, p.stderr);
    assert.ok(slow.rateLimited > 0);
    assert.match(p.stderr, /rate limited by the Hetzner API: retrying in \d+\.\d s/);
    assert.equal(slow.servers.size, 1);
  } finally {
    await slow.close();
  }
});

test("no private key or token ever appears in any command's output or logs", () => assertNoSecretsLeaked(20));
