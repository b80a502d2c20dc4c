//! The rule of every key, and the walk that checks a parsed TOML table against those rules before serde sees
//! it, so that each mistake gets a message naming the key, its origin and what is allowed.
//!
//! Also applies `--set section.key=value` overrides: the value is read as a TOML value and, when that fails
//! (or a string key gets a non-string), as the raw text.

use std::collections::HashMap;

use toml::{Table, Value};

use super::choices::{canonical_device, quote_list, DEVICE_WORDS};
use super::error::{Origin, Problem, ProblemKind};
use super::SECTIONS;

/// The keys of one `[section]`.
#[derive(Debug)]
pub(crate) struct SectionSpec {
    pub name: &'static str,
    pub keys: &'static [KeySpec],
}

impl SectionSpec {
    fn key(&self, name: &str) -> Option<&'static KeySpec> {
        self.keys.iter().find(|k| k.name == name)
    }

    fn key_names(&self) -> Vec<&'static str> {
        self.keys.iter().map(|k| k.name).collect()
    }
}

/// One key: its TOML name, what it accepts, and, for an optional key, what leaving it out means.
#[derive(Debug)]
pub(crate) struct KeySpec {
    pub name: &'static str,
    pub kind: Kind,
    /// `Some(meaning)` for an `Option` field (no TOML value for `None`): what leaving the key out means.
    pub unset: Option<&'static str>,
}

impl KeySpec {
    pub(crate) const fn new(name: &'static str, kind: Kind) -> Self {
        Self {
            name,
            kind,
            unset: None,
        }
    }

    pub(crate) const fn optional(name: &'static str, kind: Kind, meaning: &'static str) -> Self {
        Self {
            name,
            kind,
            unset: Some(meaning),
        }
    }
}

/// One end of a float range.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    /// Unbounded.
    Open,
    /// The value may equal this.
    Incl(f64),
    /// The value must differ from this.
    Excl(f64),
}

/// What a key accepts.
#[derive(Debug)]
pub(crate) enum Kind {
    /// `true` or `false`.
    Bool,
    /// An integer in `[min, max]`.
    Int { min: i64, max: i64 },
    /// A positive multiple of 32 (the largest stride).
    ImgSize,
    /// A finite number (an integer is accepted) between two limits.
    Float { low: Limit, high: Limit },
    /// A non-empty string.
    Text,
    /// A non-empty string naming a file or folder.
    Path,
    /// A word of `DEVICE_WORDS`, `"cuda:N"`, or a GPU index `N`.
    Device,
    /// One word of `names`, case-insensitive; `from_bool` maps `false`/`true` to a word.
    Choice {
        names: &'static [&'static str],
        from_bool: Option<[&'static str; 2]>,
    },
}

impl Kind {
    /// A number in [0, 1]: probabilities and gains.
    pub(crate) const UNIT: Kind = Kind::float(Limit::Incl(0.0), Limit::Incl(1.0));
    /// A number ≥ 0.
    pub(crate) const NON_NEGATIVE: Kind = Kind::float(Limit::Incl(0.0), Limit::Open);

    pub(crate) const fn at_least(min: i64) -> Kind {
        Kind::Int { min, max: i64::MAX }
    }

    pub(crate) const fn between(min: i64, max: i64) -> Kind {
        Kind::Int { min, max }
    }

    pub(crate) const fn float(low: Limit, high: Limit) -> Kind {
        Kind::Float { low, high }
    }

