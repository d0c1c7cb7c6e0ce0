import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parse } from "yaml";
import { parseConfig } from "../../src/config/load.js";
import {
  exitSecretsOf,
  gatewayKeyOf,
  serializeSecrets,
  validateSecrets,
  withExitSecrets,
} from "../../src/secrets/data.js";
import { createAgeIdentity, openSecretsStore } from "../../src/secrets/store.js";
import { generatePrivateKey, publicKeyOf } from "../../src/wireguard/keys.js";
import { cli } from "../support/cli.js";
import { writeConfig } from "../support/config.js";
import { tempDir } from "../support/tmp.js";

/** Each exit's keys and endpoint in the one store; the one-exit format read and written unchanged. */

const mode = (p: string) => statSync(p).mode & 0o777;
const FRA = { name: "fra", primary: true };
const HEL = { name: "hel", primary: false };

test("the first exit's material is the store's top level (the one-exit format); the others' live under exits.NAME", async () => {
  const old = {
    exit: { privateKey: generatePrivateKey() },
    gateway: { privateKey: generatePrivateKey() },
    endpoint: "203.0.113.10:51820",
  };
  // A one-exit file: read as it is, its text has no new key.
  assert.deepEqual(validateSecrets(parse(serializeSecrets(old)), "s"), old);
  assert.doesNotMatch(serializeSecrets(old), /exits/);
  assert.deepEqual(exitSecretsOf(old, FRA), { privateKey: old.exit.privateKey, endpoint: old.endpoint });
  assert.equal(exitSecretsOf(old, HEL), undefined);

  const helKey = generatePrivateKey();
  const grown = withExitSecrets(old, HEL, { privateKey: helKey, endpoint: "203.0.113.20:51820" });
  assert.deepEqual(exitSecretsOf(grown, HEL), { privateKey: helKey, endpoint: "203.0.113.20:51820" });
  assert.deepEqual(exitSecretsOf(grown, FRA), exitSecretsOf(old, FRA), "the first exit's untouched");
  assert.equal(gatewayKeyOf(grown, HEL), old.gateway.privateKey, "no own gateway key: the shared one");
  const own = generatePrivateKey();
  assert.equal(
    gatewayKeyOf(withExitSecrets(grown, HEL, { privateKey: helKey, gatewayPrivateKey: own }), HEL),
    own,
  );
  // Forgetting an endpoint removes it, for either kind of exit.
  assert.equal(
    withExitSecrets(grown, HEL, { privateKey: helKey, endpoint: undefined }).exits?.hel.endpoint,
    undefined,
  );
  assert.ok(!("endpoint" in withExitSecrets(grown, FRA, { privateKey: old.exit.privateKey })));

  // Through the encrypted store: the grown file is written atomically 0600 and reads back the same.
  const dir = tempDir("wgetest-secrets-");
  const cfg = parseConfig({
    secrets: { file: join(dir, "s.age"), identityFile: join(dir, "id.key") },
  }).secrets;
  await createAgeIdentity(cfg.identityFile);
  const store = openSecretsStore(cfg);
  await store.write(old);
  assert.deepEqual(await store.read(), old);
  await store.write(grown);
  assert.deepEqual(await store.read(), grown);
  assert.equal(mode(store.file), 0o600);
  assert.throws(
    () => validateSecrets({ ...old, exits: { HEL: { privateKey: helKey } } }, "s.age"),
    /^OperationError: s\.age: exits\.HEL: /,
  );
});

