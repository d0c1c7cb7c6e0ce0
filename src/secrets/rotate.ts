import type { ExitConfig } from "../config/exit-schema.js";
import type { GatewayConfig } from "../config/gateway-schema.js";
import type { Config } from "../config/schema.js";
import { setConfigValues } from "../exit/config-edit.js";
import { renderExitHost } from "../exit/host.js";
import { renderInstallScript, runOverSsh, type SshTarget, shellQuote } from "../exit/ssh-install.js";
import { errorMessage, OperationError, UsageError } from "../util/errors.js";
import { run } from "../util/run.js";
import { parseWgDump, type WgInterface } from "../wireguard/dump.js";
import { generatePrivateKey, publicKeyOf } from "../wireguard/keys.js";
import { writeFileAtomic } from "./atomic.js";
import type { SecretsData } from "./data.js";
import type { SecretsStore } from "./store.js";

/**
 * Key rotation that keeps the tunnel (make-before-break), over SSH to the exit:
 * 1. gateway key: the exit accepts the new gateway key as a second peer (no addresses yet, the old peer's
 *    endpoint); the gateway switches to it; as soon as the exit sees the handshake it moves the tunnel
 *    addresses to the new peer and drops the old one, then saves its config. Nothing is dropped for longer
 *    than a handshake. No handshake within 20 s: both sides go back to the old key.
 * 2. exit key: the exit switches to its new key in one step (and saves it); the gateway follows at once
 *    (the remote script's last line is the signal) and must handshake, else both go back.
 * The store, the gateway's key file and the config follow each completed step, so they always agree with
 * what runs. Without a way to reach the exit (exit.ssh.target) nothing is changed at all.
 */

const ADDED = "WG_EGRESS_PEER_ADDED";
const SWITCHED = "WG_EGRESS_SWITCHED";
const CONFIGURED = "wg-egress: exit configured";
/** How long either side waits for the handshake with a new key. */
const HANDSHAKE_TIMEOUT_S = 20;

export function sshTargetOf(exit: ExitConfig): SshTarget | undefined {
  const s = exit.ssh;
  return s.target
    ? { target: s.target, port: s.port, identityFile: s.identityFile, options: s.options }
    : undefined;
}

/** PURE: refuses (exit 4) unless the exit runs `exitPub` and has `gatewayPub` as a peer: the store is the truth. */
export function exitGuard(iface: string, exitPub: string, gatewayPub: string): string {
  const i = shellQuote(iface);
  return `set -eu
if ! wg show ${i} public-key >/dev/null 2>&1; then echo "the exit has no WireGuard interface ${iface}: run wg-egress exit install" >&2; exit 4; fi
if [ "$(wg show ${i} public-key)" != ${shellQuote(exitPub)} ]; then echo "${iface} runs another key than the store's exit key ${exitPub}" >&2; exit 4; fi
if ! wg show ${i} peers | grep -qxF ${shellQuote(gatewayPub)}; then echo "the gateway key ${gatewayPub} is not a peer of ${iface}" >&2; exit 4; fi
`;
}

/**
 * PURE: step 1 on the exit. Adds the new gateway key as a peer without addresses (at the old peer's endpoint),
 * says so (ADDED), waits for its first handshake, then moves the addresses to it and removes the old peer in
 * one `wg set` (SWITCHED). No handshake: removes the new peer and exits 3. `persist` follows (the saved config).
 */
