import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before } from "node:test";
import { type FakeOptions, startFakeHetzner } from "../fakes/hetzner/server.js";
import { type CliResult, cli } from "../support/cli.js";
import { writeConfig } from "../support/config.js";
import { tempDir } from "../support/tmp.js";

/**
 * The Hetzner CLI tests' world: the real CLI (`node dist/src/cli/main.js exit ...`) against the local Hetzner
 * fake, with the home-IP detector pointed at a local HTTP server (the first detector URL is dead: the
 * fallback must answer). Every output is kept, so a test can prove that no secret ever appeared in one.
 */

export const FAKE_TOKEN = "fake-token-0123456789";
/** The SSH key every world's fake project has, and the config names (an exit someone can log into). */
export const LOGIN = { sshKeyNames: ["laptop"] };
/** What the home-IP detector answers; tests may move it. */
export const home = { ip: "198.51.100.7" };
/** The detector's URL, and a loopback URL nobody listens on (the detector's first, failing choice). */
export const urls = { ip: "", dead: "" };
const outputs: CliResult[] = [];
const configs: string[] = [];

/** Starts the home-IP server for the calling test file. */
export function useHomeIpServer(): void {
  let ipServer: Server;
  before(async () => {
    ipServer = createServer((_req, res) => res.end(`${home.ip}\n`));
    await new Promise<void>((r) => ipServer.listen(0, "127.0.0.1", r));
    urls.ip = `http://127.0.0.1:${(ipServer.address() as AddressInfo).port}/`;
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    urls.dead = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/`;
    await new Promise((r) => closed.close(r));
  });
  after(() => ipServer.close());
}

export async function world(opts: FakeOptions = {}, exit: Record<string, unknown> = { hetzner: LOGIN }) {
  const fake = await startFakeHetzner({ actionPolls: 2, token: FAKE_TOKEN, ...opts });
  fake.seedSshKey("laptop", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake me@laptop");
  const dir = tempDir("wgetest-hcloud-");
  const config = writeConfig(
    dir,
    { exit: { homeIpUrls: [urls.dead, urls.ip], ...exit }, gateway: { interface: "wgetest-none" } },
    "# the gateway's config; comments must survive set-endpoint\n",
  );
  const env = { HCLOUD_ENDPOINT: fake.url, HCLOUD_TOKEN: fake.token, HCLOUD_POLL_INTERVAL: "10ms" };
  configs.push(config);
  const run = async (args: string[], extraEnv: NodeJS.ProcessEnv = {}, cfg = config) => {
    const r = await cli([...args, "-c", cfg], { env: { ...env, ...extraEnv } });
    outputs.push(r);
    return r;
  };
  const init = await run(["secrets", "init"]);
  if (init.code !== 0) {
    // The callers' try/finally starts after world(): close the fake here, or it keeps the run alive.
    await fake.close();
    assert.fail(`secrets init failed: ${init.stderr}`);
  }
  return { fake, dir, config, env, run };
}

/** No private key or token ever appeared in any output or log of this file's commands. */
export async function assertNoSecretsLeaked(minOutputs: number): Promise<void> {
  assert.ok(outputs.length >= minOutputs && configs.length >= 2);
  const secrets = [FAKE_TOKEN];
  for (const config of configs)
    for (const field of ["exit.privateKey", "gateway.privateKey"]) {
      const r = await cli(["secrets", "show", "--reveal", field, "-c", config]);
      assert.equal(r.code, 0, r.stderr);
      secrets.push(r.stdout.trim());
    }
  for (const s of secrets) assert.match(s, /^\S{20,}$/);
  for (const r of outputs)
    for (const s of secrets) assert.ok(!r.stdout.includes(s) && !r.stderr.includes(s), "a secret leaked");
}
