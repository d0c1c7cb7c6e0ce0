import { z } from "zod";

export const secretsSchema = z
  .object({
    /** One encrypted file with both sides' keys, the API token and the endpoint. */
    file: z.string().default("/etc/wg-egress/secrets.age"),
    /** age (built in) or sops (needs the sops binary; file like secrets.sops.yaml). */
    backend: z.enum(["age", "sops"]).default("age"),
    /** age identity file (0600) used to decrypt; created by `secrets init`. */
    identityFile: z.string().default("/etc/wg-egress/age.key"),
  })
  .strict();

export type SecretsConfig = z.infer<typeof secretsSchema>;
