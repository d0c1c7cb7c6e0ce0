import { stringify } from "yaml";
import type { ExitConfig } from "../config/exit-schema.js";
import type { ExitHost } from "./host.js";
import { EXIT_UNIT, setupScriptPath, systemFiles } from "./system-files.js";

/** PURE: cloud-init user-data for a fresh exit VPS, wrapping the host renderer's output. */

const DIR = "/etc/wg-egress";

export function renderCloudInit(exit: ExitConfig, host: ExitHost): string {
  const sysctl = Object.entries(host.sysctls)
    .map(([k, v]) => `${k} = ${v}\n`)
    .join("");
  const doc = {
    package_update: true,
    package_upgrade: true,
    packages: ["wireguard-tools", "nftables", "unattended-upgrades"],
    // Keys only; root logs in with the configured keys (cloud-init would otherwise point root at the default user).
    ssh_pwauth: false,
    disable_root: false,
    // The cloud-config schema wants at least one key here: no keys, no key (Hetzner's ssh_keys may add some).
    ...(exit.sshAuthorizedKeys.length ? { ssh_authorized_keys: exit.sshAuthorizedKeys } : {}),
    write_files: [
      {
        path: `${DIR}/${exit.interface}.conf`,
        permissions: "0600",
        owner: "root:root",
        content: host.wgConfig,
      },
      { path: `${DIR}/exit.nft`, permissions: "0600", owner: "root:root", content: host.nftRuleset },
      { path: "/etc/sysctl.d/90-wg-egress.conf", permissions: "0644", owner: "root:root", content: sysctl },
      { path: setupScriptPath(DIR), permissions: "0700", owner: "root:root", content: host.setupScript },
      ...systemFiles(exit, DIR).map((f) => ({ ...f, owner: "root:root" })),
    ],
    runcmd: [
      ["sysctl", "--system"],
      ["systemctl", "daemon-reload"],
      // Runs setup.sh now and at every boot.
      ["systemctl", "enable", "--now", EXIT_UNIT],
      ["systemctl", "reload", "ssh"],
      ["systemctl", "enable", "--now", "unattended-upgrades"],
    ],
  };
  return `#cloud-config\n${stringify(doc, { lineWidth: 0 })}`;
}
