//! Warnings for brackets in a prompt that do not pair up: an unclosed `(`, `[` or `<lora:`, a
//! stray `)` or `]`. Only for the user's eyes: the parsers keep reading them exactly as A1111 does.

/// What is wrong with one bracket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BracketIssue {
    /// A `(` without its `)`: A1111 strengthens everything after it.
    UnclosedRound,
    /// A `[` without its `]`: A1111 weakens everything after it.
    UnclosedSquare,
    /// A `<lora:` or `<lyco:` without a `>` after it: the tag is plain text, no LoRA is applied.
    UnclosedTag,
    /// A `)` that closes nothing: it is plain text.
    StrayRound,
    /// A `]` that closes nothing: it is plain text.
    StraySquare,
}

/// One bracket that does not pair up, and where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BracketWarning {
    /// What is wrong.
    pub issue: BracketIssue,
    /// Byte offset of the bracket (of the `<` for a tag) in the prompt.
    pub byte: usize,
    /// Its position counted in characters from 1, for messages.
    pub char_pos: usize,
}

/// The length in bytes of the extra-network tag at the start of `s` (`<word:args>`, the form
/// [`super::extra_networks::extract_tags`] takes out before the brackets are read), if one is there.
fn tag_len(s: &str) -> Option<usize> {
    let after = s.strip_prefix('<')?;
    let end = after.find('>')?;
    let (kind, args) = after[..end].split_once(':')?;
    let is_word = !kind.is_empty() && kind.chars().all(|c| c.is_alphanumeric() || c == '_');
    (is_word && !args.is_empty()).then_some(end + 2)
}

/// Every bracket of `prompt` that does not pair up, in the order they appear. `\(`, `\)`, `\[`,
/// `\]` are escaped text, not brackets; the contents of a closed `<…:…>` tag are not looked at.
/// Round and square brackets pair up separately, as A1111's parser pairs them.
pub fn bracket_warnings(prompt: &str) -> Vec<BracketWarning> {
    let mut out = Vec::new();
    let mut round: Vec<usize> = Vec::new();
    let mut square: Vec<usize> = Vec::new();
    let mut i = 0;
    while let Some(c) = prompt[i..].chars().next() {
        let rest = &prompt[i..];
        let mut step = c.len_utf8();
        let issue = match c {
            '\\' => {
                if let Some(next @ ('(' | ')' | '[' | ']' | '\\')) = rest[1..].chars().next() {
                    step += next.len_utf8();
                }
                None
            }
            '<' => {
                if let Some(len) = tag_len(rest) {
                    step = len;
                    None
                } else {
                    let open_tag = rest.starts_with("<lora:") || rest.starts_with("<lyco:");
                    (open_tag && !rest.contains('>')).then_some(BracketIssue::UnclosedTag)
                }
            }
            '(' => {
                round.push(i);
                None
            }
            '[' => {
                square.push(i);
                None
            }
            ')' => round.pop().is_none().then_some(BracketIssue::StrayRound),
            ']' => square.pop().is_none().then_some(BracketIssue::StraySquare),
            _ => None,
        };
        if let Some(issue) = issue {
            out.push(BracketWarning {
                issue,
                byte: i,
                char_pos: 0,
            });
        }
        i += step;
    }
    let unclosed = |at: Vec<usize>, issue| {
        at.into_iter().map(move |byte| BracketWarning {
            issue,
            byte,
            char_pos: 0,
        })
    };
    out.extend(unclosed(round, BracketIssue::UnclosedRound));
    out.extend(unclosed(square, BracketIssue::UnclosedSquare));
    out.sort_by_key(|w| w.byte);
    for w in &mut out {
        w.char_pos = prompt[..w.byte].chars().count() + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::BracketIssue::{StrayRound, StraySquare, UnclosedRound, UnclosedSquare, UnclosedTag};
    use super::*;

    fn issues(prompt: &str) -> Vec<(BracketIssue, usize)> {
        bracket_warnings(prompt)
            .into_iter()
            .map(|w| (w.issue, w.char_pos))
            .collect()
    }

    #[test]
    fn balanced_prompts_have_no_warnings() {
        for p in [
            "",
            "a cat",
            "a (cat:1.2), [dog], ((very)) [[faint]]",
            "[smile:frown:0.5] and [a|b]",
            "a cat <lora:style:0.8> <hypernet:h:1>",
            "x < y > z <not a tag>",
            "(a [b) c]",
        ] {
            assert_eq!(issues(p), [], "{p}");
        }
    }

    #[test]
    fn an_unclosed_bracket_is_found_at_its_position() {
        assert_eq!(issues("a [smile:frown"), [(UnclosedSquare, 3)]);
        assert_eq!(issues("(a cat"), [(UnclosedRound, 1)]);
        assert_eq!(issues("a cat <lora:sty"), [(UnclosedTag, 7)]);
        assert_eq!(issues("a cat <lyco:x:1"), [(UnclosedTag, 7)]);
        // Positions count characters, not bytes.
        assert_eq!(issues("猫 (a"), [(UnclosedRound, 3)]);
        assert_eq!(bracket_warnings("猫 (a")[0].byte, 4);
    }

    #[test]
    fn a_stray_closer_is_found_and_does_not_close_the_other_kind() {
        assert_eq!(issues("a cat) dog"), [(StrayRound, 6)]);
        assert_eq!(issues("a] (b"), [(StraySquare, 2), (UnclosedRound, 4)]);
        // A `]` does not close a `(`: both are reported.
        assert_eq!(issues("(a]"), [(UnclosedRound, 1), (StraySquare, 3)]);
    }

    #[test]
    fn nested_brackets_report_the_one_left_open() {
        assert_eq!(issues("((a) b"), [(UnclosedRound, 1)]);
        assert_eq!(issues("(a (b) (c"), [(UnclosedRound, 1), (UnclosedRound, 8)]);
        assert_eq!(issues("[[a] [b:c:0.5]"), [(UnclosedSquare, 1)]);
        assert_eq!(issues("((a)))"), [(StrayRound, 6)]);
    }

    #[test]
    fn escaped_brackets_are_text() {
        assert_eq!(issues(r"a \(cat\) \[dog"), []);
        assert_eq!(issues(r"a \) b \]"), []);
        // An escaped backslash does not escape the bracket after it.
        assert_eq!(issues(r"a \\(b"), [(UnclosedRound, 5)]);
        assert_eq!(issues(r"(a \)"), [(UnclosedRound, 1)]);
        // A lone backslash at the end is text too.
        assert_eq!(issues("a \\"), []);
    }

    #[test]
    fn brackets_inside_a_closed_tag_do_not_count_and_an_open_tag_does_not_hide_brackets() {
        assert_eq!(issues("a <lora:we(ird:1>"), []);
        assert_eq!(
            issues("<lora:x:1> ] (b"),
            [(StraySquare, 12), (UnclosedRound, 14)]
        );
        // An unclosed tag is text, so the bracket inside it counts.
        assert_eq!(issues("a <lora:x(1"), [(UnclosedTag, 3), (UnclosedRound, 10)]);
        // A `<lora:` with a `>` later is closed, whatever it holds.
        assert_eq!(issues("a <lora:x b>"), []);
    }
}
