import { t } from "elysia";
import { Nullable } from "./common";
import { JsonInteger } from "./common";
import { LimitKey } from "./flows";
import { QueryInteger } from "./query";
import { MAX_LIMIT, MAX_LIMIT_KEY_LENGTH, MAX_RATE } from "../../scheduling/limits";

const DAY_MS = 24 * 60 * 60 * 1000;

const KeyRate = t.Object(
  {
    max: JsonInteger({ minimum: 1, maximum: MAX_RATE, description: "starts per perMs" }),
    perMs: JsonInteger({ minimum: 1, maximum: DAY_MS }),
  },
  { additionalProperties: false },
);

export const LimitParams = t.Object({ key: LimitKey });

export const PutLimitBody = t.Object(
  {
    concurrency: t.Optional(
      t.Union([JsonInteger({ minimum: 1, maximum: MAX_LIMIT }), t.Null()], { description: "jobs of the key running at once; null: no limit; absent: unchanged" }),
    ),
    rateLimit: t.Optional(t.Union([KeyRate, t.Null()], { description: "at most max starts per perMs, spread evenly; null: none; absent: unchanged" })),
  },
  { additionalProperties: false },
);

export const LimitViewSchema = t.Object(
  {
    key: t.String({ maxLength: MAX_LIMIT_KEY_LENGTH }),
    concurrency: t.Union([JsonInteger(), t.Null()]),
    rateLimit: t.Union([t.Object({ max: JsonInteger(), perMs: JsonInteger() }), t.Null()]),
    running: JsonInteger({ description: "released jobs of the key not finished yet" }),
    waiting: JsonInteger({ description: "jobs held whose first concurrency key (else rate limit key) this is" }),
    updatedAt: t.String({ format: "date-time" }),
  },
  { $id: "Limit" },
);

export const LimitPageSchema = t.Object({
  items: t.Array(LimitViewSchema),
  next: Nullable(t.String({ description: "pass as ?after= for the next page; null on the last" })),
});

export const LimitListQuery = t.Object({
  after: t.Optional(t.String({ maxLength: MAX_LIMIT_KEY_LENGTH })),
  limit: t.Optional(QueryInteger({ minimum: 1, maximum: 1_000 })),
});
