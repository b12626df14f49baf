//! The UI language: English or Simplified Chinese, chosen in Settings or, until the user picks one,
//! taken from the system locale (the POSIX locale variables, which is all that is cheap to read).

/// A language the UI is translated into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Language {
    /// The English source strings.
    #[default]
    English,
    /// 简体中文.
    SimplifiedChinese,
}

impl Language {
    /// Every language, in menu order.
    pub const ALL: [Self; 2] = [Self::English, Self::SimplifiedChinese];

    /// The language's own name, as its speakers write it (menu entries show this, untranslated).
    pub fn native_name(self) -> &'static str {
        match self {
            Self::English => "English",
            Self::SimplifiedChinese => "简体中文",
        }
    }

    /// The language a locale name such as `zh_CN.UTF-8`, `zh-Hans` or `en_US` asks for; `None`
    /// for an empty name or the `C`/`POSIX` locale, which say nothing.
    pub fn from_locale_name(name: &str) -> Option<Self> {
        let name = name.trim();
        if name.is_empty() || name == "C" || name.starts_with("C.") || name == "POSIX" {
            return None;
        }
        if name.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("zh")) {
            Some(Self::SimplifiedChinese)
        } else {
            Some(Self::English)
        }
    }

    /// The system's language from the locale variables, in the order POSIX and GNU gettext read
    /// them (`LANGUAGE`'s first entry, `LC_ALL`, `LC_MESSAGES`, `LANG`); English when none says.
    pub fn from_environment() -> Self {
        Self::from_variables(|name| std::env::var(name).ok())
    }

    /// [`Self::from_environment`] over any variable lookup (tests pass a map).
    pub fn from_variables(get: impl Fn(&str) -> Option<String>) -> Self {
        let language =
            get("LANGUAGE").and_then(|list| list.split(':').find(|s| !s.is_empty()).map(str::to_owned));
        language
            .into_iter()
            .chain(["LC_ALL", "LC_MESSAGES", "LANG"].into_iter().filter_map(&get))
            .find_map(|value| Self::from_locale_name(&value))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_names_pick_the_language() {
        assert_eq!(
            Language::from_locale_name("zh_CN.UTF-8"),
            Some(Language::SimplifiedChinese)
        );
        assert_eq!(
            Language::from_locale_name("zh-Hans"),
            Some(Language::SimplifiedChinese)
        );
        assert_eq!(
            Language::from_locale_name("ZH_sg"),
            Some(Language::SimplifiedChinese)
        );
        assert_eq!(Language::from_locale_name("en_US.UTF-8"), Some(Language::English));
        assert_eq!(Language::from_locale_name("de_DE"), Some(Language::English));
        assert_eq!(Language::from_locale_name("C.UTF-8"), None);
        assert_eq!(Language::from_locale_name("POSIX"), None);
        assert_eq!(Language::from_locale_name(""), None);
    }

    #[test]
    fn variables_are_read_in_gettext_order() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(Language::from_variables(vars(&[])), Language::English);
        assert_eq!(
            Language::from_variables(vars(&[("LANG", "zh_CN.UTF-8")])),
            Language::SimplifiedChinese
        );
        assert_eq!(
            Language::from_variables(vars(&[("LANG", "zh_CN.UTF-8"), ("LC_ALL", "en_GB.UTF-8")])),
            Language::English,
            "LC_ALL overrides LANG"
        );
        assert_eq!(
            Language::from_variables(vars(&[("LC_ALL", "C"), ("LC_MESSAGES", "zh_CN")])),
            Language::SimplifiedChinese,
            "the C locale says nothing, so the next variable decides"
        );
        assert_eq!(
            Language::from_variables(vars(&[("LANGUAGE", "zh_CN:en"), ("LANG", "en_US")])),
            Language::SimplifiedChinese
        );
    }
}