    pub(crate) const fn choice(names: &'static [&'static str]) -> Kind {
        Kind::Choice {
            names,
            from_bool: None,
        }
    }

    pub(crate) const fn choice_or_bool(
        names: &'static [&'static str],
        from_bool: [&'static str; 2],
    ) -> Kind {
        Kind::Choice {
            names,
            from_bool: Some(from_bool),
        }
    }

    /// Whether a `--set` value for this key that is not a TOML string should be taken as its raw text.
    fn wants_text(&self) -> bool {
        // A choice that also takes `false`/`true` keeps them as booleans.
        matches!(
            self,
            Kind::Text
                | Kind::Path
                | Kind::Choice {
                    from_bool: None,
                    ..
                }
        )
    }

    /// The requirement, as it follows "must be" in a message.
    fn requirement(&self) -> String {
        match self {
            Kind::Bool => "true or false".to_string(),
            Kind::Int { min, max: i64::MAX } => format!("an integer ≥ {min}"),
            Kind::Int { min, max } => format!("an integer from {min} to {max}"),
            Kind::ImgSize => "a positive multiple of 32".to_string(),
            Kind::Float { low, high } => match (low, high) {
                (Limit::Open, Limit::Open) => "a finite number".to_string(),
                (Limit::Incl(a), Limit::Open) => format!("a number ≥ {a}"),
                (Limit::Excl(a), Limit::Open) => format!("a number > {a}"),
                (Limit::Open, Limit::Incl(b)) => format!("a number ≤ {b}"),
                (Limit::Open, Limit::Excl(b)) => format!("a number < {b}"),
                (Limit::Incl(a) | Limit::Excl(a), Limit::Incl(b) | Limit::Excl(b)) => {
                    let open = if matches!(low, Limit::Incl(_)) {
                        '['
                    } else {
                        '('
                    };
                    let close = if matches!(high, Limit::Incl(_)) {
                        ']'
                    } else {
                        ')'
                    };
                    format!("a number in {open}{a}, {b}{close}")
                }
            },
            Kind::Text => "a non-empty string".to_string(),
            Kind::Path => "a non-empty path string".to_string(),
            Kind::Device => format!(
                "one of {} or \"cuda:N\" (N = GPU index, e.g. \"cuda:0\")",
                quote_list(DEVICE_WORDS)
            ),
            Kind::Choice { names, from_bool } => {
                let words = format!("one of {}", quote_list(names));
                match from_bool {
                    Some([off, on]) => format!("{words} (false = \"{off}\", true = \"{on}\")"),
                    None => words,
                }
            }
        }
    }

    /// The expected type, for a wrong-type message.
    fn expected(&self) -> String {
        match self {
            Kind::Bool => "a boolean (true or false)".to_string(),
            Kind::Text => "a string".to_string(),
            Kind::Path => "a path string".to_string(),
            Kind::Choice { .. } | Kind::Device => format!("a string, {}", self.requirement()),
            _ => self.requirement(),
        }
    }

    /// Checks `value` and returns it normalised (an integer as a float where a float is expected, the
    /// canonical spelling of a word), or what is wrong with it.
    fn check(&self, value: &Value) -> Result<Value, ProblemKind> {
        let bad_value = |requirement: String| ProblemKind::BadValue {
            value: show(value),
            requirement,
        };
        let must_be = || bad_value(format!("must be {}", self.requirement()));
        let wrong_type = || ProblemKind::WrongType {
            value: show(value),
            expected: self.expected(),
            found: type_phrase(value),
        };
        match (self, value) {
            (Kind::Bool, Value::Boolean(_)) => Ok(value.clone()),
            (Kind::Int { min, max }, Value::Integer(i)) => {
                if (*min..=*max).contains(i) {
                    Ok(value.clone())
                } else {
                    Err(must_be())
                }
            }
            (Kind::ImgSize, Value::Integer(i)) => {
                if *i > 0 && i % 32 == 0 {
                    Ok(value.clone())
                } else {
                    let nearest = nearest_multiple_of_32(*i);
                    Err(bad_value(format!(
                        "must be a positive multiple of 32; use {nearest} or another multiple of 32"
                    )))
                }
            }
            (Kind::Float { low, high }, Value::Integer(_) | Value::Float(_)) => {
                let x = value
                    .as_float()
                    .or_else(|| value.as_integer().map(|i| i as f64))
                    .unwrap_or(f64::NAN);
                let above = match low {
                    Limit::Open => true,
                    Limit::Incl(a) => x >= *a,
                    Limit::Excl(a) => x > *a,
                };
                let below = match high {
                    Limit::Open => true,
                    Limit::Incl(b) => x <= *b,
                    Limit::Excl(b) => x < *b,
                };
                if x.is_finite() && above && below {
                    Ok(Value::Float(x))
                } else {
                    Err(must_be())
                }
            }
            (Kind::Text | Kind::Path, Value::String(s)) => {
                if s.trim().is_empty() {
                    Err(must_be())
                } else {
                    Ok(value.clone())
                }
            }
            (Kind::Device, Value::String(s)) => {
                canonical_device(s).map(Value::String).ok_or_else(must_be)
            }
            (Kind::Device, Value::Integer(i)) => canonical_device(&i.to_string())
                .map(Value::String)
                .ok_or_else(must_be),
            (Kind::Choice { names, .. }, Value::String(s)) => names
                .iter()
                .find(|n| n.eq_ignore_ascii_case(s.trim()))
                .map(|n| Value::String(n.to_string()))
                .ok_or_else(must_be),
            (
                Kind::Choice {
                    from_bool: Some([off, on]),
                    ..
                },
                Value::Boolean(b),
            ) => Ok(Value::String(if *b { on } else { off }.to_string())),
            _ => Err(wrong_type()),
        }
    }
}

