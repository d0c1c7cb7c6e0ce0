/** Names accepted by `secrets show --reveal` (its own module: the CLI's help lists them without loading the store). */
export const SECRET_FIELDS = ["exit.privateKey", "gateway.privateKey", "hcloudToken"] as const;
export type SecretField = (typeof SECRET_FIELDS)[number];
