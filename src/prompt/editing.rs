//! A1111 prompt editing: `[from:to:when]` swaps text at a step, `[to:when]` adds it, `[from::when]`
//! removes it, and `[a|b|c]` alternates every step. The result is a schedule of plain prompts (with
//! emphasis syntax left in place for [`super::attention`]) and the step each one lasts until.
//!
//! Semantics of A1111 v1.10 `prompt_parser.get_learned_conditioning_prompt_schedules`:
//! - `when` with a decimal point is a fraction of the steps, otherwise a step number; it is
//!   truncated to an integer and capped at the step count.
//! - A prompt that does not parse (a stray `|`, a `[` or `(` that never closes inside brackets)
//!   is used as it is for every step — A1111 does the same, silently; [`parse`] also says where
//!   it failed so the UI can show it.
//! - Outside brackets, stray `[ ] ( ) :` are plain text.

/// One piece of a parsed prompt.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    /// Emphasis brackets with their contents (kept as written).
    Group(Vec<Node>),
    Scheduled {
        before: Vec<Node>,
        after: Vec<Node>,
        /// The number as written.
        when: String,
    },
    Alternate(Vec<Vec<Node>>),
}

/// Where a prompt stopped making sense as prompt-editing syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Character offset of the problem.
    pub at: usize,
    /// What is wrong.
    pub what: &'static str,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at character {}", self.what, self.at + 1)
    }
}

struct Parser {
    c: Vec<char>,
    i: usize,
    error: Option<SyntaxError>,
    /// Brackets open around the current position.
    depth: usize,
    /// Set when nesting passed [`MAX_NESTING`]: parsing stops and the prompt is taken literally.
    too_deep: bool,
}

/// The deepest bracket nesting parsed for prompt editing. Deeper prompts are used literally, as A1111
/// does when its parser gives up (it hits Python's recursion limit a little past this); the bound
/// keeps the parser's recursion, and so its stack, small whatever the input.
pub const MAX_NESTING: usize = 100;

fn is_plain(c: char) -> bool {
    !matches!(c, '\\' | '[' | ']' | '(' | ')' | ':' | '|')
}

