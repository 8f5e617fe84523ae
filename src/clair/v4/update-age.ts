// How old Clair's vulnerability data is, from its update operations (`GET /matcher/api/v1/internal/update_operation`).
// Each operation is dated when Clair stored it: when an updater run finished, or when `clairctl import-updaters`
// loaded an exported file (claircore records the import time, not the export's), so the age is that of the
// newest load into this Clair.
import type * as V4 from './wire.js';

/** The newest operation's date across every updater; undefined when there is none (or none is dated). */
export function newestUpdate(operations: V4.UpdateOperations): Date | undefined {
  let newest: number | undefined;
  for (const list of Object.values(operations)) {
    for (const op of list) {
      const t = Date.parse(op.date);
      if (!Number.isNaN(t) && (newest === undefined || t > newest)) newest = t;
    }
  }
  return newest === undefined ? undefined : new Date(newest);
}

/** Milliseconds since the newest update (never negative: a clock slightly ahead of ours means "just now"). */
export function updateAgeMs(operations: V4.UpdateOperations, now: Date): number | undefined {
  const newest = newestUpdate(operations);
  return newest === undefined ? undefined : Math.max(0, now.getTime() - newest.getTime());
}

/**
 * The warning for data older than `maxAgeMs` (0 = no limit); undefined when it is fresh enough, or when there is no
 * dated update at all (an empty database is a verdict of its own, not a warning).
 */
export function staleDataWarning(operations: V4.UpdateOperations, maxAgeMs: number, now: Date): string | undefined {
  if (maxAgeMs <= 0) return undefined;
  const newest = newestUpdate(operations);
  if (newest === undefined) return undefined;
  const age = Math.max(0, now.getTime() - newest.getTime());
  if (age <= maxAgeMs) return undefined;
  return `Clair's vulnerability data is ${formatAge(age)} old (last update ${newest.toISOString()}), older than --max-db-age ${formatAge(maxAgeMs)}: ` +
    'advisories published since then are missing; update its data (air-gapped: import a fresh "clairctl export-updaters" file)';
}

/** A duration for people: "45 s", "12 min", "5 h 3 min", "2 days 23 h". */
export function formatAge(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 1) return `${Math.max(0, Math.round(ms))} ms`;
  if (s < 120) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 120) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 48) return min % 60 ? `${h} h ${min % 60} min` : `${h} h`;
  return h % 24 ? `${Math.floor(h / 24)} days ${h % 24} h` : `${h / 24} days`;
}
