import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { generateX25519Identity, identityToRecipient } from "age-encryption";
import { decryptSops as sopsAgeDecrypt } from "sops-age";
import { parse } from "yaml";
import { parseConfig } from "../../src/config/load.js";
import type { SecretsData } from "../../src/secrets/data.js";
import { decryptSops } from "../../src/secrets/sops.js";
import { createAgeIdentity, openSecretsStore } from "../../src/secrets/store.js";
import { generatePrivateKey, publicKeyOf } from "../../src/wireguard/keys.js";
import { cli } from "../support/cli.js";
import { writeConfig } from "../support/config.js";
import { tempDir } from "../support/tmp.js";
import { openDataKey, openSopsValue, sopsFile } from "./sops-fixture.js";

/**
 * The SOPS backend without the sops binary. Two checks that do not trust our own code: sops-age (an
 * independent decrypter on npm) reads what we write, and we read files built by test/secrets/
 * sops-fixture.ts, which follows the published format with its own code.
 */

const mode = (p: string) => statSync(p).mode & 0o777;

const sample = (): SecretsData => ({
  exit: { privateKey: generatePrivateKey() },
  gateway: { privateKey: generatePrivateKey() },
  hcloudToken: "hcloud-token-sops-789",
  endpoint: "203.0.113.9:51820",
});

async function identity() {
  const id = await generateX25519Identity();
  return { id, recipient: await identityToRecipient(id) };
}

/** A sops-backed store in a fresh directory, with our identity and `recipients` more. */
async function sopsStore(recipients: string[] = []) {
  const dir = tempDir("wgetest-sops-");
  const cfg = parseConfig({
    secrets: {
      backend: "sops",
      file: join(dir, "secrets.sops.yaml"),
      identityFile: join(dir, "age.key"),
      recipients,
    },
  }).secrets;
  const recipient = await createAgeIdentity(cfg.identityFile);
  const id = /^AGE-SECRET-KEY-1\S+$/m.exec(readFileSync(cfg.identityFile, "utf8"))![0];
  return { dir, cfg, store: openSecretsStore(cfg), id, recipient };
}

test("sops: sops-age, an independent implementation, decrypts what we write, for every recipient; MAC as specified", async () => {
  const backup = await identity();
  const { dir, cfg, store, id, recipient } = await sopsStore([backup.recipient]);
  const data = sample();
  await store.write(data);
  const text = readFileSync(store.file, "utf8");
  for (const secret of [data.exit.privateKey, data.gateway.privateKey, data.hcloudToken!, data.endpoint!])
    assert.ok(!text.includes(secret), "no plaintext value in the file");
  assert.equal(mode(store.file), 0o600);
  assert.deepEqual(readdirSync(dir).sort(), ["age.key", "secrets.sops.yaml"], "no temporary file left");

  for (const key of [id, backup.id])
    assert.deepEqual(await sopsAgeDecrypt(text, { secretKey: key, fileType: "yaml" }), data);

  const doc = parse(text);
  assert.deepEqual(
    doc.sops.age.map((a: { recipient: string }) => a.recipient),
    [recipient, backup.recipient],
  );
  assert.match(doc.sops.lastmodified, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.match(text, /^ {4}lastmodified: "[^"]+"$/m, "quoted, as sops writes it");
  assert.equal(doc.sops.unencrypted_suffix, "_unencrypted");
  assert.match(doc.sops.version, /^3\.\d+\.\d+$/);
  assert.match(doc.exit.privateKey, /^ENC\[AES256_GCM,data:[^,]+,iv:[^,]+,tag:[^,]+,type:str\]$/);
  // sops-age does not check the MAC: check it here, with the test's own AES-GCM and hashing.
  const dataKey = await openDataKey(doc.sops.age[1].enc, backup.id);
  const values = [data.exit.privateKey, data.gateway.privateKey, data.hcloudToken, data.endpoint];
  assert.equal(
    openSopsValue(dataKey, doc.sops.lastmodified, doc.sops.mac),
    createHash("sha512").update(values.join("")).digest("hex").toUpperCase(),
  );

  assert.deepEqual(await store.read(), data);
  const next = { ...data, gateway: { privateKey: generatePrivateKey() } };
  await store.write(next); // a rewrite, as rotate does: new data key, still 0600
  assert.deepEqual(await store.read(), next);
  assert.equal(mode(cfg.file), 0o600);
});

test("sops: reads a file laid out as sops 3.8 writes it, with every value type (fixture built independently)", async () => {
  const ours = await identity();
  const other = await identity();
  const text = await sopsFile(
    [other.recipient, ours.recipient],
    (v) => `secret: ${v.enc("secret", "str", "this is a secret")}
count: ${v.enc("count", "int", "7")}
ratio: ${v.enc("ratio", "float", "3.14")}
enabled: ${v.enc("enabled", "bool", "True")}
nested:
  value: ${v.enc("nested.value", "str", "deeper")}
  list:
    - ${v.enc("nested.list", "str", "one")}
    - ${v.enc("nested.list", "str", "two")}
empty: ${v.clear("")}""
note_unencrypted: ${v.clear("kept in clear")}
`,
  );
  const expected = {
    secret: "this is a secret",
    count: 7,
    ratio: 3.14,
    enabled: true,
    nested: { value: "deeper", list: ["one", "two"] },
    empty: "",
    note_unencrypted: "kept in clear",
  };
  assert.deepEqual(await decryptSops(text, [ours.id], "fixture.yaml", "id.key"), expected);
  // The fixture itself passes the independent decrypter.
  assert.deepEqual(await sopsAgeDecrypt(text, { secretKey: ours.id, fileType: "yaml" }), expected);
});

test("sops: secrets show reads a store file made elsewhere, our recipient not the first", async () => {
  const dir = tempDir("wgetest-sops-");
  const config = writeConfig(dir, {
    secrets: { backend: "sops", file: join(dir, "s.sops.yaml"), identityFile: join(dir, "age.key") },
  });
  const recipient = await createAgeIdentity(join(dir, "age.key"));
  const data = sample();
  const text = await sopsFile(
    [(await identity()).recipient, recipient],
    (v) => `exit:
  privateKey: ${v.enc("exit.privateKey", "str", data.exit.privateKey)}
gateway:
  privateKey: ${v.enc("gateway.privateKey", "str", data.gateway.privateKey)}
hcloudToken: ${v.enc("hcloudToken", "str", data.hcloudToken!)}
endpoint: ${v.enc("endpoint", "str", data.endpoint!)}
`,
  );
  writeFileSync(join(dir, "s.sops.yaml"), text, { mode: 0o600 });
  const show = await cli(["secrets", "show", "-c", config]);
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, /\(sops\)/);
  assert.match(
    show.stdout,
    new RegExp(`exit public key:\\s+${publicKeyOf(data.exit.privateKey).replace(/[+/]/g, "\\$&")}$`, "m"),
  );
  assert.match(show.stdout, /^endpoint: 203\.0\.113\.9:51820$/m);
  const token = await cli(["secrets", "show", "--reveal", "hcloudToken", "-c", config]);
  assert.equal(token.stdout, `${data.hcloudToken}\n`);
});

