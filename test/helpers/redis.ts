import IORedis from "ioredis";
import { REDIS_URL } from "./services";

let counter = 0;

/** A BullMQ prefix no other test file uses. */
export const uniquePrefix = (tag: string) => `t${tag}${process.pid}${Date.now().toString(36)}${counter++}`;

/** Deletes every key under a prefix and its shards' tags (never FLUSHALL: other files share the server). */
export async function deletePrefix(prefix: string, url = REDIS_URL) {
  const redis = new IORedis(url, { maxRetriesPerRequest: 1 });
  try {
    for (const pattern of [`${prefix}:*`, `{${prefix}-*`, `{${prefix}@*`]) {
      let cursor = "0";
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== "0");
    }
  } finally {
    redis.disconnect();
  }
}

export async function countKeys(prefix: string, url = REDIS_URL): Promise<number> {
  const redis = new IORedis(url, { maxRetriesPerRequest: 1 });
  try {
    let cursor = "0";
    let n = 0;
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      cursor = next;
      n += keys.length;
    } while (cursor !== "0");
    return n;
  } finally {
    redis.disconnect();
  }
}
