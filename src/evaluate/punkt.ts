/**
 * Punkt sentence splitting (Kiss & Strunk 2006) as nltk's `PunktSentenceTokenizer.tokenize` does it
 * (nltk 3.8, `nltk/tokenize/punkt.py`): candidate breaks at ".", "?", "!", a first pass that marks
 * sentence breaks, abbreviations and ellipses by word type, a second pass with the collocation,
 * orthographic and initial / ordinal heuristics, and the realignment of closing quotes and brackets.
 *
 * nltk's `sent_tokenize` runs this with parameters learned from an English corpus (an abbreviation list,
 * collocations, frequent sentence starters, orthographic contexts). engram ships none of them: the default
 * {@link PunktParams} are empty, which is nltk's untrained `PunktSentenceTokenizer()`. A caller who has the
 * English tables can pass them.
 */

/** Learned Punkt parameters (nltk's `PunktParameters`); every table empty by default. */
export interface PunktParams {
  /** Abbreviation types, lower case, without the final period ("dr", "u.s"). */
  abbrevTypes: Set<string>;
  /** Collocations as "type1 type2" (types without the sentence period). */
  collocations: Set<string>;
  /** Frequent sentence starters (lower-case types). */
  sentStarters: Set<string>;
  /** Orthographic context flags per type (the ORTHO_* bits below). */
  orthoContext: Map<string, number>;
}

/** Empty parameters: nltk's untrained Punkt. */
export function emptyPunktParams(): PunktParams {
  return {
    abbrevTypes: new Set(),
    collocations: new Set(),
    sentStarters: new Set(),
    orthoContext: new Map(),
  };
}

const ORTHO_BEG_UC = 1 << 1, ORTHO_MID_UC = 1 << 2, ORTHO_UNK_UC = 1 << 3;
const ORTHO_BEG_LC = 1 << 4, ORTHO_MID_LC = 1 << 5, ORTHO_UNK_LC = 1 << 6;
const ORTHO_UC = ORTHO_BEG_UC | ORTHO_MID_UC | ORTHO_UNK_UC;
const ORTHO_LC = ORTHO_BEG_LC | ORTHO_MID_LC | ORTHO_UNK_LC;
export { ORTHO_BEG_LC, ORTHO_BEG_UC, ORTHO_MID_LC, ORTHO_MID_UC, ORTHO_UNK_LC, ORTHO_UNK_UC };

/** Python's `str.isspace` characters (JavaScript's `\s` differs: it adds U+FEFF and lacks U+001C–U+001F, U+0085). */
export const PY_SPACE =
  "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
/** Python's Unicode `\w`: letters, numbers, underscore. */
export const PY_WORD = "\\p{L}\\p{N}_";
const S = `[${PY_SPACE}]`, NS = `[^${PY_SPACE}]`;

const NON_WORD = `(?:[)";}\\]*:@'({\\[!?])`;
const MULTI_CHAR = `(?:-{2,}|\\.{2,}|(?:\\.${S}){2,}\\.)`;
const WORD_START = '[^("`{\\[:;&#*@)}\\]\\-,]';
const WORD_RE = new RegExp(
  `${MULTI_CHAR}|(?=${WORD_START})${NS}+?(?=${S}|$|${NON_WORD}|${MULTI_CHAR}|,(?=$|${S}|${NON_WORD}|${MULTI_CHAR}))|${NS}`,
  "gu",
);
const PERIOD_CONTEXT_RE = new RegExp(`[.?!](?=(?<after_tok>${NON_WORD}|${S}+(?<next_tok>${NS}+)))`, "gud");
const REALIGN_RE = new RegExp(`^["')\\]}]+?(?:${S}+|(?=--)|$)`, "mu");
const NUMERIC_RE = new RegExp(`^-?[.,]?\\p{Nd}[\\p{Nd},.\\-]*\\.?$`, "u");
const INITIAL_RE = /^[\p{L}\p{Nl}\p{No}_]\.$/u;
const ELLIPSIS_RE = /^\.\.+$/;
/** string.whitespace in Python: ASCII only (used by `_get_last_whitespace_index`). */
const ASCII_WS = " \t\n\r\v\f";
const PUNCTUATION = new Set([";", ":", ",", ".", "!", "?"]);

interface Tok {
  tok: string;
  type: string;
  periodFinal: boolean;
  sentbreak: boolean;
  abbr: boolean;
  ellipsis: boolean;
}

function makeTok(tok: string): Tok {
  const lower = tok.toLowerCase();
  const type = NUMERIC_RE.test(lower) ? "##number##" : lower;
  return { tok, type, periodFinal: tok.endsWith("."), sentbreak: false, abbr: false, ellipsis: false };
}
const typeNoPeriod = (t: Tok) => (t.type.length > 1 && t.type.endsWith(".") ? t.type.slice(0, -1) : t.type);
const typeNoSentperiod = (t: Tok) => (t.sentbreak ? typeNoPeriod(t) : t.type);
const firstUpper = (t: Tok) => /^\p{Lu}/u.test(t.tok);
const firstLower = (t: Tok) => /^\p{Ll}/u.test(t.tok);

/** Punkt's word segmentation (periods stay attached), line by line as `_tokenize_words`. */
export function punktWords(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    if (line.replace(new RegExp(`${S}+`, "gu"), "") === "") continue;
    for (const m of line.matchAll(WORD_RE)) out.push(m[0]);
  }
  return out;
}

