import type { Config } from "../config";
import type { Db } from "../db/client";
import type { Logger } from "../log";
import type { Producer } from "../queues";
import type { Waiters } from "./waiters";
import type { HandlerCheck } from "./handler-registry";

/** What the use-cases need, whoever calls them (routes, workers). */
export interface ServiceDeps {
  config: Config;
  db: Db;
  producer: Producer;
  log: Logger;
  waiters: Waiters;
  /** The handlers workers registered, to validate new jobs against (the built-ins when absent). */
  registry?: HandlerCheck;
  /** Asks every worker process to abort these running jobs. */
  broadcastCancel(jobIds: string[]): Promise<void>;
}

export interface User {
  userId: string;
}
