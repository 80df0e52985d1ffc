// Run-time shape checks for inputs whose static type a plain-JS caller may not honour.
// Array.isArray narrows to any[], throwing away the declared element type; isArray keeps it.

/** Array.isArray that narrows to the declared array type (or readonly unknown[]), never to any[]. */
export function isArray (value: unknown): value is readonly unknown[] {
  return Array.isArray(value)
}
