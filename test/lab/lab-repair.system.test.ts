import { before, test } from "node:test";
import { requireTools } from "../support/tools.js";
import { labRun } from "./lab-run.js";

before(() => requireTools("flock", "curl", "wg", "wireguard-go", "nft", "setpriv", "unbound"));

test("lab: self-repair, the kill switch without the agent, the seed's leak, down with the proxy, a WAN IP change", {
  timeout: 118_000,
}, () => {
  labRun([6, 7, 8, 9, 10, 11], 115_000);
});
