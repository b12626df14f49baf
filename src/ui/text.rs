//! Small text helpers shared by the panels and the job list: one-line summaries and file sizes.

/// Longest summary shown for a prompt or an infotext, in characters.
const SUMMARY_CHARS: usize = 60;

/// The first line of `text`, cut to 60 characters with an ellipsis.
pub fn short(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > SUMMARY_CHARS {
        format!("{}…", line.chars().take(SUMMARY_CHARS).collect::<String>())
    } else {
        line.to_owned()
    }
}

/// A file size for people: "1.23 GB" from a gigabyte up, "12.3 MB" below.
pub fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else {
        format!("{:.1} MB", b / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keeps_the_first_line_and_cuts_long_ones() {
        assert_eq!(short("a red barn\nSteps: 3"), "a red barn");
        let long = "x".repeat(70);
        assert_eq!(short(&long), format!("{}…", "x".repeat(60)));
        assert_eq!(short(""), "");
    }

    #[test]
    fn human_size_switches_to_gigabytes() {
        assert_eq!(human_size(2_130_000_000), "2.13 GB");
        assert_eq!(human_size(144_000_000), "144.0 MB");
    }
}
