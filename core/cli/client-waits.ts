/**
 * How long `notify test` waits for the host's answer by default, and at most: the receiver's time
 * (`notifications.timeout`, which the host waits) and more, within the 300 s Node's fetch waits
 * for an answer's headers before it gives up (as "fetch failed", which would read as unreachable).
 */
export const TEST_WAIT_MS = 290_000;
