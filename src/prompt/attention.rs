//! A1111's `parse_prompt_attention`: `(a)` ×1.1, `[a]` ÷1.1, `(a:w)`, `\(` escapes, `BREAK`.
//! Unbalanced brackets are tolerated exactly as A1111 does (an unclosed bracket applies to the end).

/// A run of text with one emphasis weight. A `BREAK` is a piece with weight −1 and text "BREAK".
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// The text of the run.
    pub text: String,
    /// Its multiplier.
    pub weight: f64,
}

impl Piece {
    /// True for the `BREAK` marker.
    pub fn is_break(&self) -> bool {
        self.weight == -1.0 && self.text == "BREAK"
    }
}

const ROUND: f64 = 1.1;
const SQUARE: f64 = 1.0 / 1.1;

enum Token<'a> {
    Escaped(&'a str),
    OpenRound,
    OpenSquare,
    WeightClose(f64),
    CloseRound,
    CloseSquare,
    Text,
}

/// Matches `:\s*([+-]?[.\d]+)\s*\)` at the start of `s`; returns (weight, bytes consumed).
fn weight_close(s: &str) -> Option<(f64, usize)> {
    let rest = s.strip_prefix(':')?;
    let trimmed = rest.trim_start();
    let mut end = 0;
    let bytes = trimmed.as_bytes();
    if end < bytes.len() && (bytes[end] == b'+' || bytes[end] == b'-') {
        end += 1;
    }
    let digits_start = end;
    while end < bytes.len() && (bytes[end].is_ascii_digit() || bytes[end] == b'.') {
        end += 1;
    }
    if end == digits_start {
        return None;
    }
    let number = &trimmed[..end];
    let after = trimmed[end..].trim_start();
    let after = after.strip_prefix(')')?;
    let consumed = s.len() - after.len();
    // Python's float() rejects forms like "1.2.3"; A1111 would raise there, we treat it as text.
    number.parse::<f64>().ok().map(|w| (w, consumed))
}

fn next_token(s: &str) -> Option<(Token<'_>, usize)> {
    let mut chars = s.chars();
    let c = chars.next()?;
    Some(match c {
        '\\' => match chars.next() {
            Some(n @ ('(' | ')' | '[' | ']' | '\\')) => {
                (Token::Escaped(&s[1..=n.len_utf8()]), 1 + n.len_utf8())
            }
            _ => (Token::Text, 1),
        },
        '(' => (Token::OpenRound, 1),
        '[' => (Token::OpenSquare, 1),
        ')' => (Token::CloseRound, 1),
        ']' => (Token::CloseSquare, 1),
        ':' => match weight_close(s) {
            Some((w, n)) => (Token::WeightClose(w), n),
            None => (Token::Text, 1),
        },
        _ => {
            let end = s.find(['\\', '(', ')', '[', ']', ':']).unwrap_or(s.len());
            (Token::Text, end)
        }
    })
}

/// Splits on `\s*\bBREAK\b\s*` like A1111's `re_break`.
fn split_break(text: &str) -> Vec<String> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find("BREAK") {
        let before = &rest[..pos];
        let after = &rest[pos + 5..];
        let boundary_before = before.chars().next_back().is_none_or(|c| !is_word(c));
        let boundary_after = after.chars().next().is_none_or(|c| !is_word(c));
        if boundary_before && boundary_after {
            current.push_str(before.trim_end());
            parts.push(std::mem::take(&mut current));
            rest = after.trim_start();
        } else {
            current.push_str(&rest[..pos + 5]);
            rest = after;
        }
    }
    current.push_str(rest);
    parts.push(current);
    parts
}

/// Parses A1111 emphasis syntax into weighted runs, merging neighbours of equal weight.
pub fn parse_attention(text: &str) -> Vec<Piece> {
    let mut res: Vec<Piece> = Vec::new();
    let mut round: Vec<usize> = Vec::new();
    let mut square: Vec<usize> = Vec::new();
    let multiply = |res: &mut Vec<Piece>, from: usize, m: f64| {
        for p in &mut res[from..] {
            p.weight *= m;
        }
    };
    let mut rest = text;
    while let Some((token, used)) = next_token(rest) {
        rest = &rest[used..];
        match token {
            Token::Escaped(t) => res.push(Piece {
                text: t.to_owned(),
                weight: 1.0,
            }),
            Token::OpenRound => round.push(res.len()),
            Token::OpenSquare => square.push(res.len()),
            Token::WeightClose(w) if !round.is_empty() => {
                if let Some(start) = round.pop() {
                    multiply(&mut res, start, w);
                }
            }
            Token::CloseRound if !round.is_empty() => {
                if let Some(start) = round.pop() {
                    multiply(&mut res, start, ROUND);
                }
            }
            Token::CloseSquare if !square.is_empty() => {
                if let Some(start) = square.pop() {
                    multiply(&mut res, start, SQUARE);
                }
            }
            Token::WeightClose(_) | Token::CloseRound | Token::CloseSquare | Token::Text => {
                let raw = &text[text.len() - rest.len() - used..text.len() - rest.len()];
                for (i, part) in split_break(raw).into_iter().enumerate() {
                    if i > 0 {
                        res.push(Piece {
                            text: "BREAK".into(),
                            weight: -1.0,
                        });
                    }
                    res.push(Piece {
                        text: part,
                        weight: 1.0,
                    });
                }
            }
        }
    }
    for start in round {
        multiply(&mut res, start, ROUND);
    }
    for start in square {
        multiply(&mut res, start, SQUARE);
    }
    if res.is_empty() {
        res.push(Piece {
            text: String::new(),
            weight: 1.0,
        });
    }
    let mut merged: Vec<Piece> = Vec::with_capacity(res.len());
    for p in res {
        match merged.last_mut() {
            Some(last) if last.weight == p.weight => last.text.push_str(&p.text),
            _ => merged.push(p),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, f64)> {
        parse_attention(text)
            .into_iter()
            .map(|p| (p.text, p.weight))
            .collect()
    }

    fn close(a: &[(String, f64)], b: &[(&str, f64)]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for ((ta, wa), (tb, wb)) in a.iter().zip(b) {
            assert_eq!(ta, tb);
            assert!((wa - wb).abs() < 1e-9, "{a:?} vs {b:?}");
        }
    }

    // Cases from the docstring of A1111's parse_prompt_attention.
    #[test]
    fn a1111_examples() {
        close(&pairs("normal text"), &[("normal text", 1.0)]);
        close(
            &pairs("an (important) word"),
            &[("an ", 1.0), ("important", 1.1), (" word", 1.0)],
        );
        close(&pairs("(unbalanced"), &[("unbalanced", 1.1)]);
        close(&pairs("\\(literal\\]"), &[("(literal]", 1.0)]);
        close(&pairs("(unnecessary)(parens)"), &[("unnecessaryparens", 1.1)]);
        close(
            &pairs("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky)))."),
            &[
                ("a ", 1.0),
                ("house", 1.573_000_000_000_000_4),
                (" ", 1.1),
                ("on", 1.0),
                (" a ", 1.1),
                ("hill", 0.55),
                (", sun, ", 1.1),
                ("sky", 1.464_100_000_000_000_6),
                (".", 1.1),
            ],
        );
        close(&pairs(""), &[("", 1.0)]);
        close(&pairs("a BREAK b"), &[("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]);
        close(&pairs("BREAKFAST"), &[("BREAKFAST", 1.0)]);
        close(&pairs("time: 12"), &[("time: 12", 1.0)]);
    }
}