/// A1111's `SIGNED_NUMBER`: optional sign, digits with an optional fraction (or a fraction alone),
/// optional exponent.
fn is_number(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((a, b)) => {
            (digits(a) || a.is_empty()) && (digits(b) || b.is_empty()) && !(a.is_empty() && b.is_empty())
        }
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.c.get(self.i).copied()
    }

    fn fail<T>(&mut self, at: usize, what: &'static str) -> Option<T> {
        // The earliest problem is the one to show (a later one is usually its consequence).
        if self.error.as_ref().is_none_or(|e| at < e.at) {
            self.error = Some(SyntaxError { at, what });
        }
        None
    }

    /// `prompt: (emphasized | scheduled | alternate | plain | WHITESPACE)*`, stopping at a
    /// character that closes or separates the enclosing construct.
    fn prompt(&mut self) -> Option<Vec<Node>> {
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(']' | ')' | ':' | '|') => return Some(out),
                Some('(') => out.extend(self.paren()?),
                Some('[') => out.push(self.bracket()?),
                Some(_) => out.push(Node::Text(self.plain()?)),
            }
        }
    }

    /// `plain: /([^\\\[\]():|]|\\.)+/` (escapes kept as written, for the emphasis parser).
    fn plain(&mut self) -> Option<String> {
        let start = self.i;
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if c == '\\' {
                let Some(next) = self.c.get(self.i + 1).copied() else {
                    return self.fail(self.i, "a backslash at the end escapes nothing");
                };
                s.push(c);
                s.push(next);
                self.i += 2;
            } else if is_plain(c) {
                s.push(c);
                self.i += 1;
            } else {
                break;
            }
        }
        if self.i == start {
            return self.fail(start, "expected text");
        }
        Some(s)
    }

    /// Enters a bracket at `open`; `None` (and parsing stops) past [`MAX_NESTING`].
    fn enter(&mut self, open: usize) -> Option<()> {
        if self.depth >= MAX_NESTING {
            self.too_deep = true;
            return self.fail(open, "brackets nested more than 100 levels deep");
        }
        self.depth += 1;
        Some(())
    }

    /// `"(" prompt ")" | "(" prompt ":" prompt ")"`, kept as text around its parts.
    fn paren(&mut self) -> Option<Vec<Node>> {
        self.enter(self.i)?;
        let out = self.paren_inner();
        self.depth -= 1;
        out
    }

    fn paren_inner(&mut self) -> Option<Vec<Node>> {
        let open = self.i;
        self.i += 1;
        let mut out = vec![Node::Text("(".into())];
        out.extend(self.prompt()?);
        if self.peek() == Some(':') {
            self.i += 1;
            out.push(Node::Text(":".into()));
            out.extend(self.prompt()?);
        }
        if self.peek() != Some(')') {
            return self.fail(open, "this ( is not closed");
        }
        self.i += 1;
        out.push(Node::Text(")".into()));
        Some(out)
    }

    /// `[…]`: emphasis `[a]`, schedule `[a:b:n]` / `[b:n]`, or alternation `[a|b]`.
    fn bracket(&mut self) -> Option<Node> {
        self.enter(self.i)?;
        let out = self.bracket_inner();
        self.depth -= 1;
        out
    }

    fn bracket_inner(&mut self) -> Option<Node> {
        let open = self.i;
        self.i += 1;
        let first = self.prompt()?;
        match self.peek() {
            Some(']') => {
                self.i += 1;
                let mut v = vec![Node::Text("[".into())];
                v.extend(first);
                v.push(Node::Text("]".into()));
                Some(Node::Group(v))
            }
            Some('|') => {
                let mut options = vec![first];
                while self.peek() == Some('|') {
                    self.i += 1;
                    options.push(self.prompt()?);
                }
                if self.peek() != Some(']') {
                    return self.fail(open, "this [ is not closed");
                }
                self.i += 1;
                Some(Node::Alternate(options))
            }
            Some(':') => {
                self.i += 1;
                let second = self.prompt()?;
                match self.peek() {
                    Some(':') => {
                        self.i += 1;
                        let at = self.i;
                        let third = self.prompt()?;
                        let when = number_of(&third);
                        if self.peek() != Some(']') {
                            return self.fail(open, "this [ is not closed");
                        }
                        let Some(when) = when else {
                            return self.fail(at, "expected a step number or fraction");
                        };
                        self.i += 1;
                        Some(Node::Scheduled {
                            before: first,
                            after: second,
                            when,
                        })
                    }
                    Some(']') => {
                        let Some(when) = number_of(&second) else {
                            return self.fail(open, "expected [from:to:when], [to:when] or [a|b]");
                        };
                        self.i += 1;
                        Some(Node::Scheduled {
                            before: Vec::new(),
                            after: first,
                            when,
                        })
                    }
                    _ => self.fail(open, "this [ is not closed"),
                }
            }
            _ => self.fail(open, "this [ is not closed"),
        }
    }

    /// `start: (prompt | /[][():]/+)*`: at the top level a bracket that does not parse is text.
    fn start(&mut self) -> Option<Vec<Node>> {
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            let here = self.i;
            let parsed = match c {
                '(' => self.paren(),
                '[' => self.bracket().map(|n| vec![n]),
                ']' | ')' | ':' => None,
                '|' => return self.fail(here, "| outside [a|b]"),
                _ => Some(vec![Node::Text(self.plain()?)]),
            };
            if let Some(nodes) = parsed {
                out.extend(nodes);
            } else if self.too_deep {
                return None;
            } else {
                // A stray bracket or colon (A1111's `/[][():]/+`): keep it as text.
                self.i = here + 1;
                out.push(Node::Text(c.to_string()));
            }
        }
        Some(out)
    }
}

