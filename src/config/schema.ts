import { z } from "zod";
import { exitSchema } from "./exit-schema.js";
import { gatewaySchema } from "./gateway-schema.js";
import { proxySchema } from "./proxy-schema.js";
import { secretsSchema } from "./secrets-schema.js";

/** The one config file every command reads; each part owns one section. */
export const configSchema = z
  .object({
    log: z
      .object({ level: z.enum(["trace", "debug", "info", "warn", "error", "fatal"]).default("info") })
      .strict()
      .prefault({}),
    proxy: proxySchema.prefault({}),
    gateway: gatewaySchema.prefault({}),
    exit: exitSchema.prefault({}),
    secrets: secretsSchema.prefault({}),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
