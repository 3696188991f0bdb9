import { t } from "elysia";
import { FormatRegistry, Type } from "@sinclair/typebox";

/** The largest integer a JavaScript number holds exactly: the ceiling for seq and id cursors. */
export const MAX_SAFE = Number.MAX_SAFE_INTEGER;

type Bounds = { minimum: number; maximum: number; description?: string };

const INTEGER_TEXT = /^-?\d+$/;
const DECIMAL_TEXT = /^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** A string format that holds the bounds too, registered once per range. */
function boundedFormat(kind: "integer" | "number", { minimum, maximum }: Bounds): string {
  const name = `flowd-${kind}:${minimum}:${maximum}`;
  if (!FormatRegistry.Has(name)) {
    const text = kind === "integer" ? INTEGER_TEXT : DECIMAL_TEXT;
    FormatRegistry.Set(name, (value) => {
      if (!text.test(value)) return false;
      const n = Number(value);
      return Number.isFinite(n) && n >= minimum && n <= maximum && (kind === "number" || Number.isSafeInteger(n));
    });
  }
  return name;
}

/**
 * A number in a query string, bounded both ways. Elysia's t.Integer / t.Numeric check the bounds
 * inside their string-to-number transform, where the field's name is lost ("Invalid input at /"),
 * and leave a number past 2^53 or past bigint to the database (a 500). Here the string form
 * carries the bounds as a format, so a value out of range fails the ordinary schema check at its
 * own path (`/limit`), and the error plugin words the message from the bounds.
 */
function queryNumber(kind: "integer" | "number", bounds: Bounds) {
  const { minimum, maximum, description } = bounds;
  const text = t.String({ format: boundedFormat(kind, bounds) });
  // Elysia coerces every Number schema in a query into its own t.Numeric, which accepts any numeric
  // string and checks bounds where the path is lost; an Integer branch it leaves alone. So a
  // fractional parameter is the string form alone, with the bounds stated beside it for the docs.
  const schema =
    kind === "integer"
      ? t.Union([text, Type.Integer({ minimum, maximum })], { minimum, maximum, description })
      : t.Union([text], { minimum, maximum, description: description ?? `a number from ${minimum} to ${maximum}` });
  return t
    .Transform(schema)
    .Decode((value) => (typeof value === "number" ? value : Number(value)))
    .Encode((value) => value);
}

export const QueryInteger = (bounds: Bounds) => queryNumber("integer", bounds);
export const QueryNumber = (bounds: Bounds) => queryNumber("number", bounds);