test("secrets init --exit adds one exit's keys (its own gateway key file 0600), exit render renders that exit's keys and tunnel", async () => {
  const dir = tempDir("wgetest-secrets-");
  const ownKey = join(dir, "gw-hel.key");
  const config = writeConfig(dir, {
    exit: { sshAuthorizedKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake me@laptop"] },
    exits: [{ name: "fra" }, { name: "hel", address: "10.100.1.2/24", privateKeyFile: ownKey }],
  });
  // A one-exit store made before `hel` existed: the config then gained the exit.
  const before = writeConfig(tempDir("wgetest-secrets-"), {
    secrets: { file: join(dir, "secrets.age"), identityFile: join(dir, "age.key") },
    gateway: { privateKeyFile: join(dir, "gateway.key") },
  });
  assert.equal((await cli(["secrets", "init", "-c", before])).code, 0);
  const reveal = async (field: string, exit: string) => {
    const r = await cli(["secrets", "show", "-c", config, "--reveal", field, "--exit", exit]);
    return { ...r, value: r.stdout.trim() };
  };
  const fraKey = (await reveal("exit.privateKey", "fra")).value;
  const none = await reveal("exit.privateKey", "hel");
  assert.equal(none.code, 1);
  assert.match(none.stderr, /^wg-egress: exit\.privateKey of exit hel is not set in /);
  const render = await cli(["exit", "render", "-c", config, "--exit", "hel"]);
  assert.equal(render.code, 2);
  assert.match(
    render.stderr,
    /has no keys for exit hel: create them with wg-egress secrets init --exit hel$/m,
  );

  const add = await cli(["secrets", "init", "-c", config, "--exit", "hel"]);
  assert.equal(add.code, 0, add.stderr);
  assert.match(add.stdout, /^stored new keys for exit hel in /m);
  assert.match(
    add.stdout,
    new RegExp(`^wrote the gateway's private key for exit hel to ${ownKey} \\(0600\\)$`, "m"),
  );
  assert.doesNotMatch(add.stdout, /gateway\.key/, "the shared gateway key file is not touched");
  assert.equal(mode(ownKey), 0o600);
  assert.equal(mode(join(dir, "secrets.age")), 0o600);
  assert.equal((await reveal("exit.privateKey", "fra")).value, fraKey, "the first exit's key stays");
  const helKey = (await reveal("exit.privateKey", "hel")).value;
  const helGw = (await reveal("gateway.privateKey", "hel")).value;
  assert.equal(readFileSync(ownKey, "utf8").trim(), helGw);
  assert.notEqual(helGw, (await reveal("gateway.privateKey", "fra")).value);
  const again = await cli(["secrets", "init", "-c", config, "--exit", "hel"]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already has keys for exit hel: pass --force/);
  const which = await cli(["secrets", "show", "-c", config, "--reveal", "exit.privateKey"]);
  assert.equal(which.code, 2);
  assert.match(which.stderr, /pass --exit with one of fra, hel$/m);

  // exit render: that exit's private key, its gateway key's public half and its own tunnel addresses.
  const script = await cli(["exit", "render", "-c", config, "--exit", "hel", "--format", "script"]);
  assert.equal(script.code, 0, script.stderr);
  assert.match(script.stdout, new RegExp(`PrivateKey = ${helKey.replace(/[+/]/g, "\\$&")}`));
  assert.match(script.stdout, new RegExp(`PublicKey = ${publicKeyOf(helGw).replace(/[+/]/g, "\\$&")}`));
  assert.match(script.stdout, /AllowedIPs = 10\.100\.1\.2\/32/);
  assert.match(script.stdout, /ip address replace 10\.100\.1\.1\/24 dev wg0/);
  assert.ok(!script.stdout.includes(fraKey));
  const fra = await cli(["exit", "render", "-c", config, "--exit", "fra", "--format", "script"]);
  assert.match(fra.stdout, /ip address replace 10\.100\.0\.1\/24 dev wg0/);
  assert.ok(fra.stdout.includes(fraKey) && !fra.stdout.includes(helKey));
  const ambiguous = await cli(["exit", "render", "-c", config]);
  assert.equal(ambiguous.code, 2);
  assert.equal(
    ambiguous.stderr.trim(),
    "wg-egress: exit render works on one exit and this config has 2: pass --exit with one of fra, hel",
  );
});
