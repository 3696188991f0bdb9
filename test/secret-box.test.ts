import { describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { ConfigError, loadConfig } from "../src/config";
import { createSecretBox, parseSecretKey, SecretBoxError } from "../src/secret-box";

const key = () => new Uint8Array(randomBytes(32));

/** What open() throws (fails the test when it does not throw). */
function openError(open: () => string): SecretBoxError {
  try {
    open();
  } catch (err) {
    expect(err).toBeInstanceOf(SecretBoxError);
    return err as SecretBoxError;
  }
  throw new Error("open() accepted the value");
}

describe("secret box", () => {
  test("round trip; the stored form is versioned, fresh per seal, and holds no plaintext", () => {
    const box = createSecretBox(key());
    const secret = `whsec_${randomBytes(32).toString("base64")}`;
    const a = box.seal(secret);
    const b = box.seal(secret);
    expect(a).toMatch(/^v1:[A-Za-z0-9+/]{16}:[A-Za-z0-9+/]+={0,2}$/);
    expect(Buffer.from(a.split(":")[1]!, "base64")).toHaveLength(12);
    expect(a).not.toBe(b);
    expect(a).not.toContain(secret.slice("whsec_".length, 20));
    expect(box.open(a)).toBe(secret);
    expect(box.open(b)).toBe(secret);
    expect(box.open(box.seal(""))).toBe("");
    expect(box.open(box.seal("ünïcødé ✓"))).toBe("ünïcødé ✓");
    expect(box.keyed).toBe(true);
    expect(box.isSealed(a)).toBe(true);
  });

  test("any altered byte of the iv, ciphertext or tag is refused", () => {
    const box = createSecretBox(key());
    const [v, iv, data] = box.seal("whsec_payload-to-protect").split(":") as [string, string, string];
    const flip = (b64: string, i: number) => {
      const bytes = Buffer.from(b64, "base64");
      bytes[i]! ^= 1;
      return bytes.toString("base64");
    };
    const dataLength = Buffer.from(data, "base64").length;
    for (const altered of [`${v}:${flip(iv, 0)}:${data}`, `${v}:${iv}:${flip(data, 0)}`, `${v}:${iv}:${flip(data, dataLength - 1)}`])
      expect(openError(() => box.open(altered)).code).toBe("secret_key_mismatch");
  });

  test("a value sealed with another key fails, saying the key does not match", () => {
    const sealed = createSecretBox(key()).seal("whsec_x");
    const err = openError(() => createSecretBox(key()).open(sealed));
    expect(err.code).toBe("secret_key_mismatch");
    expect(err.message).toContain("FLOWD_SECRET_KEY");
    expect(err.message).toContain("does not match");
  });

  test("a sealed value without a key fails, saying the key is missing", () => {
    const sealed = createSecretBox(key()).seal("whsec_x");
    const err = openError(() => createSecretBox(undefined).open(sealed));
    expect(err.code).toBe("secret_key_missing");
    expect(err.message).toContain("FLOWD_SECRET_KEY is not set");
  });

  test("malformed and unknown-version values are refused as such", () => {
    const box = createSecretBox(key());
    for (const bad of ["v1:", "v1:abc", "v1:AAAA:AAAA", "v1:a:b:c"]) expect(openError(() => box.open(bad)).code).toBe("secret_malformed");
    expect(openError(() => box.open("v2:AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA==")).message).toContain("v2");
  });

  test("plaintext from before a key was set passes through open(), with a key or without", () => {
    const legacy = `whsec_${randomBytes(32).toString("base64")}`;
    expect(createSecretBox(key()).open(legacy)).toBe(legacy);
    expect(createSecretBox(key()).isSealed(legacy)).toBe(false);
    const clear = createSecretBox(undefined);
    expect(clear.keyed).toBe(false);
    expect(clear.seal(legacy)).toBe(legacy);
    expect(clear.open(legacy)).toBe(legacy);
  });

  test("without a key, a plaintext shaped like a sealed value is refused rather than stored ambiguously", () => {
    expect(() => createSecretBox(undefined).seal("v1:looks:sealed")).toThrow("v<digits>:");
  });

  test("a key that is not 32 bytes is refused", () => {
    expect(() => createSecretBox(new Uint8Array(16))).toThrow("32 bytes");
  });
});

describe("FLOWD_SECRET_KEY", () => {
  const raw = randomBytes(32);

  test("base64 (with or without its padding) and hex spellings give the same 32 bytes", () => {
    for (const text of [raw.toString("base64"), raw.toString("base64").replace(/=$/, ""), raw.toString("hex"), raw.toString("hex").toUpperCase()]) {
      expect(parseSecretKey(text)).toEqual(new Uint8Array(raw));
      expect(loadConfig({ FLOWD_SECRET_KEY: text }).secretKey).toEqual(new Uint8Array(raw));
    }
  });

  test("unset or empty means no key", () => {
    expect(loadConfig({}).secretKey).toBeUndefined();
    expect(loadConfig({ FLOWD_SECRET_KEY: "" }).secretKey).toBeUndefined();
  });

  test.each([
    ["16 bytes of base64", randomBytes(16).toString("base64")],
    ["48 bytes of base64", randomBytes(48).toString("base64")],
    ["63 hex characters", raw.toString("hex").slice(1)],
    ["base64url", "-_".repeat(21) + "A="],
    ["a passphrase", "correct horse battery staple"],
    ["a key with a trailing newline", `${raw.toString("base64")}\n`],
  ])("%s is refused by loadConfig, naming the variable and never repeating the value", (_what, value) => {
    let err: unknown;
    try {
      loadConfig({ FLOWD_SECRET_KEY: value });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain("FLOWD_SECRET_KEY");
    expect(problems[0]).toContain("32 bytes");
    expect((err as ConfigError).message).not.toContain(value.trim());
  });
});
