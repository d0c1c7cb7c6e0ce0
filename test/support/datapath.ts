import type { DataPath } from "../../src/gateway/model.js";

/** The one-exit data path with the config's defaults; a test overrides what it is about. */
export const dataPath = (over: Partial<DataPath> = {}): DataPath => ({
  ifname: "wg-egress",
  fwmark: 0xca6c,
  table: 51820,
  rulePriority: 5182,
  nftTable: "wg-egress",
  primary: true,
  sources: [],
  otherSources: [],
  uid: 400,
  clients: { v4: [], v6: [] },
  ...over,
});
