/** Build step: writes the schema's defaults for `--help` (see defaults.ts). */
import { writeFileSync } from "node:fs";
import { DEFAULTS_JSON } from "./defaults.js";
import { parseConfig } from "./load.js";

writeFileSync(DEFAULTS_JSON, `${JSON.stringify(parseConfig({}), null, 2)}\n`);
