//! Names of the pictures saved to the outputs folder, after A1111's `[number]-[seed]-[prompt]`
//! pattern: a five-digit running number (so the folder sorts in the order pictures were made), the
//! seed, and the start of the prompt without its LoRA tags and emphasis syntax, e.g.
//! `00012-1234567-a red barn at sunset.png`. Safe on Windows, macOS and Linux.

use std::path::{Path, PathBuf};

/// Longest prompt part of a name, in characters.
const PROMPT_CHARS: usize = 60;

/// A new path in `dir` for a picture of `seed` made from `prompt`, with extension `ext`: its number
/// is above every number in the folder, so it names no existing file.
pub fn output_path(dir: &Path, seed: u64, prompt: &str, ext: &str) -> PathBuf {
    let names: Vec<String> = std::fs::read_dir(dir)
        .map(|read| {
            read.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    dir.join(format!(
        "{}.{ext}",
        output_stem(next_number(&names), seed, prompt)
    ))
}

/// One more than the highest leading number of `names` (A1111's sequence number); 0 for none.
fn next_number(names: &[String]) -> u64 {
    names
        .iter()
        .filter_map(|name| {
            let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
            // Easel's old names started with a 13-digit millisecond stamp: not a sequence number.
            (1..=9)
                .contains(&digits.len())
                .then(|| digits.parse::<u64>().ok())
                .flatten()
        })
        .max()
        .map_or(0, |n| n + 1)
}

/// `NNNNN-seed` or `NNNNN-seed-prompt words`.
fn output_stem(number: u64, seed: u64, prompt: &str) -> String {
    let words = prompt_words(prompt);
    if words.is_empty() {
        format!("{number:05}-{seed}")
    } else {
        format!("{number:05}-{seed}-{words}")
    }
}

/// The prompt's words for a file name: no `<lora:…>` tags, no emphasis brackets or weights, no
/// characters a file system refuses; runs of spaces and commas become one space; cut at a word
/// boundary within [`PROMPT_CHARS`].
fn prompt_words(prompt: &str) -> String {
    let mut text = String::with_capacity(prompt.len());
    let mut in_tag = false;
    let mut chars = prompt.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if in_tag => {}
            // A weight or an editing step: `:1.2`, `:0.5]`.
            ':' => {
                while chars.peek().is_some_and(|d| d.is_ascii_digit() || *d == '.') {
                    chars.next();
                }
                text.push(' ');
            }
            '\\' => {}
            c if c.is_alphanumeric() || c == '-' || c == '\'' => text.push(c),
            _ => text.push(' '),
        }
    }
    let mut out = String::new();
    for word in text.split_whitespace() {
        let extra = usize::from(!out.is_empty()) + word.chars().count();
        if out.chars().count() + extra > PROMPT_CHARS {
            if out.is_empty() {
                out = word.chars().take(PROMPT_CHARS).collect();
            }
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_a_running_number_the_seed_and_the_prompts_words() {
        assert_eq!(
            output_stem(
                12,
                1_234_567,
                "a (red:1.2) barn, <lora:tiny_style:0.8> [day:night:0.5]"
            ),
            "00012-1234567-a red barn day night"
        );
        assert_eq!(output_stem(0, 5, ""), "00000-5");
        assert_eq!(output_stem(0, 5, "<lora:only:1>, (( ))"), "00000-5");
        assert_eq!(
            output_stem(3, 9, "一只猫，雪景 / 夜晚?"),
            "00003-9-一只猫 雪景 夜晚"
        );
        assert_eq!(
            output_stem(1, 2, "a \"quoted\" c:\\path|x*y"),
            "00001-2-a quoted c path x y"
        );
    }

    #[test]
    fn long_prompts_are_cut_at_a_word_boundary() {
        let words = prompt_words(&"masterpiece, ".repeat(20));
        assert!(words.chars().count() <= PROMPT_CHARS, "{words}");
        assert!(words.ends_with("masterpiece"), "{words}");
        let one = prompt_words(&"x".repeat(500));
        assert_eq!(one.chars().count(), PROMPT_CHARS);
    }

    #[test]
    fn the_number_follows_the_highest_in_the_folder() {
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(next_number(&[]), 0);
        assert_eq!(
            next_number(&names(&["00004-1-a.png", "00011-2.png", "notes.txt"])),
            12
        );
        // Old stamp names (13 digits) do not count as sequence numbers.
        assert_eq!(next_number(&names(&["1765000000000-42.png"])), 0);
    }

    #[test]
    fn each_saved_picture_gets_the_next_number() {
        let dir = tempfile::tempdir().unwrap();
        let first = output_path(dir.path(), 7, "cat", "png");
        assert_eq!(first.file_name().unwrap(), "00000-7-cat.png");
        std::fs::write(&first, b"x").unwrap();
        let second = output_path(dir.path(), 7, "cat", "png");
        assert_eq!(second.file_name().unwrap(), "00001-7-cat.png");
        std::fs::write(dir.path().join("00041-3.jpg"), b"x").unwrap();
        assert_eq!(
            output_path(dir.path(), 7, "cat", "webp").file_name().unwrap(),
            "00042-7-cat.webp"
        );
    }
}
