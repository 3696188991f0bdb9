import { echo } from "./echo";
import { fail } from "./fail";
import { http } from "./http";
import { sleep } from "./sleep";
import type { Handler } from "./types";
import { approval, signal, wait } from "./wait-steps";

const catalog = { echo, sleep, http, fail, wait, signal, approval };

/** A built-in handler's name: adding a handler to the catalog is the one edit that adds a name. */
export type HandlerName = keyof typeof catalog;

/** The API validates job names against the same keys. */
export const handlers: { readonly [name in HandlerName]: Handler } = catalog as { [name in HandlerName]: Handler };

export const HANDLER_NAMES = Object.keys(handlers) as HandlerName[];

export const isHandlerName = (name: string): name is HandlerName => Object.hasOwn(handlers, name);

/** The built-ins that park their job instead of running (handlers/wait-steps.ts). */
export const WAIT_STEP_NAMES: readonly HandlerName[] = ["wait", "signal", "approval"];
export const isWaitStep = (name: string) => (WAIT_STEP_NAMES as readonly string[]).includes(name);
