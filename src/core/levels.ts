/**
 * Log levels (syslog priorities) used by carpd; compared against net.inet.carp.log. Defined here
 * so the pure node can tag its log effects; everyone else takes them from ports/logger.
 */
export const LOG = { ERR: 1, STATE: 1, WARN: 2, BADPKT: 2, INFO: 5, DEBUG: 7 } as const;
