/**
 * Where `flowd login` keeps deployments: `$XDG_CONFIG_HOME/flowd/config.json` (or
 * `~/.config/flowd/config.json`), readable by its owner alone (0600, in a 0700 folder), holding
 * named contexts `{ url, token }` and which one is current. FLOWD_URL and FLOWD_TOKEN override it.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ClientError, LOGIN_HINT } from "./api";

export interface Context {
  url: string;
  token: string;
}
export interface ClientConfig {
  current?: string;
  contexts: Record<string, Context>;
}

export function configPath(env: Record<string, string | undefined>): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || "/tmp", ".config");
  return join(base, "flowd", "config.json");
}

export function readConfig(path: string): ClientConfig {
  if (!existsSync(path)) return { contexts: {} };
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8"));
    return { current: parsed.current, contexts: parsed.contexts ?? {} };
  } catch (err) {
    throw new ClientError(`cannot read ${path}: ${(err as Error).message}; fix or remove it, then ${LOGIN_HINT}`);
  }
}

/** Written to a temporary file and renamed, with 0600 from the start: the token is never readable by others. */
export function writeConfig(path: string, config: ClientConfig) {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(config, null, 2) + "\n", { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** The URL and token to use: flags, then FLOWD_URL / FLOWD_TOKEN, then the chosen or current context. */
export function resolveTarget(
  env: Record<string, string | undefined>,
  flags: { url?: string; token?: string; context?: string },
): Context {
  const config = readConfig(configPath(env));
  const name = flags.context ?? config.current;
  if (flags.context && !config.contexts[flags.context])
    throw new ClientError(`no context named '${flags.context}' in ${configPath(env)}: ${LOGIN_HINT.replace("TOKEN`", `TOKEN --context ${flags.context}\``)}`);
  const ctx = name ? config.contexts[name] : undefined;
  const url = flags.url ?? env.FLOWD_URL ?? ctx?.url;
  const token = flags.token ?? env.FLOWD_TOKEN ?? ctx?.token;
  if (!url || !token) throw new ClientError(`not logged in: ${LOGIN_HINT}`);
  return { url, token };
}
