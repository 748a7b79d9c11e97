/**
 * Just enough PromQL reading for the dashboard and alert checks: the vector
 * selectors of an expression (metric name with its label matchers), leaving
 * out functions, aggregations, label lists (`by (…)`), ranges and offsets.
 * Prometheus itself parses the whole expression; this only says which
 * metrics an expression reads.
 */
export interface VectorSelector {
  metric: string;
  /** The selector as written, e.g. `payments_completed_total{status="SUCCESS"}`. */
  selector: string;
}

const LABEL_LIST_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
/** Aggregations may put `by (…)` between their name and their argument. */
const AGGREGATIONS = ['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile'];
const KEYWORDS = new Set([...LABEL_LIST_KEYWORDS, ...AGGREGATIONS, 'and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

export function vectorSelectors(expr: string): VectorSelector[] {
  const found: VectorSelector[] = [];
  let i = 0;
  const skipSpace = () => {
    while (i < expr.length && /\s/.test(expr[i] ?? '')) i += 1;
  };
  /** Index just past the bracket that closes the one at `start`, quotes respected. */
  const closing = (start: number, open: string, close: string): number => {
    let depth = 0;
    for (let j = start; j < expr.length; j += 1) {
      const char = expr[j];
      if (char === '"' || char === "'") {
        j = expr.indexOf(char, j + 1);
        if (j < 0) break;
      } else if (char === open) depth += 1;
      else if (char === close && --depth === 0) return j + 1;
    }
    throw new Error(`unbalanced ${open} in ${expr}`);
  };
  while (i < expr.length) {
    const char = expr[i] ?? '';
    if (char === '"' || char === "'") {
      i = expr.indexOf(char, i + 1) + 1;
      if (i === 0) break;
    } else if (char === '[') {
      i = closing(i, '[', ']');
    } else if (char === '{') {
      // A selector with no metric name: `{__name__=~"…"}`; none is used here.
      found.push({ metric: '', selector: expr.slice(i, closing(i, '{', '}')) });
      i = closing(i, '{', '}');
    } else if (/[0-9.]/.test(char)) {
      while (i < expr.length && /[0-9a-zA-Z.]/.test(expr[i] ?? '')) i += 1;
    } else if (/[a-zA-Z_:]/.test(char)) {
      const start = i;
      while (i < expr.length && /[a-zA-Z0-9_:]/.test(expr[i] ?? '')) i += 1;
      const word = expr.slice(start, i);
      skipSpace();
      if (LABEL_LIST_KEYWORDS.has(word)) {
        if (expr[i] === '(') i = closing(i, '(', ')');
      } else if (KEYWORDS.has(word.toLowerCase()) || expr[i] === '(') {
        // A keyword, or a function or aggregation (its arguments are read next).
      } else {
        const end = expr[i] === '{' ? closing(i, '{', '}') : i;
        found.push({ metric: word, selector: expr[i] === '{' ? `${word}${expr.slice(i, end)}` : word });
        i = end;
      }
    } else {
      i += 1;
    }
  }
  return found;
}
