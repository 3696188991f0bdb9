/**
 * Flow definitions shipped in handler modules (`export const definitions = { ... }`): checked as a
 * PUT /v1/definitions/:name body is, before the process connects to anything, then stored at start
 * as versions of definitions every user can run (`source: module`). The versioning is the PUT's: an
 * unchanged body makes no new version, a changed one the next, and runs of earlier ones keep theirs.
 */
import { TypeCompiler } from "@sinclair/typebox/compiler";
import type { Config } from "../config";
import type { Db } from "../db/client";
import { HandlerModuleError } from "../errors";
import type { LoadedHandler, ModuleDefinition } from "../handlers/loader";
import type { Logger } from "../log";
import { checkDefinition, checkName, storeVersion, type DefinitionInput } from "../services/definitions";
import { createHandlerRegistry } from "../services/handler-registry";
import { PutDefinitionBody } from "../api/models/definitions";
import { moduleEntries } from "./registration";

export type CheckedDefinition = { name: string; file: string; body: DefinitionInput };

const shape = TypeCompiler.Compile(PutDefinitionBody);

/** Every definition checked whole; the first problem throws, naming the file, the definition and the path. */
export function checkModuleDefinitions(
  defined: readonly ModuleDefinition[],
  config: Config,
  modules: readonly LoadedHandler[],
): CheckedDefinition[] {
  // What the flow may use: built-ins, this process's module handlers, anything on an external queue.
  const registry = createHandlerRegistry(config);
  registry.load(moduleEntries(modules));
  return defined.map(({ name, file, body }) => {
    const fail = (problem: string) => new HandlerModuleError(file, undefined, `definition '${name}': ${problem}`);
    try {
      checkName(name, "definition name", "/name");
      if (!shape.Check(body)) {
        const first = shape.Errors(body).First();
        throw fail(`at ${first?.path || "/"}: ${first?.message ?? "not a definition"} (expected { description?, input?, flow: { root } or { jobs } })`);
      }
      checkDefinition({ config, registry }, body as DefinitionInput);
    } catch (err) {
      if (err instanceof HandlerModuleError) throw err;
      throw fail((err as Error).message);
    }
    return { name, file, body: body as DefinitionInput };
  });
}

/** Stores each as the modules' definition of its name; tells which made a new version. */
export async function storeModuleDefinitions(db: Db, defs: readonly CheckedDefinition[], log: Logger) {
  if (defs.length === 0) return;
  const created: string[] = [];
  for (const def of defs) if (await storeVersion(db, null, def.name, def.body)) created.push(def.name);
  log.info("module definitions registered", { definitions: defs.map((d) => d.name), newVersions: created });
}