export function acceptGatewayKeyScript(
  exit: ExitConfig,
  oldGw: string,
  newGw: string,
  persist: string,
): string {
  const i = shellQuote(exit.interface);
  const polls = HANDSHAKE_TIMEOUT_S * 20;
  return `EP=$(wg show ${i} endpoints | awk -v k=${shellQuote(oldGw)} '$1 == k { print $2 }')
if [ -n "$EP" ] && [ "$EP" != "(none)" ]; then wg set ${i} peer ${shellQuote(newGw)} endpoint "$EP"; else wg set ${i} peer ${shellQuote(newGw)}; fi
echo ${ADDED}
n=0; hs=0
while [ "$n" -lt ${polls} ]; do
  hs=$(wg show ${i} latest-handshakes | awk -v k=${shellQuote(newGw)} '$1 == k { print $2 }')
  [ "\${hs:-0}" -gt 0 ] && break
  sleep 0.05; n=$((n + 1))
done
if [ "\${hs:-0}" -eq 0 ]; then
  wg set ${i} peer ${shellQuote(newGw)} remove
  echo "no handshake from the new gateway key within ${HANDSHAKE_TIMEOUT_S} s" >&2
  exit 3
fi
wg set ${i} peer ${shellQuote(newGw)} allowed-ips ${shellQuote(exit.gatewayAllowedIps.join(","))} peer ${shellQuote(oldGw)} remove
echo ${SWITCHED}
${persist}`;
}

export interface RotateOptions {
  config: Config;
  /** The config file whose gateway.peer.publicKey (and exit.gatewayPublicKey, when set) follows. */
  configFile: string;
  store: SecretsStore;
  out: (line: string) => void;
}

interface Ctx extends RotateOptions {
  target: SshTarget;
  gw: GatewayConfig;
  exit: ExitConfig;
}

const secondsSince = (t0: number) => `${((Date.now() - t0) / 1000).toFixed(2)} s`;

async function gatewayLive(ifname: string): Promise<WgInterface | null> {
  const r = await run("wg", ["show", ifname, "dump"], { allowFail: true });
  return r.code === 0 ? (parseWgDump(r.stdout, ifname)[0] ?? null) : null;
}

const keepalive = (gw: GatewayConfig) => gw.peer.persistentKeepalive || 25;

/** The key file first (what `gateway up` and any agent read), then the running interface. */
async function setGatewayKey(gw: GatewayConfig, exitPub: string, key: string): Promise<void> {
  writeFileAtomic(gw.privateKeyFile, `${key}\n`, 0o600);
  // A new key drops the sessions; turning keepalive off and on sends one at once, so the handshake is now.
  await run("wg", [
    "set",
    gw.interface,
    "private-key",
    gw.privateKeyFile,
    "peer",
    exitPub,
    "persistent-keepalive",
    "0",
  ]);
  await run("wg", ["set", gw.interface, "peer", exitPub, "persistent-keepalive", String(keepalive(gw))]);
}

/** Replaces the exit peer (same endpoint and addresses); a new peer with keepalive handshakes at once. */
async function setGatewayPeer(
  gw: GatewayConfig,
  endpoint: string | undefined,
  from: string,
  to: string,
): Promise<void> {
  await run("wg", [
    "set",
    gw.interface,
    "peer",
    from,
    "remove",
    "peer",
    to,
    ...(endpoint ? ["endpoint", endpoint] : []),
    "persistent-keepalive",
    String(keepalive(gw)),
    "allowed-ips",
    gw.peer.allowedIps.join(","),
  ]);
}

