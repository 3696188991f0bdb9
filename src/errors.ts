/** Domain errors: each has a fixed code and HTTP status; the error plugin renders them. */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export class InvalidInput extends AppError {
  constructor(message: string, details?: unknown, code = "invalid_input") {
    super(400, code, message, details);
  }
}

export class Unauthorized extends AppError {
  constructor(message = "Send a valid API token as 'Authorization: Bearer <token>' (create one with 'flowd token create --user NAME').") {
    super(401, "unauthorized", message);
  }
}

export class Forbidden extends AppError {
  constructor(code: string, message: string) {
    super(403, code, message);
  }
}

export class NotFound extends AppError {
  constructor(what: string, id: string) {
    const shown = JSON.stringify(id.length > 64 ? `${id.slice(0, 64)}…` : id);
    super(404, "not_found", `No ${what} with id ${shown} exists for this user.`);
  }
}

export class Conflict extends AppError {
  constructor(code: string, message: string, details?: unknown) {
    super(409, code, message, details);
  }
}

export class TooLarge extends AppError {
  constructor(message: string, details?: unknown) {
    super(413, "payload_too_large", message, details);
  }
}

/** Carries `Retry-After`, which the error plugin sends along. */
export class RateLimited extends AppError {
  readonly headers: Record<string, string>;
  constructor(retryAfterSeconds: number, perSecond: number, who = "this user") {
    super(429, "rate_limited", `Too many requests for ${who} (the limit is ${perSecond} per second); retry after ${retryAfterSeconds} s.`, {
      retryAfterSeconds,
    });
    this.headers = { "retry-after": String(retryAfterSeconds) };
  }
}

/** Thrown when a service cannot be reached at start; its message is the one line a person sees. */
export class ConnectError extends Error {}

/** The URL with its password replaced, safe to print. */
export function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:/@]+):[^@]*@/, "//$1:***@");
  }
}

/** A handler module (FLOWD_HANDLERS) that cannot be used: the message names the file and handler, and the process exits 1. */
export class HandlerModuleError extends Error {
  constructor(
    readonly file: string,
    readonly handler: string | undefined,
    problem: string,
  ) {
    super(`handler module ${file}${handler === undefined ? "" : `, handler '${handler}'`}: ${problem}`);
    this.name = "HandlerModuleError";
  }
}