/// The `NUMBER` of a schedule when `nodes` is just whitespace around one.
fn number_of(nodes: &[Node]) -> Option<String> {
    match nodes {
        [Node::Text(t)] if is_number(t.trim()) => Some(t.trim().to_owned()),
        _ => None,
    }
}

fn parse_nodes(prompt: &str) -> Result<Vec<Node>, SyntaxError> {
    let mut p = Parser {
        c: prompt.chars().collect(),
        i: 0,
        error: None,
        depth: 0,
        too_deep: false,
    };
    match p.start() {
        Some(nodes) if !p.too_deep && (p.error.is_none() || p.i >= p.c.len()) => Ok(nodes),
        _ => Err(p.error.unwrap_or(SyntaxError {
            at: p.i,
            what: "unexpected character",
        })),
    }
}

/// Checks a prompt's editing syntax: `Ok` or where it goes wrong (the prompt is still usable; it
/// is then taken literally, as A1111 does).
///
/// # Errors
/// The first position that does not parse.
pub fn parse(prompt: &str) -> Result<(), SyntaxError> {
    parse_nodes(prompt).map(|_| ())
}

/// Resolves a `when` against the step count (A1111: decimal → fraction of the steps, else a step).
fn when_step(when: &str, steps: usize) -> i64 {
    let v: f64 = when.parse().unwrap_or(0.0);
    let v = if when.contains('.') { v * steps as f64 } else { v };
    (v as i64).min(steps as i64)
}

fn collect(nodes: &[Node], steps: usize, out: &mut Vec<usize>) {
    for n in nodes {
        match n {
            Node::Text(_) => {}
            Node::Group(inner) => collect(inner, steps, out),
            Node::Scheduled { before, after, when } => {
                let w = when_step(when, steps);
                if w >= 1 {
                    out.push(w as usize);
                }
                collect(before, steps, out);
                collect(after, steps, out);
            }
            Node::Alternate(options) => {
                if options.len() > 1 {
                    out.extend(1..=steps);
                }
                for o in options {
                    collect(o, steps, out);
                }
            }
        }
    }
}

fn render(nodes: &[Node], step: usize, steps: usize, out: &mut String) {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Group(inner) => render(inner, step, steps, out),
            Node::Scheduled { before, after, when } => {
                let w = when_step(when, steps);
                render(if step as i64 <= w { before } else { after }, step, steps, out);
            }
            Node::Alternate(options) => {
                if let Some(o) = options.get((step.max(1) - 1) % options.len().max(1)) {
                    render(o, step, steps, out);
                }
            }
        }
    }
}

