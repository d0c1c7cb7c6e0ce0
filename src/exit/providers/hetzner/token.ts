import type { SecretsConfig } from "../../../config/secrets-schema.js";
import { openSecretsStore } from "../../../secrets/store.js";
import { UsageError } from "../../../util/errors.js";

export interface Token {
  token: string;
  /** Where it came from, for the message when the API rejects it. */
  source: string;
}

/** The API token: HCLOUD_TOKEN (as the hcloud CLI reads it), else the secrets store; never a flag. */
export async function hcloudToken(cfg: SecretsConfig): Promise<Token> {
  const env = process.env.HCLOUD_TOKEN?.trim();
  if (env) return { token: env, source: "HCLOUD_TOKEN" };
  const store = openSecretsStore(cfg);
  const token = store.exists() ? (await store.read()).hcloudToken : undefined;
  if (!token)
    throw new UsageError(
      store.exists()
        ? `no Hetzner API token: set HCLOUD_TOKEN, or store it in ${store.file} with: wg-egress secrets set-token --token-stdin`
        : "no Hetzner API token: set HCLOUD_TOKEN, or create the store with it: HCLOUD_TOKEN=… wg-egress secrets init",
    );
  return { token, source: `the token in ${store.file}` };
}