/// The positive multiple of 32 closest to `i` (ties go down).
fn nearest_multiple_of_32(i: i64) -> i64 {
    let down = i.div_euclid(32) * 32;
    let nearest = if i - down <= 16 { down } else { down + 32 };
    nearest.max(32)
}

/// A value as TOML, shortened for a message.
fn show(value: &Value) -> String {
    const MAX_CHARS: usize = 60;
    let text = value.to_string();
    if text.chars().count() > MAX_CHARS {
        let head: String = text.chars().take(MAX_CHARS).collect();
        format!("{head}…")
    } else {
        text
    }
}

fn type_phrase(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

/// Where each value of the table being checked came from: `--set` arguments by key, else `default`.
#[derive(Debug)]
pub(crate) struct Origins {
    default: Origin,
    set: HashMap<String, String>,
}

impl Origins {
    pub(crate) fn new(default: Origin) -> Self {
        Self {
            default,
            set: HashMap::new(),
        }
    }

    fn of(&self, key: &str) -> Origin {
        match self.set.get(key) {
            Some(arg) => Origin::Set(arg.clone()),
            None => self.default.clone(),
        }
    }
}

fn section(name: &str) -> Option<&'static SectionSpec> {
    SECTIONS.iter().find(|s| s.name == name)
}

fn section_names() -> Vec<&'static str> {
    SECTIONS.iter().map(|s| s.name).collect()
}

/// Whether `word` is a likely misspelling of `candidate`.
fn is_close(word: &str, candidate: &str) -> bool {
    let distance = strsim::levenshtein(word, candidate);
    let longest = word.chars().count().max(candidate.chars().count());
    strsim::jaro_winkler(word, candidate) > 0.8 || (distance <= 2 && 2 * distance < longest)
}

/// The candidates close to `word`, closest first (at most two).
fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut close: Vec<(usize, f64, &str)> = candidates
        .into_iter()
        .filter(|c| is_close(word, c))
        .map(|c| {
            (
                strsim::levenshtein(word, c),
                strsim::jaro_winkler(word, c),
                c,
            )
        })
        .collect();
    close.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
    close.into_iter().take(2).map(|(_, _, c)| c).collect()
}

/// Full keys (`augment.scale`) of every section that has a key named exactly `key`, except `skip`.
fn same_key_elsewhere(key: &str, skip: &str) -> Vec<String> {
    SECTIONS
        .iter()
        .filter(|s| s.name != skip && s.key(key).is_some())
        .map(|s| format!("{}.{key}", s.name))
        .collect()
}

/// Full keys close to `key` across all sections.
fn close_anywhere(key: &str) -> Vec<String> {
    let all: Vec<(String, &str)> = SECTIONS
        .iter()
        .flat_map(|s| {
            s.keys
                .iter()
                .map(move |k| (format!("{}.{}", s.name, k.name), k.name))
        })
        .collect();
    let names = closest(key, all.iter().map(|(_, name)| *name));
    all.iter()
        .filter(|(_, name)| names.contains(name))
        .map(|(full, _)| full.clone())
        .take(2)
        .collect()
}

/// Ultralytics `default.yaml` names whose setting here has another name.
const ULTRALYTICS_NAMES: &[(&str, &str)] = &[
    ("amp", "train.precision"),
    ("pretrained", "model.weights"),
    ("data", "data.dataset"),
    ("model", "model.arch"),
];