/** Waits (bounded) for a handshake with `peer` newer than `since` (UNIX seconds). */
async function gatewayHandshake(gw: GatewayConfig, peer: string, since: number): Promise<boolean> {
  const deadline = Date.now() + HANDSHAKE_TIMEOUT_S * 1000;
  while (Date.now() < deadline) {
    const r = await run("wg", ["show", gw.interface, "latest-handshakes"], { allowFail: true });
    const hs = Number(
      r.stdout
        .split("\n")
        .map((l) => l.split("\t"))
        .find(([k]) => k === peer)?.[1] ?? 0,
    );
    if (hs >= since && hs > 0) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** The config file's keys that name the other side's public key. */
function followKeys(ctx: Ctx, values: { exitPub?: string; gatewayPub?: string }): void {
  const v: Record<string, string> = {};
  if (values.exitPub) v["gateway.peer.publicKey"] = values.exitPub;
  if (values.gatewayPub && ctx.exit.gatewayPublicKey) v["exit.gatewayPublicKey"] = values.gatewayPub;
  if (Object.keys(v).length) setConfigValues(ctx.configFile, v);
}

async function store(ctx: Ctx, data: SecretsData, what: string, whereElse: string): Promise<void> {
  try {
    await ctx.store.write(data);
  } catch (e) {
    throw new OperationError(
      `${what} is done on both sides, but storing it in ${ctx.store.file} failed: ${errorMessage(e)}; the store still has the old key: keep ${whereElse}, it holds the only copy of the new one`,
    );
  }
}

/** The exit's public key as it runs now ("" when it cannot be asked): did a cut-off step switch it? */
async function exitKeyNow(ctx: Ctx): Promise<string> {
  const out = await runOverSsh(ctx.target, `wg show ${shellQuote(ctx.exit.interface)} public-key\n`, {
    what: "check",
    timeoutMs: 60_000,
  }).catch(() => "");
  return out.trim();
}

/** Checks everything rotation needs before anything changes; returns the running gateway (null: not here). */
async function preflight(ctx: Ctx, old: SecretsData): Promise<WgInterface | null> {
  const oldExitPub = publicKeyOf(old.exit.privateKey);
  const oldGwPub = publicKeyOf(old.gateway.privateKey);
  try {
    await runOverSsh(ctx.target, exitGuard(ctx.exit.interface, oldExitPub, oldGwPub), {
      what: "the exit's state check",
      timeoutMs: 60_000,
    });
  } catch (e) {
    throw new OperationError(`${errorMessage(e)}; nothing was rotated`);
  }
  // The store must be writable now (the same keys, written again), or a rotation would end with keys
  // nobody kept.
  try {
    await ctx.store.write(old);
  } catch (e) {
    throw new OperationError(
      `cannot write ${ctx.store.file}: ${errorMessage(e)}; nothing was rotated (fix the store first)`,
    );
  }
  const live = await gatewayLive(ctx.gw.interface);
  if (live) {
    if (live.publicKey !== oldGwPub || !live.peers.some((p) => p.publicKey === oldExitPub))
      throw new OperationError(
        `${ctx.gw.interface} runs key ${live.publicKey} with peer(s) ${live.peers.map((p) => p.publicKey).join(", ") || "none"}, not the store's keys (gateway ${oldGwPub}, exit ${oldExitPub}): run wg-egress gateway up first; nothing was rotated`,
      );
  }
  ctx.out(
    `checked: ${ctx.store.file} writable; exit ${ctx.target.target} runs ${oldExitPub} with the gateway's key; ${live ? `${ctx.gw.interface} is up with the stored keys` : `${ctx.gw.interface} is not running here`}`,
  );
  return live;
}

/** Step 1 with the gateway up: make-before-break switch of the gateway key. */
async function rotateGatewayKey(ctx: Ctx, old: SecretsData): Promise<SecretsData> {
  const { exit, gw, target } = ctx;
  const exitPub = publicKeyOf(old.exit.privateKey);
  const oldGwPub = publicKeyOf(old.gateway.privateKey);
  const key = generatePrivateKey();
  const pub = publicKeyOf(key);
  const persist = renderInstallScript(
    exit,
    renderExitHost(exit, { privateKey: old.exit.privateKey, gatewayPublicKey: pub }),
    { dir: exit.ssh.dir, system: false },
  );
  let switching: Promise<unknown> | undefined;
  let switched = false;
  const t0 = Date.now();
  const onLine = (line: string) => {
    if (line === ADDED && !switching) switching = setGatewayKey(gw, exitPub, key).catch((e: unknown) => e);
    if (line === SWITCHED) switched = true;
  };
  try {
    await runOverSsh(
      target,
      exitGuard(exit.interface, exitPub, oldGwPub) + acceptGatewayKeyScript(exit, oldGwPub, pub, persist),
      {
        what: "rotating the gateway key",
        onLine,
        timeoutMs: 120_000,
      },
    );
  } catch (e) {
    const local = await switching;
    if (switched) {
      // Both sides run the new key: keep it; only saving the exit's config failed.
      await store(
        ctx,
        { ...old, gateway: { privateKey: key } },
        "the gateway key rotation",
        gw.privateKeyFile,
      );
      followKeys(ctx, { gatewayPub: pub });
      throw new OperationError(
        `the exit and the gateway switched to the new gateway key ${pub} (stored), but the exit could not save it: ${errorMessage(e)}; finish with wg-egress exit install, then run secrets rotate again for the exit key`,
      );
    }
    const left: string[] = [];
    if (switching) {
      try {
        await setGatewayKey(gw, exitPub, old.gateway.privateKey);
      } catch (r) {
        left.push(
          `the gateway could not go back to its old key (${errorMessage(r)}): run wg-egress gateway up`,
        );
      }
    }
    try {
      await runOverSsh(
        target,
        `wg show ${shellQuote(exit.interface)} peers | grep -qxF ${shellQuote(pub)} && wg set ${shellQuote(exit.interface)} peer ${shellQuote(pub)} remove || true\n`,
        { what: "cleanup", timeoutMs: 60_000 },
      );
    } catch {
      left.push(
        `the exit may still list the unused peer ${pub} (harmless; the next exit install removes it)`,
      );
    }
    throw new OperationError(
      `gateway key rotation failed: ${errorMessage(local instanceof Error ? local : e)}; rolled back: both sides keep the old keys, the store is unchanged${left.length ? `; ${left.join("; ")}` : ""}`,
    );
  }
  await switching;
  ctx.out(
    `1. gateway key ${oldGwPub} → ${pub}: the exit took it as a second peer, the gateway switched, handshake and switch-over after ${secondsSince(t0)}; the old peer is removed and the exit's config saved`,
  );
  if (gw.peer.persistentKeepalive === 0)
    await run("wg", ["set", gw.interface, "peer", exitPub, "persistent-keepalive", "0"]);
  const next = { ...old, gateway: { privateKey: key } };
  await store(ctx, next, "the gateway key rotation", gw.privateKeyFile);
  followKeys(ctx, { gatewayPub: pub });
  ctx.out(`   stored in ${ctx.store.file}; ${gw.privateKeyFile} updated`);
  return next;
}

/** Step 2 with the gateway up: the exit switches its key in one step, the gateway follows at once. */
async function rotateExitKey(ctx: Ctx, old: SecretsData, live: WgInterface): Promise<void> {
  const { exit, gw, target } = ctx;
  const oldPub = publicKeyOf(old.exit.privateKey);
  const gwPub = publicKeyOf(old.gateway.privateKey);
  const key = generatePrivateKey();
  const pub = publicKeyOf(key);
  const endpoint =
    live.peers.find((p) => p.publicKey === oldPub)?.endpoint ?? gw.peer.endpoint?.toString() ?? old.endpoint;
  const install = (privateKey: string) =>
    renderInstallScript(exit, renderExitHost(exit, { privateKey, gatewayPublicKey: gwPub }), {
      dir: exit.ssh.dir,
      system: false,
    });
  let following: Promise<unknown> | undefined;
  const follow = () => {
    followKeys(ctx, { exitPub: pub });
    return setGatewayPeer(gw, endpoint, oldPub, pub);
  };
  const t0 = Date.now();
  const since = Math.floor(t0 / 1000);
  try {
    await runOverSsh(target, exitGuard(exit.interface, oldPub, gwPub) + install(key), {
      what: "rotating the exit key",
      timeoutMs: 120_000,
      onLine: (line) => {
        if (line === CONFIGURED && !following) following = follow().catch((e: unknown) => e);
      },
    });
  } catch (e) {
    if (!following) {
      // Did the exit switch before the connection failed? Ask it; follow if so.
      if ((await exitKeyNow(ctx)) !== pub)
        throw new OperationError(
          `exit key rotation failed: ${errorMessage(e)}; the exit and the gateway keep the exit key ${oldPub} (the new gateway key is in place and stored): run secrets rotate again`,
        );
      following = follow().catch((r: unknown) => r);
    }
  }
  const failedFollow = await following;
  if (!(failedFollow instanceof Error) && (await gatewayHandshake(gw, pub, since))) {
    ctx.out(
      `2. exit key ${oldPub} → ${pub}: the exit switched and saved it, the gateway followed; handshake after ${secondsSince(t0)}`,
    );
    if (gw.peer.persistentKeepalive === 0)
      await run("wg", ["set", gw.interface, "peer", pub, "persistent-keepalive", "0"]);
    await store(
      ctx,
      { ...old, exit: { privateKey: key } },
      "the exit key rotation",
      `the exit's ${exit.ssh.dir}/${exit.interface}.conf`,
    );
    ctx.out(`   stored in ${ctx.store.file}; gateway.peer.publicKey in ${ctx.configFile}`);
    return;
  }
  // No handshake with the new exit key: both sides go back to the old one.
  const why =
    failedFollow instanceof Error
      ? errorMessage(failedFollow)
      : `no handshake within ${HANDSHAKE_TIMEOUT_S} s`;
  const left: string[] = [];
  try {
    await runOverSsh(target, install(old.exit.privateKey), {
      what: "restoring the exit key",
      timeoutMs: 120_000,
    });
  } catch (r) {
    left.push(`the exit could not go back (${errorMessage(r)}): run wg-egress exit install`);
  }
  try {
    followKeys(ctx, { exitPub: oldPub });
    await setGatewayPeer(gw, endpoint, pub, oldPub);
  } catch (r) {
    left.push(`the gateway could not go back (${errorMessage(r)}): run wg-egress gateway up`);
  }
  throw new OperationError(
    `exit key rotation failed: ${why}; rolled back to the exit key ${oldPub} (the new gateway key is in place and stored)${left.length ? `; ${left.join("; ")}` : ""}`,
  );
}

/** The gateway does not run here: the exit takes both new keys in one step; the files follow. */
async function rotateOffline(ctx: Ctx, old: SecretsData): Promise<void> {
  const { exit, gw, target } = ctx;
  const oldExitPub = publicKeyOf(old.exit.privateKey);
  const oldGwPub = publicKeyOf(old.gateway.privateKey);
  const next: SecretsData = {
    ...old,
    exit: { privateKey: generatePrivateKey() },
    gateway: { privateKey: generatePrivateKey() },
  };
  const exitPub = publicKeyOf(next.exit.privateKey);
  const gwPub = publicKeyOf(next.gateway.privateKey);
  const script =
    exitGuard(exit.interface, oldExitPub, oldGwPub) +
    renderInstallScript(
      exit,
      renderExitHost(exit, { privateKey: next.exit.privateKey, gatewayPublicKey: gwPub }),
      {
        dir: exit.ssh.dir,
        system: false,
      },
    );
  try {
    await runOverSsh(target, script, { what: "rotating the exit's keys", timeoutMs: 120_000 });
  } catch (e) {
    if ((await exitKeyNow(ctx)) !== exitPub)
      throw new OperationError(
        `key rotation failed: ${errorMessage(e)}; the exit keeps the old keys, nothing else was changed`,
      );
  }
  ctx.out(`1. exit ${target.target}: now ${exitPub}, gateway peer ${gwPub} (saved)`);
  await store(ctx, next, "the key rotation", `the exit's ${exit.ssh.dir}/${exit.interface}.conf`);
  writeFileAtomic(gw.privateKeyFile, `${next.gateway.privateKey}\n`, 0o600);
  followKeys(ctx, { exitPub, gatewayPub: gwPub });
  ctx.out(
    `2. stored in ${ctx.store.file}; ${gw.privateKeyFile} and gateway.peer.publicKey in ${ctx.configFile} updated (${gw.interface} is not running here: gateway up uses the new keys)`,
  );
}

export async function rotateKeys(o: RotateOptions): Promise<void> {
  const target = sshTargetOf(o.config.exit);
  if (!target)
    throw new UsageError(
      "secrets rotate needs a way to update the exit: set exit.ssh.target (USER@HOST; exit provision records it for a Hetzner exit with SSH keys); nothing was changed",
    );
  const ctx: Ctx = { ...o, target, gw: o.config.gateway, exit: o.config.exit };
  const old = await o.store.read();
  const live = await preflight(ctx, old);
  if (!live) return rotateOffline(ctx, old);
  const afterGateway = await rotateGatewayKey(ctx, old);
  await rotateExitKey(ctx, afterGateway, live);
}
