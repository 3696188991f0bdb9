// ioredis's own slot function (a dependency of ioredis, pinned to the same version); it ships no types.
declare module "cluster-key-slot" {
  /** The Redis Cluster hash slot of a key: CRC16 of its hash tag (or of the whole key), mod 16384. */
  export default function calculateSlot(key: string | Uint8Array): number;
}
