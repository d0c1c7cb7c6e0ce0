import { before, test } from "node:test";
import { requireTools } from "../support/tools.js";
import { labRun } from "./lab-run.js";

before(() => requireTools("flock", "curl", "wg", "wireguard-go", "nft", "setpriv", "unbound"));

test("lab: egress via the exit, DNS at the exit and on the LAN, the WAN's subnet, policy, idle connections", {
  timeout: 118_000,
}, () => {
  labRun([1, 2, 3, 4, 5, 11], 115_000);
});
