/** The operating systems carpd knows, as plugins and templates name them. */

export const OS_NAMES = ['linux', 'freebsd', 'openbsd'] as const;
export type OsName = (typeof OS_NAMES)[number];

/** The OS this process runs on, or undefined on one carpd does not support. */
export function detectOs(platform: string = process.platform): OsName | undefined {
  return (OS_NAMES as readonly string[]).includes(platform) ? (platform as OsName) : undefined;
}

export function isOsName(s: unknown): s is OsName {
  return typeof s === 'string' && (OS_NAMES as readonly string[]).includes(s);
}