function annotate(words: string[], p: PunktParams): Tok[] {
  const toks = words.map(makeTok);
  for (const t of toks) {
    if (t.tok === "." || t.tok === "?" || t.tok === "!") t.sentbreak = true;
    else if (ELLIPSIS_RE.test(t.tok)) t.ellipsis = true;
    else if (t.periodFinal && !t.tok.endsWith("..")) {
      const base = t.tok.slice(0, -1).toLowerCase();
      if (p.abbrevTypes.has(base) || p.abbrevTypes.has(base.split("-").pop()!)) t.abbr = true;
      else t.sentbreak = true;
    }
  }
  const ortho = (t: Tok): boolean | "unknown" => {
    if (PUNCTUATION.has(t.tok)) return false;
    const ctx = p.orthoContext.get(typeNoSentperiod(t)) ?? 0;
    if (firstUpper(t) && (ctx & ORTHO_LC) && !(ctx & ORTHO_MID_UC)) return true;
    if (firstLower(t) && ((ctx & ORTHO_UC) || !(ctx & ORTHO_BEG_LC))) return false;
    return "unknown";
  };
  // Second pass, left to right: token i is revised against token i+1 as the first pass left it (nltk pipes
  // the first pass's generator through the second, so the next token is not revised yet).
  for (let i = 0; i + 1 < toks.length; i++) {
    const a = toks[i], b = toks[i + 1];
    if (!a.periodFinal) continue;
    const typ = typeNoPeriod(a), nextTyp = typeNoSentperiod(b);
    const initial = INITIAL_RE.test(a.tok);
    if (p.collocations.has(`${typ} ${nextTyp}`)) {
      a.sentbreak = false;
      a.abbr = true;
      continue;
    }
    if ((a.abbr || a.ellipsis) && !initial) {
      const s = ortho(b);
      if (s === true) {
        a.sentbreak = true;
        continue;
      }
      if (firstUpper(b) && p.sentStarters.has(nextTyp)) {
        a.sentbreak = true;
        continue;
      }
    }
    if (initial || typ === "##number##") {
      const s = ortho(b);
      if (s === false) {
        a.sentbreak = false;
        a.abbr = true;
        continue;
      }
      if (s === "unknown" && initial && firstUpper(b) && !((p.orthoContext.get(nextTyp) ?? 0) & ORTHO_LC)) {
        a.sentbreak = false;
        a.abbr = true;
      }
    }
  }
  return toks;
}

function containsSentbreak(context: string, p: PunktParams): boolean {
  let found = false;
  for (const t of annotate(punktWords(context), p)) {
    if (found) return true;
    if (t.sentbreak) found = true;
  }
  return false;
}

function lastAsciiSpace(s: string): number {
  for (let i = s.length - 1; i >= 0; i--) if (ASCII_WS.includes(s[i])) return i;
  return 0;
}

interface EndMatch {
  start: number;
  end: number;
  afterTok: string;
  nextTokStart: number | undefined;
}

/** `_match_potential_end_contexts`: each candidate break with the text that decides it. */
function endContexts(text: string): { m: EndMatch; context: string }[] {
  const out: { m: EndMatch; context: string }[] = [];
  let prev: [number, number] = [0, 0];
  let prevMatch: EndMatch | undefined;
  for (const r of text.matchAll(PERIOD_CONTEXT_RE)) {
    const g = r.indices!.groups!;
    const m: EndMatch = {
      start: r.index!,
      end: r.index! + r[0].length,
      afterTok: r.groups!.after_tok,
      nextTokStart: g.next_tok ? g.next_tok[0] : undefined,
    };
    const before = text.slice(prev[1], m.start);
    let after = lastAsciiSpace(before);
    after = after ? after + prev[1] + 1 : prev[0];
    const wordSlice: [number, number] = [after, m.start];
    if (prevMatch && prev[1] <= wordSlice[0]) {
      out.push({
        m: prevMatch,
        context: text.slice(prev[0], prev[1]) + text[prevMatch.start] + prevMatch.afterTok,
      });
    }
    prevMatch = m;
    prev = wordSlice;
  }
  if (prevMatch) {
    out.push({
      m: prevMatch,
      context: text.slice(prev[0], prev[1]) + text[prevMatch.start] + prevMatch.afterTok,
    });
  }
  return out;
}

/** The sentences of `text` (nltk `PunktSentenceTokenizer(params).tokenize(text)`, boundaries realigned). */
export function punktSentences(text: string, params: PunktParams = emptyPunktParams()): string[] {
  const slices: [number, number][] = [];
  let last = 0;
  for (const { m, context } of endContexts(text)) {
    if (containsSentbreak(context, params)) {
      slices.push([last, m.end]);
      last = m.nextTokStart !== undefined ? m.nextTokStart : m.end;
    }
  }
  slices.push([last, text.replace(new RegExp(`${S}+$`, "u"), "").length]);
  // _realign_boundaries
  const out: string[] = [];
  let realign = 0;
  for (let i = 0; i < slices.length; i++) {
    const s1: [number, number] = [slices[i][0] + realign, slices[i][1]];
    const s2 = slices[i + 1];
    if (!s2) {
      if (text.slice(s1[0], s1[1])) out.push(text.slice(s1[0], s1[1]));
      continue;
    }
    const m = text.slice(s2[0], s2[1]).match(REALIGN_RE);
    if (m) {
      out.push(text.slice(s1[0], s2[0] + m[0].replace(new RegExp(`${S}+$`, "u"), "").length));
      realign = m[0].length;
    } else {
      realign = 0;
      if (text.slice(s1[0], s1[1])) out.push(text.slice(s1[0], s1[1]));
    }
  }
  return out;
}
