import { parse, stringify } from "yaml";
import { z } from "zod";
import { hostPortText, wgKey } from "../config/types.js";
import { OperationError } from "../util/errors.js";
import type { SecretField } from "./fields.js";

/** What the encrypted store holds: both sides' WireGuard keys, the API token and the exit's endpoint. */
export const secretsDataSchema = z
  .object({
    exit: z.object({ privateKey: wgKey }).strict(),
    gateway: z.object({ privateKey: wgKey }).strict(),
    hcloudToken: z.string().min(1).optional(),
    endpoint: hostPortText.optional(),
  })
  .strict();

export type SecretsData = z.infer<typeof secretsDataSchema>;

export function secretField(data: SecretsData, field: SecretField): string | undefined {
  if (field === "hcloudToken") return data.hcloudToken;
  return field === "exit.privateKey" ? data.exit.privateKey : data.gateway.privateKey;
}

export function serializeSecrets(data: SecretsData): string {
  return stringify(secretsDataSchema.parse(data));
}

/** Parses decrypted YAML text; the message names the file but never a value. */
export function parseSecretsYaml(text: string, source: string): unknown {
  try {
    return parse(text);
  } catch {
    throw new OperationError(
      `${source}: decrypted content is not YAML; recreate it with wg-egress secrets init --force`,
    );
  }
}

/** Checks decrypted data; the message names the file and the field but never a value. */
export function validateSecrets(raw: unknown, source: string): SecretsData {
  const r = secretsDataSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new OperationError(`${source}: ${issue.path.map(String).join(".") || "(top)"}: ${issue.message}`);
  }
  return r.data;
}
