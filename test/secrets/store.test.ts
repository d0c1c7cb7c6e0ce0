import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import { createAgeIdentity, openSecretsStore } from "../../src/secrets/store.js";
import { generatePrivateKey, publicKeyOf } from "../../src/wireguard/keys.js";
import { cli } from "../support/cli.js";
import { writeConfig } from "../support/config.js";
import { tempDir } from "../support/tmp.js";

const mode = (p: string) => statSync(p).mode & 0o777;

function storeIn(dir: string, backend: "age" | "sops" = "age") {
  const cfg = parseConfig({
    secrets: { file: join(dir, "s.age"), identityFile: join(dir, "id.key"), backend },
  }).secrets;
  return { cfg, store: openSecretsStore(cfg) };
}

test("age store: round trip, 0600 files, ciphertext only, atomic replace", async () => {
  const dir = tempDir("wgetest-secrets-");
  const { cfg, store } = storeIn(dir);
  const recipient = await createAgeIdentity(cfg.identityFile);
  assert.match(recipient, /^age1[0-9a-z]+$/);
  assert.match(readFileSync(cfg.identityFile, "utf8"), /^AGE-SECRET-KEY-1[0-9A-Z]+$/m);
  const data = {
    exit: { privateKey: generatePrivateKey() },
    gateway: { privateKey: generatePrivateKey() },
    hcloudToken: "tok-secret-123",
  };
  await store.write(data);
  assert.deepEqual(await store.read(), data);
  const text = readFileSync(store.file, "utf8");
  assert.match(text, /^-----BEGIN AGE ENCRYPTED FILE-----/);
  for (const s of [data.exit.privateKey, data.gateway.privateKey, data.hcloudToken])
    assert.ok(!text.includes(s));
  assert.equal(mode(store.file), 0o600);
  assert.equal(mode(cfg.identityFile), 0o600);
  await store.write({ ...data, endpoint: "203.0.113.9:51820" });
  assert.equal((await store.read()).endpoint, "203.0.113.9:51820");
  assert.deepEqual(readdirSync(dir).sort(), ["id.key", "s.age"], "no temporary files left");

  chmodSync(cfg.identityFile, 0o644);
  await assert.rejects(store.read(), /readable by other users: chmod 600/);
  chmodSync(cfg.identityFile, 0o600);
  await createAgeIdentity(cfg.identityFile); // another identity cannot decrypt
  await assert.rejects(store.read(), /cannot decrypt .*s\.age with .*id\.key/);
});

test("sops backend without the sops binary: one-line error", async () => {
  const dir = tempDir("wgetest-secrets-");
  const config = writeConfig(dir, { secrets: { backend: "sops", file: join(dir, "secrets.sops.yaml") } });
  const r = await cli(["secrets", "init", "-c", config], { env: { PATH: dir } });
  assert.equal(r.code, 1);
  assert.equal(r.stderr, "wg-egress: sops not found: install sops or use backend age\n");
});

const hasSops = spawnSync("sh", ["-c", "command -v sops"]).status === 0;

test("sops backend with the sops binary (age recipients): round trip, plaintext never on disk", {
  skip: !hasSops && "sops is not installed",
}, async () => {
  const dir = tempDir("wgetest-sops-");
  const { cfg } = storeIn(dir);
  const recipient = await createAgeIdentity(cfg.identityFile);
  process.env.SOPS_AGE_RECIPIENTS = recipient;
  process.env.SOPS_AGE_KEY_FILE = cfg.identityFile;
  try {
    const store = openSecretsStore(
      parseConfig({ secrets: { backend: "sops", file: join(dir, "secrets.sops.yaml") } }).secrets,
    );
    const data = {
      exit: { privateKey: generatePrivateKey() },
      gateway: { privateKey: generatePrivateKey() },
    };
    await store.write(data);
    assert.deepEqual(await store.read(), data);
    assert.ok(!readFileSync(store.file, "utf8").includes(data.exit.privateKey));
    assert.equal(mode(store.file), 0o600);
    assert.deepEqual(readdirSync(dir).sort(), ["id.key", "secrets.sops.yaml"]);
  } finally {
    delete process.env.SOPS_AGE_RECIPIENTS;
    delete process.env.SOPS_AGE_KEY_FILE;
  }
});

test("secrets init/show: keys for both sides, token from stdin, private parts only with --reveal", async () => {
  const dir = tempDir("wgetest-secrets-");
  const config = writeConfig(dir);
  const token = "hcloud-token-from-stdin-xyz";
  const init = await cli(
    ["secrets", "init", "--token-stdin", "--endpoint", "203.0.113.4:51820", "-c", config],
    { input: `${token}\n` },
  );
  assert.equal(init.code, 0, init.stderr);
  assert.equal(mode(join(dir, "secrets.age")), 0o600);
  assert.equal(mode(join(dir, "age.key")), 0o600);
  const again = await cli(["secrets", "init", "-c", config]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already exists: keep it \(to store the API token: .*\), or pass --force/);

  const show = await cli(["secrets", "show", "-c", config]);
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, /^endpoint: 203\.0\.113\.4:51820$/m);
  assert.match(show.stdout, /^hcloud token: set$/m);
  const exitPub = /exit public key:\s+(\S+)/.exec(show.stdout)![1];
  const exitPriv = (
    await cli(["secrets", "show", "--reveal", "exit.privateKey", "-c", config])
  ).stdout.trim();
  assert.equal(publicKeyOf(exitPriv), exitPub);
  assert.equal(
    (await cli(["secrets", "show", "--reveal", "hcloudToken", "-c", config])).stdout.trim(),
    token,
  );
  // The gateway's key file is the stored gateway key, 0600, so `gateway up` can use it as is.
  const gwPriv = (
    await cli(["secrets", "show", "--reveal", "gateway.privateKey", "-c", config])
  ).stdout.trim();
  assert.equal(readFileSync(join(dir, "gateway.key"), "utf8").trim(), gwPriv);
  assert.equal(mode(join(dir, "gateway.key")), 0o600);
  for (const out of [init.stdout, init.stderr, show.stdout, show.stderr])
    assert.ok(!out.includes(exitPriv) && !out.includes(token));
  const bad = await cli(["secrets", "show", "--reveal", "password", "-c", config]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /expected one of exit\.privateKey, gateway\.privateKey, hcloudToken/);
});
