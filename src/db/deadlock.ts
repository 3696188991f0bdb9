/** Postgres's code for a transaction it ended to break a deadlock. */
const DEADLOCK = "40P01";

const codeOf = (err: unknown): string | undefined => {
  const e = err as { code?: string; cause?: { code?: string } };
  return e?.code ?? e?.cause?.code;
};

/**
 * Runs a transaction again when Postgres ended it to break a deadlock: it was rolled back whole,
 * so running it again is safe. The status recorder locks a root job's row before its flow's
 * (through the flow-status trigger) while cancel, retry and delete lock the flow first; when the
 * two meet on one flow, one of them is ended, and a user's request should not be the one that
 * answers 500 for it.
 */
export async function retryOnDeadlock<T>(run: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (codeOf(err) !== DEADLOCK || attempt >= attempts) throw err;
    }
  }
}