test("sops: a changed, swapped or removed value, a moved date, or a tampered or missing MAC is refused", async () => {
  const { store, cfg } = await sopsStore();
  await store.write(sample());
  const good = readFileSync(store.file, "utf8");
  const lines = good.split("\n");
  const at = (key: string) => lines.findIndex((l) => l.startsWith(key));
  const variants: [string, string, RegExp][] = [];
  // The MAC's ciphertext altered: it no longer authenticates.
  const mac = lines[at("    mac: ")];
  const flipped = mac.replace(/data:(.)/, (_, c) => `data:${c === "A" ? "B" : "A"}`);
  variants.push(["tampered MAC", good.replace(mac, flipped), /MAC cannot be decrypted/]);
  // Two values swapped (both lines read "    privateKey: ENC[...]"): each is bound to its path.
  const [ie, ig] = lines.flatMap((l, i) => (l.startsWith("    privateKey: ") ? [i] : []));
  const swapped = [...lines];
  [swapped[ie], swapped[ig]] = [lines[ig], lines[ie]];
  variants.push([
    "swapped values",
    swapped.join("\n"),
    /exit\.privateKey: cannot decrypt: authentication failed/,
  ]);
  // A whole entry removed, or its order changed: the MAC covers every value in order.
  variants.push([
    "removed value",
    lines.filter((l) => !l.startsWith("hcloudToken: ")).join("\n"),
    /MAC mismatch/,
  ]);
  const [t, ep] = [at("hcloudToken: "), at("endpoint: ")];
  const reordered = [...lines];
  [reordered[t], reordered[ep]] = [lines[ep], lines[t]];
  variants.push(["reordered values", reordered.join("\n"), /MAC mismatch/]);
  variants.push([
    "moved date",
    good.replace(/lastmodified: "(\d{4})/, (_, y) => `lastmodified: "${Number(y) - 1}`),
    /MAC cannot be decrypted/,
  ]);
  variants.push(["no MAC", lines.filter((l) => !l.startsWith("    mac: ")).join("\n"), /no sops\.mac/]);
  for (const [what, text, message] of variants) {
    assert.notEqual(text, good, what);
    writeFileSync(cfg.file, text, { mode: 0o600 });
    await assert.rejects(store.read(), (err: Error & { exitCode?: number }) => {
      assert.match(err.message, message, what);
      assert.ok(err.message.startsWith(`${cfg.file}: `), what);
      assert.equal(err.exitCode, 1, what);
      return true;
    });
  }
  writeFileSync(cfg.file, good, { mode: 0o600 });
  await store.read(); // the control: the untouched file is accepted
});

test("sops: the wrong identity gets one line naming the file's recipients", async () => {
  const { store, cfg, recipient } = await sopsStore();
  await store.write(sample());
  await createAgeIdentity(cfg.identityFile); // replaced by another identity
  await assert.rejects(
    store.read(),
    new RegExp(
      `^OperationError: .*secrets\\.sops\\.yaml: none of its age recipients \\(${recipient}\\) is an identity in .*age\\.key$`,
    ),
  );
});

test("sops: key groups (Shamir) and files with no age recipient are refused with one line", async () => {
  const ours = await identity();
  const body = (v: { enc: (p: string, t: "str", s: string) => string }) => `a: ${v.enc("a", "str", "x")}\n`;
  const grouped = (await sopsFile([ours.recipient], body)).replace(
    "  kms: []\n",
    "  key_groups:\n    - age: []\n  kms: []\n",
  );
  await assert.rejects(
    decryptSops(grouped, [ours.id], "f.yaml", "id"),
    /^OperationError: f\.yaml: sops key_groups \(Shamir secret sharing\) are not supported/,
  );
  const pgpOnly = (await sopsFile([], body)).replace(
    "  pgp: []",
    "  pgp:\n    - fp: FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4\n      enc: x",
  );
  await assert.rejects(
    decryptSops(pgpOnly, [ours.id], "f.yaml", "id"),
    /no age recipient in its sops metadata \(only pgp, which wg-egress cannot use\)/,
  );
  await assert.rejects(
    decryptSops("a: 1\n", [ours.id], "f.yaml", "id"),
    /f\.yaml: not a SOPS file \(no sops metadata\)/,
  );
});

test("sops backend needs no sops binary: secrets init, show and a rewrite (set-token) with nothing on PATH", async () => {
  const dir = tempDir("wgetest-sops-");
  const config = writeConfig(dir, {
    secrets: { backend: "sops", file: join(dir, "secrets.sops.yaml"), identityFile: join(dir, "age.key") },
    gateway: { interface: "wgetest-none0" },
  });
  const env = { PATH: dir };
  const init = await cli(["secrets", "init", "-c", config], { env });
  assert.equal(init.code, 0, init.stderr);
  assert.match(init.stdout, /created age identity .*age\.key \(public key age1\S+\)/);
  assert.match(init.stdout, /created .*secrets\.sops\.yaml \(sops\)/);
  const id = /^AGE-SECRET-KEY-1\S+$/m.exec(readFileSync(join(dir, "age.key"), "utf8"))![0];
  const text = readFileSync(join(dir, "secrets.sops.yaml"), "utf8");
  const stored = await sopsAgeDecrypt(text, { secretKey: id, fileType: "yaml" });
  assert.equal(publicKeyOf(stored.gateway.privateKey), /gateway public key:\s+(\S+)/.exec(init.stdout)![1]);
  const show = await cli(["secrets", "show", "-c", config], { env });
  assert.equal(show.code, 0, show.stderr);

  // A file that lists a recipient the config does not: the rewrite says who loses access.
  const other = await identity();
  writeFileSync(
    join(dir, "secrets.sops.yaml"),
    await sopsFile(
      [other.recipient, /\(public key (age1\S+)\)/.exec(init.stdout)![1]],
      (v) =>
        `exit:\n  privateKey: ${v.enc("exit.privateKey", "str", stored.exit.privateKey)}\ngateway:\n  privateKey: ${v.enc("gateway.privateKey", "str", stored.gateway.privateKey)}\n`,
    ),
    { mode: 0o600 },
  );
  // A rewrite of the store (rotation itself needs an exit reachable over SSH: tested elsewhere).
  const rewrite = await cli(["secrets", "set-token", "--token-stdin", "-c", config], {
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
    input: "token-after-rewrite\n",
  });
  assert.equal(rewrite.code, 0, rewrite.stderr);
  assert.match(
    rewrite.stderr,
    new RegExp(
      `"dropped":\\["${other.recipient}"\\].*can no longer read the rewritten secrets file: add them to secrets\\.recipients`,
    ),
  );
  const after = readFileSync(join(dir, "secrets.sops.yaml"), "utf8");
  assert.equal(parse(after).sops.age.length, 1);
  const rewritten = await sopsAgeDecrypt(after, { secretKey: id, fileType: "yaml" });
  assert.equal(rewritten.hcloudToken, "token-after-rewrite");
  assert.equal(rewritten.exit.privateKey, stored.exit.privateKey, "keys untouched by set-token");
});
