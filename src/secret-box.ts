import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

/**
 * Secrets flowd must read back (webhook signing secrets, later per-user signing secrets) are kept
 * sealed with AES-256-GCM under FLOWD_SECRET_KEY, so a dump of the database alone does not hand
 * them out. A stored value is `v1:<base64 iv>:<base64 ciphertext+tag>`; anything that does not
 * start with `v<digits>:` is a plaintext value from before a key was set and is passed through.
 */

/** FLOWD_SECRET_KEY's spellings of 32 bytes: 64 hex characters, or standard base64 (44 characters with its `=`). */
export const SECRET_KEY_PATTERN = "^(?:[0-9A-Fa-f]{64}|[A-Za-z0-9+/]{43}=?)$";

/** A stored value that was sealed, by any version of the format (SQL `~` and JavaScript read it alike). */
export const SEALED_PATTERN = "^v[0-9]+:";
const SEALED = new RegExp(SEALED_PATTERN);

const VERSION = "v1";
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Decodes FLOWD_SECRET_KEY; null when it is not 32 bytes in one of the accepted spellings. */
export function parseSecretKey(text: string): Uint8Array | null {
  if (!new RegExp(SECRET_KEY_PATTERN).test(text)) return null;
  const bytes = Buffer.from(text, text.length === 64 ? "hex" : "base64");
  return bytes.length === 32 ? new Uint8Array(bytes) : null;
}

export type SecretBoxErrorCode = "secret_key_missing" | "secret_key_mismatch" | "secret_malformed";

/** A stored secret that cannot be opened: says whether the key is missing, wrong, or the value broken. */
export class SecretBoxError extends Error {
  constructor(
    readonly code: SecretBoxErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "SecretBoxError";
  }
}

export interface SecretBox {
  /** Whether a key is set: without one, seal() stores plaintext as flowd did before. */
  readonly keyed: boolean;
  /** The string to store for `plaintext`. */
  seal(plaintext: string): string;
  /** The plaintext of a stored string; throws SecretBoxError when it is sealed and cannot be opened. */
  open(stored: string): string;
  /** Whether a stored string is sealed (as opposed to plaintext from before a key was set). */
  isSealed(stored: string): boolean;
}

/** A box over a 32-byte key, or a pass-through box when `key` is undefined. Pure: connects to nothing. */
export function createSecretBox(key: Uint8Array | undefined): SecretBox {
  if (key !== undefined && key.length !== 32) throw new Error(`a secret key is 32 bytes, not ${key.length}`);
  const k = key === undefined ? undefined : Buffer.from(key);
  const isSealed = (stored: string) => SEALED.test(stored);
  return {
    keyed: k !== undefined,
    isSealed,
    seal(plaintext) {
      if (!k) {
        // Stored in clear, a value shaped like a sealed one would be misread on the way back.
        if (isSealed(plaintext)) throw new Error("a plaintext secret may not start like a sealed one (v<digits>:) when FLOWD_SECRET_KEY is not set");
        return plaintext;
      }
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv("aes-256-gcm", k, iv);
      const sealed = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()]);
      return `${VERSION}:${iv.toString("base64")}:${sealed.toString("base64")}`;
    },
    open(stored) {
      if (!isSealed(stored)) return stored;
      if (!k)
        throw new SecretBoxError(
          "secret_key_missing",
          "the stored secret is encrypted but FLOWD_SECRET_KEY is not set in this process: set it to the key the other flowd processes use",
        );
      const [version, ivText, dataText, ...rest] = stored.split(":");
      if (version !== VERSION) throw new SecretBoxError("secret_malformed", `the stored secret uses format ${version}, which this flowd version does not know`);
      const iv = Buffer.from(ivText ?? "", "base64");
      const data = Buffer.from(dataText ?? "", "base64");
      if (rest.length > 0 || iv.length !== IV_BYTES || data.length < TAG_BYTES)
        throw new SecretBoxError("secret_malformed", "the stored secret is not a well-formed v1 value (v1:<iv>:<ciphertext>)");
      try {
        const decipher = createDecipheriv("aes-256-gcm", k, iv);
        decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
        return Buffer.concat([decipher.update(data.subarray(0, data.length - TAG_BYTES)), decipher.final()]).toString("utf8");
      } catch {
        // GCM cannot tell a different key from altered bytes: both fail the tag.
        throw new SecretBoxError(
          "secret_key_mismatch",
          "the stored secret does not open with this process's FLOWD_SECRET_KEY: the key does not match the one it was sealed with (or the stored value was altered)",
        );
      }
    },
  };
}
