import { randomBytes } from "node:crypto";

let counter = Math.floor(Math.random() * 36 ** 4);

/**
 * A collision-resistant, roughly time-ordered id in the cuid shape: 'c' + time + counter + random,
 * lowercase base36, 25 characters. Time first keeps index inserts local.
 */
export function newId(): string {
  counter = (counter + 1) % 36 ** 4;
  const time = Date.now().toString(36).padStart(9, "0");
  const count = counter.toString(36).padStart(4, "0");
  const rand = BigInt("0x" + randomBytes(8).toString("hex")).toString(36).padStart(13, "0").slice(0, 11);
  return `c${time}${count}${rand}`;
}

export const isId = (s: string) => /^c[0-9a-z]{24}$/.test(s);
