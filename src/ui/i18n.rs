//! Translations of the UI (English source strings as keys, gettext style) and the CJK font that
//! lets egui draw them and prompts typed in Chinese.
//!
//! Every user-visible string goes through [`tr`] (plain text) or [`trf`] (text with `{named}`
//! values, so a translation may put them in another order). A key with no translation shows the
//! English text. The tests below scan `src/ui` for these calls and check the tables against them.

mod zh_cn;

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::Display;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use eframe::egui;

pub use crate::config::Language;

/// The process-wide language, read by threads that never chose one (the disk worker's messages).
static PROCESS_LANGUAGE: AtomicU8 = AtomicU8::new(0);

thread_local! {
    /// The language this thread chose. The app has one UI thread, so this equals the process-wide
    /// value there; it keeps UI tests, which run one app per test thread, from seeing each other's.
    static THREAD_LANGUAGE: Cell<Option<Language>> = const { Cell::new(None) };
}

fn code(language: Language) -> u8 {
    match language {
        Language::English => 0,
        Language::SimplifiedChinese => 1,
    }
}

/// Makes `language` the UI language, for this thread and as the process default.
pub fn set_language(language: Language) {
    PROCESS_LANGUAGE.store(code(language), Ordering::Relaxed);
    THREAD_LANGUAGE.with(|l| l.set(Some(language)));
}

/// The current UI language.
pub fn language() -> Language {
    THREAD_LANGUAGE.with(Cell::get).unwrap_or_else(|| {
        if PROCESS_LANGUAGE.load(Ordering::Relaxed) == code(Language::SimplifiedChinese) {
            Language::SimplifiedChinese
        } else {
            Language::English
        }
    })
}

fn table(language: Language) -> Option<&'static HashMap<&'static str, &'static str>> {
    static ZH_CN: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    match language {
        Language::English => None,
        Language::SimplifiedChinese => Some(ZH_CN.get_or_init(|| zh_cn::ENTRIES.iter().copied().collect())),
    }
}

