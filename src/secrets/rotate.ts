import type { Config } from "../config/schema.js";
import { setConfigValues } from "../exit/config-edit.js";
import { renderExitHost } from "../exit/host.js";
import { renderInstallScript, runOverSsh, type SshTarget } from "../exit/ssh-install.js";
import { run } from "../util/run.js";
import { generatePrivateKey, publicKeyOf } from "../wireguard/keys.js";
import { writeFileAtomic } from "./atomic.js";
import type { SecretsData } from "./data.js";
import type { SecretsStore } from "./store.js";

/**
 * Key rotation with the shortest outage we can get without a second tunnel: the exit first accepts the new
 * gateway key next to the old one, then the gateway switches to it (the tunnel keeps working), then the exit
 * takes its own new key and drops the old peer, and the gateway follows to the exit's new key right after.
 */

export interface RotationStep {
  what: string;
  run: () => Promise<void>;
}

export interface RotationPlan {
  steps: RotationStep[];
  /** What the user still has to do (an exit we cannot reach over SSH). */
  manual: string[];
}

async function interfaceExists(name: string): Promise<boolean> {
  return (await run("ip", ["link", "show", "dev", name], { allowFail: true })).code === 0;
}

export function sshTargetOf(config: Config): SshTarget | undefined {
  const s = config.exit.ssh;
  return s.target
    ? { target: s.target, port: s.port, identityFile: s.identityFile, options: s.options }
    : undefined;
}

export function planRotation(
  config: Config,
  store: SecretsStore,
  old: SecretsData,
  configFile: string,
): RotationPlan {
  const next: SecretsData = {
    ...old,
    exit: { privateKey: generatePrivateKey() },
    gateway: { privateKey: generatePrivateKey() },
  };
  const gw = config.gateway;
  const exit = config.exit;
  const newGwPub = publicKeyOf(next.gateway.privateKey);
  const oldExitPub = publicKeyOf(old.exit.privateKey);
  const newExitPub = publicKeyOf(next.exit.privateKey);
  const target = sshTargetOf(config);
  const endpoint = next.endpoint ?? gw.peer.endpoint;
  const steps: RotationStep[] = [
    {
      // First, so a failure later never loses the new keys.
      what: `store the new keys in ${store.file}`,
      run: () => store.write(next),
    },
  ];
  if (target)
    steps.push({
      what: `exit ${target.target}: accept the new gateway key ${newGwPub} next to the old one`,
      run: async () => {
        await runOverSsh(
          target,
          `set -eu\nwg set ${exit.interface} peer ${newGwPub} allowed-ips ${exit.gatewayAllowedIps.join(",")}\n`,
        );
      },
    });
  steps.push({
    what: `gateway: write the new private key to ${gw.privateKeyFile} and switch ${gw.interface} to it if it is up`,
    run: async () => {
      writeFileAtomic(gw.privateKeyFile, `${next.gateway.privateKey}\n`, 0o600);
      if (await interfaceExists(gw.interface))
        await run("wg", ["set", gw.interface, "private-key", gw.privateKeyFile]);
    },
  });
  if (target)
    steps.push({
      what: `exit ${target.target}: switch to its new key ${newExitPub} and drop the old gateway key`,
      run: async () => {
        const host = renderExitHost(exit, { privateKey: next.exit.privateKey, gatewayPublicKey: newGwPub });
        await runOverSsh(target, renderInstallScript(exit, host, { dir: exit.ssh.dir, system: false }));
      },
    });
  steps.push({
    what: `gateway: peer ${oldExitPub} → ${newExitPub} (live on ${gw.interface} if it is up; gateway.peer.publicKey in ${configFile})`,
    run: async () => {
      setConfigValues(configFile, { "gateway.peer.publicKey": newExitPub });
      if (!(await interfaceExists(gw.interface))) return;
      // Without a configured endpoint, keep the one the running peer uses.
      const live = (await run("wg", ["show", gw.interface, "endpoints"])).stdout
        .split("\n")
        .map((l) => l.split("\t"))
        .find(([key]) => key === oldExitPub)?.[1];
      const ep = endpoint ?? (live && live !== "(none)" ? live : undefined);
      await run("wg", [
        "set",
        gw.interface,
        "peer",
        oldExitPub,
        "remove",
        "peer",
        newExitPub,
        ...(ep ? ["endpoint", ep] : []),
        "persistent-keepalive",
        String(gw.peer.persistentKeepalive),
        "allowed-ips",
        gw.peer.allowedIps.join(","),
      ]);
    },
  });
  const manual = target
    ? []
    : [
        "the exit still has the old keys, so the tunnel is down until you update it:",
        "  an SSH-reachable exit: wg-egress exit install --ssh root@HOST (or set exit.ssh.target and rotate again)",
        "  a Hetzner exit: wg-egress exit deprovision && wg-egress exit provision (cloud-init renders the new keys)",
      ];
  return { steps, manual };
}
