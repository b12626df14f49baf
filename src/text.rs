//! Text helpers shared by the command line and the window.

use std::borrow::Cow;

/// Longest message, in characters, that Easel shows or prints as one error or warning.
pub const MESSAGE_LIMIT: usize = 1000;

/// `message` when it has at most `limit` characters; otherwise its start and end around a marker
/// saying how much was left out. Error messages echo what the user gave (a path, a sampler name,
/// a tag), and a 100 KB value must not become a 100 KB message.
pub fn shorten(message: &str, limit: usize) -> Cow<'_, str> {
    let chars = message.chars().count();
    if chars <= limit {
        return Cow::Borrowed(message);
    }
    let tail = limit / 4;
    let head = limit.saturating_sub(tail);
    let cut = |n: usize| message.char_indices().nth(n).map_or(message.len(), |(i, _)| i);
    let head_end = cut(head);
    let tail_start = cut(chars - tail);
    Cow::Owned(format!(
        "{}… [{} characters left out] …{}",
        &message[..head_end],
        chars - head - tail,
        &message[tail_start..]
    ))
}

#[cfg(test)]
mod tests {
    use super::shorten;

    #[test]
    fn short_messages_pass_long_ones_keep_both_ends() {
        assert_eq!(shorten("unknown sampler 'x'", 100), "unknown sampler 'x'");
        let long = format!("unknown sampler '{}' (Euler, Heun)", "雪".repeat(100_000));
        let short = shorten(&long, 1000);
        assert!(short.chars().count() < 1100, "{}", short.chars().count());
        assert!(short.starts_with("unknown sampler '雪雪"));
        assert!(short.ends_with("' (Euler, Heun)"));
        assert!(short.contains("characters left out"));
        let exact = "a".repeat(1000);
        assert_eq!(shorten(&exact, 1000), exact);
    }
}
