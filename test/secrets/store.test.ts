import assert from "node:assert/strict";
import { chmodSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { Encrypter, generateX25519Identity, identityToRecipient } from "age-encryption";
import { parse, stringify } from "yaml";
import { parseConfig } from "../../src/config/load.js";
import { createAgeIdentity, openSecretsStore } from "../../src/secrets/store.js";
import { run } from "../../src/util/run.js";
import { generatePrivateKey, publicKeyOf } from "../../src/wireguard/keys.js";
import { cli } from "../support/cli.js";
import { writeConfig } from "../support/config.js";
import { tempDir } from "../support/tmp.js";
import { requireTools } from "../support/tools.js";

const mode = (p: string) => statSync(p).mode & 0o777;

function storeIn(dir: string) {
  const cfg = parseConfig({
    secrets: { file: join(dir, "s.age"), identityFile: join(dir, "id.key") },
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

const sample = () => ({
  exit: { privateKey: generatePrivateKey() },
  gateway: { privateKey: generatePrivateKey() },
  hcloudToken: "tok-secret-456",
  endpoint: "203.0.113.7:51820",
});

test("age store reads binary and armored age files (age CLI and library); age -d reads what it writes", async () => {
  requireTools("age", "age-keygen");
  const dir = tempDir("wgetest-secrets-");
  const { cfg, store } = storeIn(dir);
  // An identity made by the real age-keygen, not by us.
  await run("age-keygen", ["-o", cfg.identityFile]);
  chmodSync(cfg.identityFile, 0o600);
  const recipient = (await run("age-keygen", ["-y", cfg.identityFile])).stdout.trim();
  const data = sample();
  const plain = stringify(data);

  // Plain `age -r` writes binary, the case that failed with "invalid header".
  await run("age", ["-r", recipient, "-o", store.file], { input: plain });
  assert.equal(readFileSync(store.file).subarray(0, 22).toString(), "age-encryption.org/v1\n");
  chmodSync(store.file, 0o600);
  assert.deepEqual(await store.read(), data);

  rmSync(store.file);
  await run("age", ["-a", "-r", recipient, "-o", store.file], { input: plain });
  chmodSync(store.file, 0o600);
  assert.deepEqual(await store.read(), data);

  // The age-encryption library's own binary output.
  const e = new Encrypter();
  e.addRecipient(recipient);
  writeFileSync(store.file, await e.encrypt(plain), { mode: 0o600 });
  assert.deepEqual(await store.read(), data);

  // We write armored, and the real age decrypts it.
  await store.write(data);
  assert.match(readFileSync(store.file, "utf8"), /^-----BEGIN AGE ENCRYPTED FILE-----\n/);
  const out = await run("age", ["-d", "-i", cfg.identityFile, store.file]);
  assert.deepEqual(parse(out.stdout), data);

  writeFileSync(store.file, "exit: {privateKey: x}\n", { mode: 0o600 });
  await assert.rejects(store.read(), /s\.age is not an age file \(binary or armored\)$/);
  writeFileSync(store.file, "a: ENC[AES256_GCM,data:x]\nsops:\n  version: 3.8.1\n", { mode: 0o600 });
  await assert.rejects(store.read(), /it is a SOPS file, set secrets\.backend: sops$/);
});

test("secrets.recipients: every write is readable by each of them too; a bad one is refused with its key", async () => {
  requireTools("age");
  const dir = tempDir("wgetest-secrets-");
  const backup = await generateX25519Identity();
  const backupFile = join(dir, "backup.key");
  writeFileSync(backupFile, `${backup}\n`, { mode: 0o600 });
  const cfg = parseConfig({
    secrets: {
      file: join(dir, "s.age"),
      identityFile: join(dir, "id.key"),
      recipients: [await identityToRecipient(backup)],
    },
  }).secrets;
  await createAgeIdentity(cfg.identityFile);
  const data = sample();
  await openSecretsStore(cfg).write(data);
  for (const id of [cfg.identityFile, backupFile])
    assert.deepEqual(parse((await run("age", ["-d", "-i", id, cfg.file])).stdout), data, id);

  const bad = await cli([
    "secrets",
    "show",
    "-c",
    writeConfig(dir, { secrets: { ...cfg, recipients: ["ssh-ed25519 AAAA"] } }),
  ]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /secrets\.recipients\[0\] = "ssh-ed25519 AAAA": expected an age recipient/);
  // Right alphabet, wrong checksum: refused before anything is written.
  const cfg2 = {
    ...cfg,
    recipients: [`${cfg.recipients[0].slice(0, -1)}${cfg.recipients[0].endsWith("q") ? "p" : "q"}`],
  };
  await assert.rejects(
    openSecretsStore(cfg2).write(data),
    /secrets\.recipients: age1\S+ is not a valid age recipient/,
  );
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
