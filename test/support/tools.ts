import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { PACKAGE_OF } from "../../src/util/run.js";

/** The Debian package of each tool the tests call (beyond those the product itself runs). */
const TEST_PACKAGE_OF: Record<string, string> = {
  ...PACKAGE_OF,
  age: "age",
  "age-keygen": "age",
  curl: "curl",
  ncat: "ncat",
  proxychains4: "proxychains4",
  microsocks: "microsocks",
  sockd: "dante-server",
  iperf3: "iperf3",
  socat: "socat",
  promtool: "prometheus",
  prometheus: "prometheus",
  "systemd-analyze": "systemd",
  "nix-instantiate": "nix-bin",
  sshd: "openssh-server",
  "ssh-keygen": "openssh-client",
  ping: "iputils-ping",
  setpriv: "util-linux",
  unshare: "util-linux",
  flock: "util-linux",
  ss: "iproute2",
  "/usr/bin/python3": "python3 python3-socks",
};

function onPath(cmd: string): boolean {
  const dirs = cmd.includes("/")
    ? [""]
    : [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/sbin"];
  return dirs.some((d) => {
    try {
      accessSync(d ? join(d, cmd) : cmd, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Fails at once, naming the package to install, when a tool the test calls is missing: otherwise the
 * test would time out waiting for something the tool never did (.ci/run installs every one of them).
 */
export function requireTools(...cmds: string[]): void {
  const missing = cmds.filter((c) => !onPath(c));
  if (missing.length > 0)
    throw new Error(
      `missing ${missing.join(", ")}: apt-get install --no-install-recommends ${[...new Set(missing.map((c) => TEST_PACKAGE_OF[c] ?? c))].join(" ")}`,
    );
}

/** Debian's python3, which has python3-socks (PySocks), even when a pyenv python3 comes first in PATH. */
export const PYTHON = onPath("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
