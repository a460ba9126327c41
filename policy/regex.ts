// Route regular expressions run on every request, so they are checked once, at load: they
// must compile (JavaScript syntax, anchored by us to the whole value, as Gateway API's RE2
// matches are full matches) and must not nest quantifiers in a way that backtracks
// exponentially. safe-regex2 (fastify's) checks star height; it is a heuristic, so the length
// is capped too.
import safeRegex from 'safe-regex2'

export const MAX_REGEX_LENGTH = 1024

export function checkRegex(source: string): { ok: true; regex: RegExp } | { ok: false; message: string } {
  if (source.length > MAX_REGEX_LENGTH) return { ok: false, message: `regular expression is ${source.length} characters long; the limit is ${MAX_REGEX_LENGTH}` }
  let regex: RegExp
  try {
    // The user's expression first, so a syntax error quotes what they wrote.
    void new RegExp(source)
    regex = new RegExp(`^(?:${source})$`)
  } catch (err) {
    return { ok: false, message: `regular expression does not compile: ${(err as Error).message.replace(/^Invalid regular expression: /, '')}` }
  }
  if (!safeRegex(source, { limit: 25 })) {
    return { ok: false, message: `regular expression ${JSON.stringify(source)} can backtrack catastrophically (nested quantifiers such as "(a+)+"); rewrite it without a repeated group that itself repeats` }
  }
  return { ok: true, regex }
}