/// `english` in the current language (the English text itself when there is no translation).
pub fn tr(english: &'static str) -> &'static str {
    table(language())
        .and_then(|t| t.get(english).copied())
        .unwrap_or(english)
}

/// Marks a literal as a translation key without translating it, for constants that are passed to
/// [`tr`] where they are shown (gettext's `N_`). The table tests see these like `tr` calls.
pub const fn tr_noop(english: &'static str) -> &'static str {
    english
}

/// `english` in the current language with each `{name}` replaced by its value from `args`.
pub fn trf(english: &'static str, args: &[(&str, &dyn Display)]) -> String {
    fill(tr(english), args)
}

/// Replaces each `{name}` in `template` by its value; an unknown name stays as written, so a
/// mistake shows on screen instead of vanishing.
fn fill(template: &str, args: &[(&str, &dyn Display)]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            args.iter()
                .find(|(name, _)| *name == &after[..close])
                .map(|a| (close, a.1))
        });
        if let Some((close, value)) = value {
            let _ = write!(out, "{value}");
            rest = &after[close + 1..];
        } else {
            out.push('{');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The Language menu: follow the system, or one of the languages (named in their own script, so
/// whoever cannot read the current language still finds theirs). Applies when clicked.
pub fn language_menu_ui(
    ui: &mut egui::Ui,
    chosen: Option<Language>,
    commands: &mut Vec<super::command::Command>,
) {
    ui.menu_button(tr("Language"), |ui| {
        let system = Language::from_environment();
        let follow = trf("System ({language})", &[("language", &system.native_name())]);
        if ui.radio(chosen.is_none(), follow).clicked() {
            commands.push(super::command::Command::SetLanguage(None));
            ui.close();
        }
        for language in Language::ALL {
            if ui
                .radio(chosen == Some(language), language.native_name())
                .clicked()
            {
                commands.push(super::command::Command::SetLanguage(Some(language)));
                ui.close();
            }
        }
    });
}

/// The shipped CJK font: Droid Sans Fallback cut to GB2312 plus the table's characters (see
/// `assets/fonts/SOURCE.md`).
const CJK_SUBSET: &[u8] = include_bytes!("../../assets/fonts/easel-cjk-subset.ttf");

/// Adds the shipped CJK font after egui's own fonts in both families, so Latin text keeps its look
/// and Chinese labels and prompts get real glyphs.
pub fn install_fonts(ctx: &egui::Context) {
    ctx.add_font(fallback_font(
        "easel-cjk-subset",
        egui::FontData::from_static(CJK_SUBSET),
    ));
}

fn fallback_font(name: &str, data: egui::FontData) -> egui::FontInsert {
    use egui::{FontInsert, FontPriority, InsertFontFamily};
    FontInsert::new(
        name,
        data,
        [egui::FontFamily::Proportional, egui::FontFamily::Monospace]
            .into_iter()
            .map(|family| InsertFontFamily {
                family,
                priority: FontPriority::Lowest,
            })
            .collect(),
    )
}

/// System CJK fonts with the face index of their Simplified Chinese face, most common first.
const SYSTEM_CJK_FONTS: &[(&str, u32)] = &[
    ("C:\\Windows\\Fonts\\msyh.ttc", 0),
    ("C:\\Windows\\Fonts\\simsun.ttc", 0),
    ("/System/Library/Fonts/PingFang.ttc", 0),
    ("/System/Library/Fonts/Hiragino Sans GB.ttc", 0),
    ("/System/Library/Fonts/STHeiti Light.ttc", 0),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/wenquanyi/wqy-microhei/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0),
];

/// Reads the first system CJK font found on a background thread and adds it after the shipped
/// subset, for the rare characters outside GB2312. The subset keeps working if there is none or
/// it cannot be read; frames never wait for the disk.
pub fn add_system_cjk_font(ctx: &egui::Context) {
    let ctx = ctx.clone();
    let spawned = std::thread::Builder::new()
        .name("cjk-font".into())
        .spawn(move || {
            // egui panics on a face it cannot parse, so a file whose header does not promise the
            // face asked for is skipped.
            let found = SYSTEM_CJK_FONTS.iter().find_map(|&(path, index)| {
                let bytes = std::fs::read(path).ok()?;
                (face_count(&bytes)? > index).then_some((path, index, bytes))
            });
            if let Some((path, index, bytes)) = found {
                tracing::info!("using the system CJK font {path} after the shipped subset");
                let mut data = egui::FontData::from_owned(bytes);
                data.index = index;
                ctx.add_font(fallback_font("system-cjk", data));
                ctx.request_repaint();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("could not start the system font reader: {e}; the shipped CJK font is used");
    }
}

/// How many faces a TrueType/OpenType file (1) or collection (its header's count) holds; `None`
/// when the bytes are neither.
fn face_count(bytes: &[u8]) -> Option<u32> {
    let tag = bytes.get(..4)?;
    if tag == b"ttcf" {
        let count = bytes.get(8..12)?;
        Some(u32::from_be_bytes([count[0], count[1], count[2], count[3]]))
    } else if tag == [0, 1, 0, 0] || tag == b"OTTO" || tag == b"true" {
        Some(1)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    use super::*;

    /// Reads the Rust string literal that starts at `text` (just after the opening quote); returns
    /// its value, or `None` if it never ends.
    fn string_literal(text: &str) -> Option<String> {
        let mut out = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Some(out),
                '\\' => match chars.next()? {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    '\n' => {
                        while chars.peek().is_some_and(|c| c.is_whitespace()) {
                            chars.next();
                        }
                    }
                    other => panic!("unexpected escape \\{other} in a translation key"),
                },
                c => out.push(c),
            }
        }
        None
    }

    /// The Rust files of `src/ui` (not the tables), each with its text; this module's own tests
    /// are cut off.
    fn ui_sources() -> Vec<(std::path::PathBuf, String)> {
        fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    if path.file_name().unwrap() != "i18n" {
                        walk(&path, files);
                    }
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        let mut files = Vec::new();
        walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ui"), &mut files);
        files
            .into_iter()
            .map(|file| {
                let mut text = std::fs::read_to_string(&file).unwrap();
                if let Some(tests) = text.find("\n#[cfg(test)]") {
                    text.truncate(tests);
                }
                (file, text)
            })
            .collect()
    }

    /// Every literal passed to `tr`, `trf` or `tr_noop` in `src/ui`, with the file it is in.
    fn keys_in_sources() -> BTreeMap<String, String> {
        let mut keys = BTreeMap::new();
        for (file, text) in ui_sources() {
            for call in ["tr(", "trf(", "tr_noop("] {
                for (at, _) in text.match_indices(call) {
                    let before = text[..at].chars().next_back();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        continue;
                    }
                    let args = text[at + call.len()..].trim_start();
                    // `tr(CONSTANT)` is checked where the constant is marked with `tr_noop`.
                    if let Some(literal) = args.strip_prefix('"') {
                        let key = string_literal(literal)
                            .unwrap_or_else(|| panic!("unterminated key in {}", file.display()));
                        keys.insert(key, file.display().to_string());
                    }
                }
            }
        }
        keys
    }

    /// Text that widgets show as it is: key names, and sample paths and URLs in empty fields.
    fn stays_as_written(literal: &str) -> bool {
        const KEYS: [&str; 10] = [
            "B",
            "M",
            "L",
            "X",
            "H",
            "Esc",
            "Ctrl+Enter",
            "Ctrl+V",
            "Ctrl+Z",
            "Ctrl+Shift+Z",
        ];
        KEYS.contains(&literal)
            || literal.starts_with("http")
            || literal.starts_with('/')
            || !literal.chars().any(|c| c.is_ascii_alphabetic())
    }

    /// The literals in `text` that calls known to put text on screen show without `tr`, with the
    /// call: first-argument literals, and those after the value a checkbox, radio or selectable
    /// edits.
    fn untranslated_literals(text: &str) -> Vec<(String, &'static str)> {
        const FIRST: [&str; 16] = [
            ".label(",
            ".button(",
            ".small_button(",
            ".small(",
            ".weak(",
            ".heading(",
            ".monospace(",
            ".on_hover_text(",
            ".on_disabled_hover_text(",
            ".hint_text(",
            ".selectable_label(",
            ".menu_button(",
            ".colored_label(",
            "Button::new(",
            "Window::new(",
            "CollapsingHeader::new(",
        ];
        const LAST: [&str; 3] = [".checkbox(", ".selectable_value(", ".radio("];
        let mut found = Vec::new();
        for call in FIRST.iter().chain(&LAST) {
            for (at, _) in text.match_indices(call) {
                let args = &text[at + call.len()..];
                let args = if LAST.contains(call) {
                    // What follows the last comma before the call's first closing parenthesis.
                    let end = args.find(')').unwrap_or(args.len());
                    match args[..end].rfind(',') {
                        Some(comma) => &args[comma + 1..],
                        None => continue,
                    }
                } else {
                    args
                };
                let Some(literal) = args.trim_start().strip_prefix('"') else {
                    continue;
                };
                let value = string_literal(literal).unwrap();
                if !stays_as_written(&value) {
                    found.push((value, *call));
                }
            }
        }
        found
    }

    #[test]
    fn the_literal_scan_finds_untranslated_widget_text() {
        let code = r#"
            ui.label("Hello there");
            ui.checkbox(&mut on, "Show it").on_hover_text("H");
            ui.button(tr("Fine"));
            ui.small_button("Esc");
            ui.selectable_value(&mut mode, Mode::A, tr("Also fine"));
        "#;
        let found: Vec<String> = untranslated_literals(code).into_iter().map(|(v, _)| v).collect();
        assert_eq!(found, ["Hello there", "Show it"]);
    }

    #[test]
    fn widgets_get_no_untranslated_literals() {
        let found: Vec<String> = ui_sources()
            .iter()
            .flat_map(|(file, text)| {
                untranslated_literals(text)
                    .into_iter()
                    .map(move |(value, call)| format!("{value:?} in {call} ({})", file.display()))
            })
            .collect();
        assert!(
            found.is_empty(),
            "wrap these in tr(..) and add them to zh_cn.rs:\n{}",
            found.join("\n")
        );
    }

    fn placeholders(text: &str) -> BTreeSet<&str> {
        text.split('{')
            .skip(1)
            .filter_map(|s| s.split_once('}').map(|(name, _)| name))
            .collect()
    }

    #[test]
    fn every_ui_string_has_a_chinese_entry_and_every_entry_is_used() {
        let used = keys_in_sources();
        assert!(used.len() > 100, "the scan found only {} keys", used.len());
        let table: BTreeSet<&str> = zh_cn::ENTRIES.iter().map(|(en, _)| *en).collect();
        assert_eq!(
            table.len(),
            zh_cn::ENTRIES.len(),
            "a key is listed twice in zh_cn.rs"
        );
        let missing: Vec<String> = used
            .iter()
            .filter(|(key, _)| !table.contains(key.as_str()))
            .map(|(key, file)| format!("{key:?} ({file})"))
            .collect();
        assert!(missing.is_empty(), "no Chinese for:\n{}", missing.join("\n"));
        let unused: Vec<&str> = table
            .iter()
            .copied()
            .filter(|key| !used.contains_key(*key))
            .collect();
        assert!(
            unused.is_empty(),
            "zh_cn.rs entries no UI code uses:\n{}",
            unused.join("\n")
        );
    }

    #[test]
    fn chinese_entries_keep_the_placeholders_and_are_translated() {
        for (en, zh) in zh_cn::ENTRIES {
            assert_eq!(
                placeholders(en),
                placeholders(zh),
                "placeholders differ for {en:?}"
            );
            assert!(!zh.trim().is_empty(), "empty translation for {en:?}");
        }
    }

    /// Sets only this test thread's language, so that tests of English text running at the same
    /// time on other threads keep reading English.
    fn set_thread_language(language: Language) {
        THREAD_LANGUAGE.with(|l| l.set(Some(language)));
    }

    #[test]
    fn lookup_falls_back_to_english_and_fills_named_values() {
        set_thread_language(Language::SimplifiedChinese);
        assert_eq!(tr("Generate"), "生成");
        assert_eq!(tr("no such key in any table"), "no such key in any table");
        assert_eq!(trf("Queue ({count})", &[("count", &3)]), "队列（3）");
        set_thread_language(Language::English);
        assert_eq!(tr("Generate"), "Generate");
        assert_eq!(trf("Queue ({count})", &[("count", &3)]), "Queue (3)");
        assert_eq!(fill("{a} and {b}, {a}", &[("a", &1), ("b", &"x")]), "1 and x, 1");
        assert_eq!(
            fill("{missing} {", &[]),
            "{missing} {",
            "an unknown name stays visible"
        );
    }

    #[test]
    fn font_headers_say_how_many_faces_they_hold() {
        assert_eq!(face_count(CJK_SUBSET), Some(1));
        let mut collection = b"ttcf\0\x02\0\0\0\0\0\x0a".to_vec();
        collection.extend([0; 40]);
        assert_eq!(face_count(&collection), Some(10));
        assert_eq!(face_count(b"<html>"), None);
        assert_eq!(face_count(b"tt"), None);
    }

    #[test]
    fn every_table_character_is_in_the_shipped_font() {
        let font = egui::FontId::proportional(14.0);
        let bare = egui::Context::default();
        let mut output = bare.run_ui(egui::RawInput::default(), |_| {});
        output.textures_delta.clear();
        assert!(
            !bare.fonts_mut(|fonts| fonts.has_glyphs(&font, "提示词")),
            "egui's own fonts have no CJK glyphs, so this test would prove nothing"
        );
        let ctx = egui::Context::default();
        install_fonts(&ctx);
        let mut output = ctx.run_ui(egui::RawInput::default(), |_| {});
        output.textures_delta.clear();
        let missing: BTreeSet<char> = ctx.fonts_mut(|fonts| {
            zh_cn::ENTRIES
                .iter()
                .flat_map(|(_, zh)| zh.chars())
                .filter(|c| !c.is_ascii())
                .filter(|&c| !fonts.has_glyph(&font, c))
                .collect()
        });
        assert!(
            missing.is_empty(),
            "characters without a glyph (run scripts/subset_cjk_font.py): {missing:?}"
        );
    }
}