/// Suggestions for a key that section `section` does not have: our name for an Ultralytics key, else the same
/// key in another section, else a close key in this section, else a close key anywhere.
fn suggest_key(section: &SectionSpec, key: &str) -> Vec<String> {
    if let Some((_, ours)) = ULTRALYTICS_NAMES.iter().find(|(theirs, _)| *theirs == key) {
        return vec![ours.to_string()];
    }
    let elsewhere = same_key_elsewhere(key, section.name);
    if !elsewhere.is_empty() {
        return elsewhere;
    }
    let here = closest(key, section.key_names());
    if !here.is_empty() {
        return here
            .iter()
            .map(|k| format!("{}.{k}", section.name))
            .collect();
    }
    close_anywhere(key)
}

/// Suggestions for a plain key outside any section.
fn suggest_outside(key: &str) -> Vec<String> {
    if let Some((_, ours)) = ULTRALYTICS_NAMES.iter().find(|(theirs, _)| *theirs == key) {
        return vec![ours.to_string()];
    }
    let exact = same_key_elsewhere(key, "");
    if exact.is_empty() {
        close_anywhere(key)
    } else {
        exact
    }
}

/// Checks every section and key of `table`. Returns the accepted values, normalised, and the problems.
pub(crate) fn check_table(table: &Table, origins: &Origins) -> (Table, Vec<Problem>) {
    let mut clean = Table::new();
    let mut problems = Vec::new();
    for (name, value) in table {
        let Some(spec) = section(name) else {
            let kind = match value {
                Value::Table(_) => ProblemKind::UnknownSection {
                    suggestions: closest(name, section_names())
                        .into_iter()
                        .map(String::from)
                        .collect(),
                    allowed: section_names(),
                },
                _ => ProblemKind::OutsideSection {
                    suggestions: suggest_outside(name),
                },
            };
            problems.push(Problem {
                key: name.clone(),
                origin: origins.of(name),
                kind,
            });
            continue;
        };
        let Value::Table(keys) = value else {
            problems.push(Problem {
                key: name.clone(),
                origin: origins.of(name),
                kind: ProblemKind::WrongType {
                    value: show(value),
                    expected: format!(
                        "a table (a [{name}] section with keys {})",
                        spec.key_names().join(", ")
                    ),
                    found: type_phrase(value),
                },
            });
            continue;
        };
        let mut clean_keys = Table::new();
        for (key, value) in keys {
            let full = format!("{name}.{key}");
            let origin = origins.of(&full);
            match spec.key(key) {
                None => problems.push(Problem {
                    kind: ProblemKind::UnknownKey {
                        suggestions: suggest_key(spec, key),
                        allowed: spec.key_names(),
                    },
                    key: full,
                    origin,
                }),
                Some(key_spec) => match key_spec.kind.check(value) {
                    Ok(normalised) => {
                        clean_keys.insert(key.clone(), normalised);
                    }
                    Err(kind) => problems.push(Problem {
                        key: full,
                        origin,
                        kind,
                    }),
                },
            }
        }
        clean.insert(name.clone(), Value::Table(clean_keys));
    }
    (clean, problems)
}

/// Whether a `--set` value means "leave this optional key out".
fn means_unset(raw: &str) -> bool {
    raw.is_empty() || raw.eq_ignore_ascii_case("none") || raw.eq_ignore_ascii_case("null")
}

/// Reads a `--set` value: as a TOML value if it is one (and, for a string key, a string), else as the raw text.
fn parse_override_value(raw: &str, kind: Option<&Kind>) -> Value {
    match raw.parse::<Value>() {
        Ok(Value::String(s)) => Value::String(s),
        Ok(value) if !kind.is_some_and(Kind::wants_text) => value,
        // `--set train.name=2024` names a run "2024"; `--set model.arch=yolo11` is not TOML but means "yolo11".
        Ok(_) | Err(_) => Value::String(raw.to_string()),
    }
}

