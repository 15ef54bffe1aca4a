import type { AuditEvent } from '../ports/store';

/**
 * The audit events passed with a change, as a list: none for `undefined`, the one event in a list of its own,
 * or the list itself (not copied). `Store.updateJob` takes one event or several; a store implementation
 * normalises its argument with this before recording them in order.
 *
 * @example toAuditEventList(audit).forEach((event) => record(event));
 */
export function toAuditEventList(audit: AuditEvent | readonly AuditEvent[] | undefined): readonly AuditEvent[] {
  if (audit === undefined) return [];
  return Array.isArray(audit) ? (audit as readonly AuditEvent[]) : [audit as AuditEvent];
}
