/**
 * nltk's `word_tokenize` (nltk 3.8, `nltk/tokenize/__init__.py` and `destructive.py`), which ROME's and
 * EasyEdit's n-gram entropy use: the text is split into sentences by Punkt ({@link punktSentences}), and
 * each sentence by the improved Treebank rules (`NLTKWordTokenizer.tokenize`): starting quotes become
 * "``", punctuation and brackets are split off, a sentence's final period is split off (a period inside
 * a sentence stays on its word: "Mr." or "3.5"), closing quotes become "''", clitics are split ("It's" ->
 * "It" "'s", "don't" -> "do" "n't") and a few contractions ("cannot" -> "can" "not").
 *
 * The rules are Python regular expressions; they are rewritten here with Python's Unicode semantics:
 * `\w` = letters, numbers, underscore; `\d` = decimal digits; `\b` is a boundary of that `\w`; `$` also
 * matches before a final newline; whitespace is `str.isspace`.
 */
import { emptyPunktParams, type PunktParams, punktSentences, PY_SPACE, PY_WORD } from "./punkt.ts";

const W = `[${PY_WORD}]`;
/** Python's `\b` for the Unicode `\w`. */
const B = `(?:(?<=${W})(?!${W})|(?<!${W})(?=${W}))`;
const S = `[${PY_SPACE}]`;
/** Python's `$` without MULTILINE: the end, or just before a final newline. */
const END = "(?=\\n?$)";

type Rule = [RegExp, string];
const r = (src: string, flags = "") => new RegExp(src, "gu" + flags);

const STARTING_QUOTES: Rule[] = [
  [r("([«“‘„]|[`]+)"), " $1 "],
  [r('^"'), "``"],
  [r("(``)"), " $1 "],
  [r(`([ (\\[{<])("|'{2})`), "$1 `` "],
  [r(`(')(?!re|ve|ll|m|t|s|d|n)(${W})${B}`, "i"), "$1 $2"],
];

const PUNCTUATION: Rule[] = [
  [r(`([^.])(\\.)([\\])}>"'»”’ ]*)${S}*${END}`), "$1 $2 $3 "],
  [r("([:,])([^\\p{Nd}])"), " $1 $2"],
  [r(`([:,])${END}`), " $1 "],
  [r("\\.{2,}"), " $& "],
  [r("[;@#$%&]"), " $& "],
  [r(`([^.])(\\.)([\\])}>"']*)${S}*${END}`), "$1 $2$3 "],
  [r("[?!]"), " $& "],
  [r("([^'])' "), "$1 ' "],
  [r("[*]"), " $& "],
];

const PARENS_BRACKETS: Rule = [r("[\\][(){}<>]"), " $& "];
const DOUBLE_DASHES: Rule = [r("--"), " -- "];

const ENDING_QUOTES: Rule[] = [
  [r("([»”’])"), " $1 "],
  [r("''"), " '' "],
  [r('"'), " '' "],
  [r("([^' ])('[sS]|'[mM]|'[dD]|') "), "$1 $2 "],
  [r("([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), "$1 $2 "],
];

const CONTRACTIONS: Rule[] = [
  `${B}(can)(not)${B}`,
  `${B}(d)('ye)${B}`,
  `${B}(gim)(me)${B}`,
  `${B}(gon)(na)${B}`,
  `${B}(got)(ta)${B}`,
  `${B}(lem)(me)${B}`,
  `${B}(more)('n)${B}`,
  `${B}(wan)(na)(?=${S})`,
  ` ('t)(is)${B}`,
  ` ('t)(was)${B}`,
].map((src) => [r(src, "i"), " $1 $2 "]);

const apply = (text: string, rules: Rule[]) => rules.reduce((t, [re, sub]) => t.replace(re, sub), text);

/** One sentence by the improved Treebank rules (nltk `NLTKWordTokenizer().tokenize`). */
export function treebankTokenize(sentence: string): string[] {
  let t = apply(sentence, STARTING_QUOTES);
  t = apply(t, PUNCTUATION);
  t = apply(t, [PARENS_BRACKETS, DOUBLE_DASHES]);
  t = " " + t + " ";
  t = apply(t, ENDING_QUOTES);
  t = apply(t, CONTRACTIONS);
  return t.split(new RegExp(`${S}+`, "u")).filter((x) => x !== "");
}

/**
 * nltk's `word_tokenize(text)`: Punkt sentences, then Treebank tokens of each. `punkt` defaults to empty
 * parameters (nltk's untrained Punkt; nltk itself loads English parameters: see {@link punktSentences}).
 */
export function wordTokenize(text: string, punkt: PunktParams = emptyPunktParams()): string[] {
  return punktSentences(text, punkt).flatMap(treebankTokenize);
}