/// The prompt's schedule for `steps` sampler steps: `(last step, prompt)` pairs in order; the
/// prompt of a model call `k` (0-based) is the first whose last step is ≥ `k`.
pub fn schedule(prompt: &str, steps: usize) -> Vec<(usize, String)> {
    let Ok(nodes) = parse_nodes(prompt) else {
        return vec![(steps, prompt.to_owned())];
    };
    let mut ends = vec![steps];
    collect(&nodes, steps, &mut ends);
    ends.sort_unstable();
    ends.dedup();
    ends.into_iter()
        .map(|t| {
            let mut s = String::new();
            render(&nodes, t, steps, &mut s);
            (t, s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(p: &str, steps: usize) -> Vec<(usize, String)> {
        schedule(p, steps)
    }

    fn pairs(v: &[(usize, &str)]) -> Vec<(usize, String)> {
        v.iter().map(|(a, b)| (*a, (*b).to_owned())).collect()
    }

    #[test]
    fn plain_and_emphasis_pass_through() {
        assert_eq!(
            sched("a cat, (fluffy:1.2), [sad]", 20),
            pairs(&[(20, "a cat, (fluffy:1.2), [sad]")])
        );
        assert_eq!(sched("", 10), pairs(&[(10, "")]));
    }

    #[test]
    fn from_to_when() {
        // A1111's own examples: "a [fantasy:cyberpunk:16] landscape" at 30 steps.
        assert_eq!(
            sched("a [fantasy:cyberpunk:16] landscape", 30),
            pairs(&[(16, "a fantasy landscape"), (30, "a cyberpunk landscape")])
        );
        // A fraction of the steps (decimal point), truncated: 0.25·10 = 2.
        assert_eq!(sched("[a:b:0.25]", 10), pairs(&[(2, "a"), (10, "b")]));
        // "1.0" has a decimal point: the whole run, so `b` never shows.
        assert_eq!(sched("[a:b:1.0]", 10), pairs(&[(10, "a")]));
        // Adding and removing.
        assert_eq!(sched("x [y:3]", 8), pairs(&[(3, "x "), (8, "x y")]));
        assert_eq!(sched("x [y::3]", 8), pairs(&[(3, "x y"), (8, "x ")]));
        // Beyond the step count: capped, so the switch never happens; 0 → from the start.
        assert_eq!(sched("[a:b:50]", 20), pairs(&[(20, "a")]));
        assert_eq!(sched("[a:b:0]", 20), pairs(&[(20, "b")]));
        // Whitespace around the number and nested emphasis.
        assert_eq!(
            sched("[(red:1.3): blue : 5 ]", 10),
            pairs(&[(5, "(red:1.3)"), (10, " blue ")])
        );
    }

    #[test]
    fn nested_schedules() {
        assert_eq!(
            sched("a [b [c:d:2]:e:4] f", 6),
            pairs(&[(2, "a b c f"), (4, "a b d f"), (6, "a e f")])
        );
    }

    #[test]
    fn alternation_every_step() {
        assert_eq!(
            sched("[cow|horse] in a field", 4),
            pairs(&[
                (1, "cow in a field"),
                (2, "horse in a field"),
                (3, "cow in a field"),
                (4, "horse in a field")
            ])
        );
        assert_eq!(sched("[a|b|]", 3), pairs(&[(1, "a"), (2, "b"), (3, "")]));
    }

    #[test]
    fn broken_syntax_is_literal_and_located() {
        assert_eq!(sched("a | b", 5), pairs(&[(5, "a | b")]));
        assert_eq!(parse("a | b").unwrap_err().at, 2);
        // Stray brackets at the top level are text, and the rest still schedules.
        assert_eq!(
            sched("a ] b [c:d:1]", 3),
            pairs(&[(1, "a ] b c"), (3, "a ] b d")])
        );
        assert_eq!(sched("(a:b:c)", 3), pairs(&[(3, "(a:b:c)")]));
        assert!(parse("[a:b:c:d]").is_ok(), "literal at the top level");
        assert_eq!(sched("[a:b]", 3), pairs(&[(3, "[a:b]")]));
        let err = parse("x [a|b").unwrap_err();
        assert_eq!(
            (err.at, err.to_string().as_str()),
            (2, "this [ is not closed at character 3")
        );
    }

    #[test]
    fn never_panics_on_random_input() {
        let alphabet: Vec<char> = "ab []():|\\0.5 1é".chars().collect();
        let mut state = 0x2545_f491_u64;
        for _ in 0..20_000 {
            let len = (state % 24) as usize;
            let s: String = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    alphabet[(state % alphabet.len() as u64) as usize]
                })
                .collect();
            let out = schedule(&s, 7);
            assert!(!out.is_empty() && out.last().unwrap().0 == 7, "{s:?}");
            let _ = parse(&s);
        }
    }

    #[test]
    fn deep_nesting_is_taken_literally_without_deep_recursion() {
        for open in ["(", "[", "[a:", "[a|", "(a:"] {
            let prompt = open.repeat(5000) + "x";
            let err = parse(&prompt).expect_err("too deep");
            assert!(err.what.contains("100 levels"), "{open}: {err}");
            assert_eq!(schedule(&prompt, 10), vec![(10, prompt.clone())]);
        }
        // Up to the bound, nesting still parses.
        let ok = "(".repeat(MAX_NESTING) + "x" + &")".repeat(MAX_NESTING);
        assert_eq!(parse(&ok), Ok(()));
    }
}
