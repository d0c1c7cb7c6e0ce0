import { z } from "zod";

/** An age recipient as age-keygen prints it (X25519 `age1…`, or the post-quantum/tag kinds `age1pq1…`). */
const ageRecipient = z
  .string()
  .regex(/^age1[02-9ac-hj-np-z]{10,}$/, "expected an age recipient (age1…, as age-keygen prints it)");

export const secretsSchema = z
  .object({
    /** One encrypted file with both sides' keys, the API token and the endpoint. */
    file: z.string().optional(),
    /** age (an age file, built in) or sops (a SOPS YAML file with age recipients, read and written natively). */
    backend: z.enum(["age", "sops"]).default("age"),
    /** age identity file (0600) used to decrypt; created by `secrets init`. Its public key is always a recipient. */
    identityFile: z.string().default("/etc/wg-egress/age.key"),
    /** More age recipients every write encrypts to (a backup key kept offline, an admin's laptop). */
    recipients: z.array(ageRecipient).default([]),
  })
  .strict()
  .transform((s) => ({
    ...s,
    file:
      s.file ?? (s.backend === "sops" ? "/etc/wg-egress/secrets.sops.yaml" : "/etc/wg-egress/secrets.age"),
  }));

export type SecretsConfig = z.infer<typeof secretsSchema>;