/// Applies each `--set section.key=value` to `table`, recording its origin; malformed arguments and keys
/// outside any section become problems.
pub(crate) fn apply_overrides(
    table: &mut Table,
    overrides: &[String],
    origins: &mut Origins,
    problems: &mut Vec<Problem>,
) {
    for arg in overrides {
        let bad = |reason: &str| Problem {
            key: arg.clone(),
            origin: Origin::Set(arg.clone()),
            kind: ProblemKind::BadOverride {
                reason: reason.to_string(),
            },
        };
        let Some((path, raw)) = arg.split_once('=') else {
            problems.push(bad("expected section.key=value, e.g. --set train.epochs=3"));
            continue;
        };
        let (path, raw) = (path.trim(), raw.trim());
        let parts: Vec<&str> = path.split('.').map(str::trim).collect();
        match parts.as_slice() {
            [key] if !key.is_empty() => problems.push(Problem {
                key: key.to_string(),
                origin: Origin::Set(arg.clone()),
                kind: ProblemKind::OutsideSection {
                    suggestions: suggest_outside(key),
                },
            }),
            [section_name, key] if !section_name.is_empty() && !key.is_empty() => {
                let spec = section(section_name).and_then(|s| s.key(key));
                let entry = table
                    .entry(section_name.to_string())
                    .or_insert_with(|| Value::Table(Table::new()));
                // A file's malformed `section = value` is replaced: the override wins.
                if !entry.is_table() {
                    *entry = Value::Table(Table::new());
                }
                let Some(keys) = entry.as_table_mut() else {
                    continue;
                };
                if spec.is_some_and(|s| s.unset.is_some()) && means_unset(raw) {
                    keys.remove(*key);
                } else {
                    keys.insert(
                        key.to_string(),
                        parse_override_value(raw, spec.map(|s| &s.kind)),
                    );
                }
                origins
                    .set
                    .insert(format!("{section_name}.{key}"), arg.clone());
                origins
                    .set
                    .entry(section_name.to_string())
                    .or_insert_with(|| arg.clone());
            }
            _ => problems.push(bad("the key must be section.key, e.g. train.epochs")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_multiple_of_32_rounds_to_closest_positive() {
        assert_eq!(nearest_multiple_of_32(650), 640);
        assert_eq!(nearest_multiple_of_32(660), 672);
        assert_eq!(nearest_multiple_of_32(0), 32);
        assert_eq!(nearest_multiple_of_32(-64), 32);
        assert_eq!(nearest_multiple_of_32(17), 32);
    }

    #[test]
    fn float_kind_accepts_integer_and_normalises() {
        let kind = Kind::NON_NEGATIVE;
        assert_eq!(kind.check(&Value::Integer(2)), Ok(Value::Float(2.0)));
    }

    #[test]
    fn float_kind_rejects_nan_and_out_of_range() {
        let kind = Kind::float(Limit::Excl(0.0), Limit::Incl(1.0));
        assert!(kind.check(&Value::Float(f64::NAN)).is_err());
        assert!(kind.check(&Value::Float(0.0)).is_err());
        assert!(kind.check(&Value::Float(1.0)).is_ok());
        assert_eq!(kind.requirement(), "a number in (0, 1]");
    }

    #[test]
    fn choice_kind_normalises_case_and_bools() {
        let kind = Kind::choice_or_bool(&["none", "ram", "disk"], ["none", "ram"]);
        assert_eq!(
            kind.check(&Value::Boolean(true)),
            Ok(Value::String("ram".into()))
        );
        assert_eq!(
            kind.check(&Value::String("DISK".into())),
            Ok(Value::String("disk".into()))
        );
    }

    #[test]
    fn device_kind_reads_index_as_cuda() {
        assert_eq!(
            Kind::Device.check(&Value::Integer(1)),
            Ok(Value::String("cuda:1".into()))
        );
        assert!(Kind::Device.check(&Value::String("mps".into())).is_err());
    }

    #[test]
    fn closest_ignores_unrelated_short_words() {
        assert_eq!(closest("iou", ["box", "cls", "dfl"]), Vec::<&str>::new());
        assert_eq!(closest("epoch", ["epochs", "batch"]), vec!["epochs"]);
    }

    #[test]
    fn override_value_falls_back_to_text() {
        assert_eq!(parse_override_value("3", None), Value::Integer(3));
        assert_eq!(parse_override_value("1e-3", None), Value::Float(1e-3));
        assert_eq!(
            parse_override_value("../x/y.yaml", None),
            Value::String("../x/y.yaml".into())
        );
        assert_eq!(
            parse_override_value("\"a b\"", None),
            Value::String("a b".into())
        );
        assert_eq!(
            parse_override_value("2024", Some(&Kind::Text)),
            Value::String("2024".into())
        );
    }
}
