import { t } from "elysia";
import type { DefinitionSummary, DefinitionView, VersionView } from "../../services/definitions";
import { NAME_PATTERN } from "../../services/definitions";
import { JsonInteger } from "./common";
import { FlowNodeSchema, GraphJobSchema } from "./flows";

export const DefinitionName = t.String({
  minLength: 1,
  maxLength: 128,
  description: `a definition's name (${NAME_PATTERN})`,
});

/** The flow of a definition: what POST /v1/flows takes, its name optional (the definition's name by default). */
export const DefinitionFlowSchema = t.Object(
  {
    name: t.Optional(t.String({ minLength: 1, maxLength: 200, description: "the runs' flow name (default: the definition's name)" })),
    root: t.Optional(FlowNodeSchema),
    jobs: t.Optional(t.Array(GraphJobSchema, { minItems: 1, maxItems: 100_000 })),
  },
  {
    additionalProperties: false,
    $id: "DefinitionFlow",
    description:
      'A tree (root) or a graph (jobs), as POST /v1/flows takes. In a job\'s data, an object that is exactly { "$input": "<JSON Pointer>" } is replaced, whole, by the value the pointer selects in the run\'s input ("" is the whole input); strings are never interpolated.',
  },
);

export const PutDefinitionBody = t.Object(
  {
    description: t.Optional(t.String({ maxLength: 2000 })),
    input: t.Optional(t.Unknown({ description: "a JSON Schema (draft 2020-12 / 07 keywords, checked by Ajv) every run's input must match" })),
    flow: DefinitionFlowSchema,
  },
  { additionalProperties: false, $id: "PutDefinition" },
);

const versionFields = {
  name: t.String(),
  version: JsonInteger({ minimum: 1 }),
  description: t.Union([t.Null(), t.String()]),
  input: t.Unknown({ description: "the input schema, or null" }),
  flow: t.Record(t.String(), t.Unknown(), { description: "the flow as PUT, with its $input references" }),
  createdAt: t.String({ format: "date-time" }),
};
export const DefinitionVersionSchema = t.Unsafe<VersionView>(t.Object(versionFields, { $id: "DefinitionVersion" }));

const summaryFields = {
  name: t.String(),
  source: t.Union([t.Literal("api"), t.Literal("module")], {
    description: "api: your own (PUT); module: registered by a handler module for every user (read-only here; yours of the same name comes first)",
  }),
  latestVersion: JsonInteger({ minimum: 1 }),
  createdAt: t.String({ format: "date-time" }),
  updatedAt: t.String({ format: "date-time" }),
};
export const DefinitionSummarySchema = t.Unsafe<DefinitionSummary>(t.Object(summaryFields, { $id: "DefinitionSummary" }));
export const DefinitionSchema = t.Unsafe<DefinitionView>(
  t.Object(
    {
      ...summaryFields,
      latest: DefinitionVersionSchema,
      versions: t.Array(
        t.Object({ version: JsonInteger(), description: t.Union([t.Null(), t.String()]), createdAt: t.String({ format: "date-time" }) }),
        { description: "every version, newest first" },
      ),
    },
    { $id: "Definition" },
  ),
);
export const DefinitionPageSchema = t.Object({ items: t.Array(DefinitionSummarySchema), nextCursor: t.Union([t.Null(), t.String()]) }, { $id: "DefinitionPage" });

export const RunDefinitionBody = t.Object(
  {
    input: t.Optional(t.Unknown({ description: "checked against the version's input schema; fills the $input references (default {})" })),
    version: t.Optional(JsonInteger({ minimum: 1, description: "the version to run (default: the latest)" })),
  },
  { additionalProperties: false, $id: "RunDefinition" },
);

export const DefinitionParams = t.Object({ name: t.String({ maxLength: 200 }) });
export const VersionParams = t.Object({ name: t.String({ maxLength: 200 }), version: t.String({ maxLength: 12, description: "a version number" }) });
