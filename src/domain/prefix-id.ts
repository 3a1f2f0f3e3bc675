/**
 * The one rule for prefix ids. Ids become folder names, Redis keys and URL
 * segments: a safe character set, and never "." or ".." (a folder walk-up).
 * The JSON Schema pattern, the check in code and the words shown to users are
 * all made here.
 */

/** The longest prefix id; the HTTP router's parameter limit derives from it. */
export const PREFIX_ID_MAX_CHARS = 128

export const PREFIX_ID_PATTERN = `^(?!\\.{1,2}$)[A-Za-z0-9._-]{1,${PREFIX_ID_MAX_CHARS}}$`

/** The rule in words, for error messages and API docs. */
export const PREFIX_ID_RULE = '1-128 of A-Z a-z 0-9 . _ - (not "." or "..")'

const PREFIX_ID = new RegExp(PREFIX_ID_PATTERN)

export function isValidPrefixId(id: unknown): id is string {
  return typeof id === 'string' && PREFIX_ID.test(id)
}
