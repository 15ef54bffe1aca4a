import { HodeiError } from './errors';

/** Allowed transitions as data: each state maps to the states it may move to. */
export type TransitionTable<S extends string> = Readonly<Record<S, readonly S[]>>;

/** True when `table` allows moving from `from` to `to`. */
export function canTransition<S extends string>(table: TransitionTable<S>, from: S, to: S): boolean {
  return table[from].includes(to);
}

/** Throws `ILLEGAL_TRANSITION` unless `from → to` is in the table. */
export function assertTransition<S extends string>(table: TransitionTable<S>, entity: string, from: S, to: S): void {
  if (!canTransition(table, from, to)) {
    throw new HodeiError('ILLEGAL_TRANSITION', `${entity} cannot go from ${from} to ${to}`);
  }
}
