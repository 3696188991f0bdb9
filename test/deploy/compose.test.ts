import { describe, expect, test } from "bun:test";
import { loadConfig } from "../../src/config";

/**
 * docker-compose.yml, read as Compose reads it (no Docker engine needed): every flowd service must
 * get FLOWD_SECRET_KEY from the operator's environment, required, so that a compose deployment
 * never keeps webhook and signing secrets in clear by default.
 */
const compose = Bun.YAML.parse(await Bun.file(new URL("../../docker-compose.yml", import.meta.url)).text()) as {
  services: Record<string, { command?: string[]; environment?: Record<string, string> }>;
};
const flowdServices = Object.entries(compose.services).filter(([, s]) => s.command?.some((arg) => arg.startsWith("--role=")));

describe("docker-compose.yml", () => {
  test("runs an api and a worker", () => {
    expect(flowdServices.map(([name]) => name).sort()).toEqual(["api", "worker"]);
  });

  for (const name of ["api", "worker"])
    test(`${name} takes FLOWD_SECRET_KEY from the environment and refuses to start without it`, () => {
      const value = compose.services[name]!.environment?.FLOWD_SECRET_KEY;
      // ${VAR:?message}: Compose stops with the message when VAR is unset or empty.
      expect(value).toMatch(/^\$\{FLOWD_SECRET_KEY:\?[^}]*openssl rand -base64 32[^}]*\}$/);
    });

  test("every other variable set for flowd is one flowd accepts", () => {
    for (const [, service] of flowdServices) {
      const env = { ...service.environment!, FLOWD_SECRET_KEY: Buffer.alloc(32, 1).toString("base64") };
      expect(() => loadConfig(env)).not.toThrow();
    }
  });
});
