import { echo } from "./echo";
import { fail } from "./fail";
import { http } from "./http";
import { sleep } from "./sleep";
import type { Handler } from "./types";

export type HandlerName = "echo" | "sleep" | "http" | "fail";

/** Every name has a handler, or this does not compile; the API validates job names against the same keys. */
export const handlers: { [name in HandlerName]: Handler } = { echo, sleep, http, fail } as { [name in HandlerName]: Handler };

export const HANDLER_NAMES = Object.keys(handlers) as HandlerName[];

export const isHandlerName = (name: string): name is HandlerName => Object.hasOwn(handlers, name);
