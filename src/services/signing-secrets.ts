import { createHmac, randomBytes } from "node:crypto";
import type { Config } from "../config";
import type { Db } from "../db/client";
import { findSigningSecret, insertSigningSecret, plaintextSigningSecrets, replaceSigningSecrets, rotateSigningSecret, type SigningSecretRow } from "../db/queries/signing-secrets";
import { createSecretBox, SEALED_PATTERN } from "../secret-box";

const secretBox = (config: Pick<Config, "secretKey">) => createSecretBox(config.secretKey);

/** How long the secret a rotation replaces keeps signing beside the new one. */
export const ROTATION_OVERLAP_MS = 24 * 3600_000;

/** A fresh Standard Webhooks secret: `whsec_` and 32 random bytes in base64. */
export const newSigningSecret = () => `whsec_${randomBytes(32).toString("base64")}`;

/** Standard Webhooks signature: base64 HMAC-SHA256 of "id.timestamp.body" with the secret's bytes. */
export function sign(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  return `v1,${createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64")}`;
}

/** The secrets that sign now: the current one, and the one a rotation replaced while its overlap lasts. */
export interface SigningKeys {
  secret: string;
  previous: string | null;
  previousUntil: Date | null;
}

/** The `webhook-signature` value: one `v1,` entry per secret that signs now, space-separated as the scheme allows. */
export function signatureHeader(keys: SigningKeys, id: string, timestamp: number, body: string, now = Date.now()): string {
  const entries = [sign(keys.secret, id, timestamp, body)];
  if (keys.previous && keys.previousUntil && keys.previousUntil.getTime() > now) entries.push(sign(keys.previous, id, timestamp, body));
  return entries.join(" ");
}

/** Opens a stored row's secrets with FLOWD_SECRET_KEY. */
export function openKeys(config: Pick<Config, "secretKey">, row: Pick<SigningSecretRow, "secret" | "previousSecret" | "previousUntil">): SigningKeys {
  const box = secretBox(config);
  return {
    secret: box.open(row.secret),
    previous: row.previousSecret ? box.open(row.previousSecret) : null,
    previousUntil: row.previousUntil,
  };
}

/** The user's signing secrets, created on first use. */
export async function signingKeys(deps: { db: Db; config: Pick<Config, "secretKey"> }, userId: string): Promise<SigningKeys> {
  let row = await findSigningSecret(deps.db, userId);
  if (!row) {
    await insertSigningSecret(deps.db, userId, secretBox(deps.config).seal(newSigningSecret()));
    row = await findSigningSecret(deps.db, userId);
  }
  return openKeys(deps.config, row!);
}

/** What `GET /v1/signing-secret` and the rotation answer. */
export interface SigningSecretView {
  secret: string;
  previousSecret: string | null;
  previousValidUntil: string | null;
}

const view = (keys: SigningKeys, now = Date.now()): SigningSecretView => {
  const overlapping = keys.previous !== null && keys.previousUntil !== null && keys.previousUntil.getTime() > now;
  return {
    secret: keys.secret,
    previousSecret: overlapping ? keys.previous : null,
    previousValidUntil: overlapping ? keys.previousUntil!.toISOString() : null,
  };
};

export async function showSigningSecret(deps: { db: Db; config: Pick<Config, "secretKey"> }, userId: string): Promise<SigningSecretView> {
  return view(await signingKeys(deps, userId));
}

export async function rotateUserSigningSecret(deps: { db: Db; config: Pick<Config, "secretKey"> }, userId: string): Promise<SigningSecretView> {
  await signingKeys(deps, userId); // a rotation before any use still leaves a previous secret to overlap with
  const row = await rotateSigningSecret(deps.db, userId, secretBox(deps.config).seal(newSigningSecret()), new Date(Date.now() + ROTATION_OVERLAP_MS));
  return view(openKeys(deps.config, row!));
}

/** With a key, seals signing secrets still stored in clear (from before the key was set); safe with several processes at once. */
export async function sealPlaintextSigningSecrets(deps: { db: Db; config: Pick<Config, "secretKey"> }): Promise<number> {
  const box = secretBox(deps.config);
  if (!box.keyed) return 0;
  let sealed = 0;
  for (;;) {
    const rows = await plaintextSigningSecrets(deps.db, SEALED_PATTERN, 500);
    if (rows.length === 0) return sealed;
    let changed = 0;
    for (const row of rows) {
      const seal = (v: string) => (box.isSealed(v) ? v : box.seal(v));
      if (await replaceSigningSecrets(deps.db, row, { secret: seal(row.secret), previousSecret: row.previousSecret === null ? null : seal(row.previousSecret) })) changed++;
    }
    sealed += changed;
    if (changed === 0) return sealed; // another process sealed them meanwhile
  }
}
