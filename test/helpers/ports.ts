/**
 * A port for a test's own listener (an API, a Redis), below Linux's ephemeral range (32768–60999):
 * outgoing connections take their local ports there, and a listener picked inside it at random
 * now and then found its port taken (EADDRINUSE).
 */
export const testPort = (span = 12_000) => 20_000 + Math.floor(Math.random() * span);
