//! Every user-visible knob: the TOML config files of `configs/`, their defaults, `--set section.key=value`
//! overrides, and the validation that turns a malformed config into an error naming the key, its origin and
//! the allowed values (never a panic).
//!
//! This is Ultralytics' `yolo train model=... data=... epochs=...` as files. Defaults are those of
//! Ultralytics 8.4's `ultralytics/cfg/default.yaml` unless a field's doc says otherwise.
//!
//! Reading a config: the text is parsed into a `toml::Table`, the overrides are applied to it, the `schema`
//! walk checks every section and key against the `KEYS` table of its section (unknown keys with suggestions,
//! types, ranges, enum words), and only then does serde build the [`Config`].

mod choices;
mod error;
mod schema;
mod sections;

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

pub use choices::{
    Arch, CacheMode, ExportFormat, Kernels, OptimizerKind, ParseChoiceError, Precision, ScaleName,
    Split, DEVICE_WORDS,
};
pub use error::{ConfigError, Origin, Problem, ProblemKind};
pub use sections::{
    AugmentSection, DataSection, EvalSection, ExportSection, ModelSection, TrainSection,
};

use schema::{Origins, SectionSpec};

/// The sections in file order, each with its keys' rules.
pub(crate) const SECTIONS: &[SectionSpec] = &[
    SectionSpec {
        name: "model",
        keys: ModelSection::KEYS,
    },
    SectionSpec {
        name: "data",
        keys: DataSection::KEYS,
    },
    SectionSpec {
        name: "train",
        keys: TrainSection::KEYS,
    },
    SectionSpec {
        name: "augment",
        keys: AugmentSection::KEYS,
    },
    SectionSpec {
        name: "eval",
        keys: EvalSection::KEYS,
    },
    SectionSpec {
        name: "export",
        keys: ExportSection::KEYS,
    },
];

/// A whole config: one field per `[section]`. `Config::default()` is valid (yolov8n, `datasets/shapes.toml`,
/// default.yaml's hyperparameters).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[model]`: family, size, classes, initial weights.
    pub model: ModelSection,
    /// `[data]`: the dataset and how it is read.
    pub data: DataSection,
    /// `[train]`: run, optimizer, schedule, loss gains, mixed precision.
    pub train: TrainSection,
    /// `[augment]`: training-time augmentation.
    pub augment: AugmentSection,
    /// `[eval]`: NMS and evaluation settings.
    pub eval: EvalSection,
    /// `[export]`: the exported model.
    pub export: ExportSection,
}

impl Config {
    /// Reads the config file at `path` and applies `overrides` (`"section.key=value"`, as given to `--set`).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::from_toml_str(&text, &path.display().to_string(), overrides)
    }

    /// Parses config text; `source_name` (usually the file name) is named in every error.
    pub fn from_toml_str(
        text: &str,
        source_name: &str,
        overrides: &[String],
    ) -> Result<Config, ConfigError> {
        let mut table: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                source_name: source_name.to_string(),
                message: e.to_string().trim_end().to_string(),
            })?;
        let mut origins = Origins::new(Origin::File(source_name.to_string()));
        let mut problems = Vec::new();
        schema::apply_overrides(&mut table, overrides, &mut origins, &mut problems);
        let (clean, more) = schema::check_table(&table, &origins);
        problems.extend(more);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        clean.try_into().map_err(|e: toml::de::Error| {
            ConfigError::Invalid(vec![Problem {
                key: "config".to_string(),
                origin: Origin::File(source_name.to_string()),
                kind: ProblemKind::Other(e.to_string().trim_end().to_string()),
            }])
        })
    }

    /// The built-in defaults (what `configs/yolo.toml` documents) with `overrides` applied: the config of a
    /// subcommand run without `--config`, so the binary works from any folder.
    pub fn from_defaults(overrides: &[String]) -> Result<Config, ConfigError> {
        Self::from_toml_str("", "the built-in defaults", overrides)
    }

    /// The `section.key`s that config `text` and `overrides` set, as opposed to those left at their built-in
    /// defaults (e.g. so that a checkpoint's own description wins over a default but not over a user's choice).
    /// Text that does not parse sets nothing (reading the config reports it).
    pub fn explicit_keys(text: &str, overrides: &[String]) -> std::collections::BTreeSet<String> {
        let mut keys = std::collections::BTreeSet::new();
        if let Ok(table) = text.parse::<Table>() {
            for (section, value) in &table {
                if let Some(inner) = value.as_table() {
                    keys.extend(inner.keys().map(|k| format!("{section}.{k}")));
                }
            }
        }
        keys.extend(
            overrides
                .iter()
                .filter_map(|o| o.split_once('=').map(|(k, _)| k.trim().to_string())),
        );
        keys
    }

    /// Checks every value of an already built config (e.g. one changed in code) by the same rules as a file.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let table = self.to_table()?;
        let (_, problems) = schema::check_table(&table, &Origins::new(Origin::Resolved));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The fully resolved config as TOML (for a run's `args.toml`): every key, in file order, with each
    /// omitted optional key as a comment saying what it resolves to. Reading it back gives the same config.
    pub fn to_toml_string(&self) -> String {
        let table = match self.to_table() {
            Ok(table) => table,
            Err(e) => return format!("# this config cannot be written as TOML: {e}\n"),
        };
        let mut out = String::new();
        for (i, section) in SECTIONS.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let _ = writeln!(out, "[{}]", section.name);
            let values = table.get(section.name).and_then(Value::as_table);
            for key in section.keys {
                match (values.and_then(|v| v.get(key.name)), key.unset) {
                    (Some(value), _) => {
                        let _ = writeln!(out, "{} = {value}", key.name);
                    }
                    (None, Some(meaning)) => {
                        let _ = writeln!(out, "# {} unset: {meaning}", key.name);
                    }
                    (None, None) => {}
                }
            }
        }
        out
    }

    fn to_table(&self) -> Result<Table, ConfigError> {
        Table::try_from(self).map_err(|e| {
            ConfigError::Invalid(vec![Problem {
                key: "config".to_string(),
                origin: Origin::Resolved,
                kind: ProblemKind::Other(format!("cannot be written as TOML: {e}")),
            }])
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn parse(text: &str, overrides: &[&str]) -> Result<Config, ConfigError> {
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        Config::from_toml_str(text, "test.toml", &overrides)
    }

    fn error(text: &str, overrides: &[&str]) -> String {
        match parse(text, overrides) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn configs_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
    }

    #[test]
    fn default_config_is_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn empty_text_gives_default_config() {
        assert_eq!(parse("", &[]).unwrap(), Config::default());
    }

    #[test]
    fn schema_matches_structs() {
        // With every optional key set, the serialised keys are exactly the KEYS tables, in order.
        let mut config = Config::default();
        config.model.nc = Some(3);
        config.model.weights = Some(PathBuf::from("w.safetensors"));
        config.data.images = Some(PathBuf::from("images"));
        config.eval.conf = Some(0.5);
        config.export.imgsz = Some(320);
        for (config, with_optional) in [(Config::default(), false), (config, true)] {
            let table = Table::try_from(&config).unwrap();
            let sections: Vec<&str> = table.keys().map(String::as_str).collect();
            let mut expected_sections: Vec<&str> = SECTIONS.iter().map(|s| s.name).collect();
            let mut sections_sorted = sections.clone();
            sections_sorted.sort_unstable();
            expected_sections.sort_unstable();
            assert_eq!(sections_sorted, expected_sections);
            for section in SECTIONS {
                let mut keys: Vec<&str> = table[section.name]
                    .as_table()
                    .unwrap()
                    .keys()
                    .map(String::as_str)
                    .collect();
                let mut expected: Vec<&str> = section
                    .keys
                    .iter()
                    .filter(|k| with_optional || k.unset.is_none())
                    .map(|k| k.name)
                    .collect();
                keys.sort_unstable();
                expected.sort_unstable();
                assert_eq!(keys, expected, "[{}]", section.name);
            }
        }
    }

    #[test]
    fn to_toml_string_round_trips() {
        let mut config = Config::default();
        config.model.arch = Arch::Yolo11;
        config.model.nc = Some(7);
        config.model.weights = Some(PathBuf::from(r"C:\weights\yolo11s.safetensors"));
        config.data.cache = CacheMode::Disk;
        config.train.optimizer = OptimizerKind::Adamw;
        config.train.lr0 = 1e-3;
        config.train.device = "cuda:1".to_string();
        config.eval.conf = Some(0.25);
        let text = config.to_toml_string();
        assert!(text.contains("optimizer = \"AdamW\""), "{text}");
        assert!(text.contains("# imgsz unset: train.imgsz"), "{text}");
        assert_eq!(parse(&text, &[]).unwrap(), config);
        let default_text = Config::default().to_toml_string();
        assert_eq!(parse(&default_text, &[]).unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_suggests_closest() {
        let message = error("[train]\nepoch = 3\n", &[]);
        assert!(
            message.starts_with(
                "unknown key `train.epoch` in test.toml (did you mean `train.epochs`?); \
                 the keys of [train] are epochs, batch, imgsz, "
            ),
            "{message}"
        );
    }

    #[test]
    fn ultralytics_key_names_point_to_ours() {
        let message = error("[train]\namp = true\n", &[]);
        assert!(
            message.contains("(did you mean `train.precision`?)"),
            "{message}"
        );
    }

    #[test]
    fn unknown_key_in_wrong_section_suggests_its_section() {
        let message = error("[train]\nfliplr = 0.5\n", &[]);
        assert!(
            message.contains("(did you mean `augment.fliplr`?)"),
            "{message}"
        );
        let message = error("[train]\nscale = 0.5\n", &[]);
        assert!(
            message.contains("did you mean `model.scale` or `augment.scale`?"),
            "{message}"
        );
    }

    #[test]
    fn unknown_section_suggests_closest() {
        let message = error("[trian]\nepochs = 3\n", &[]);
        assert_eq!(
            message,
            "unknown section `[trian]` in test.toml (did you mean `[train]`?); \
             the sections are [model], [data], [train], [augment], [eval], [export]"
        );
    }

    #[test]
    fn key_outside_section_suggests_full_key() {
        let message = error("epochs = 3\n", &[]);
        assert_eq!(
            message,
            "key `epochs` in test.toml is outside any section (did you mean `train.epochs`?); \
             write it under its [section] header"
        );
    }

    #[test]
    fn section_that_is_not_a_table_is_rejected() {
        let message = error("data = \"coco.yaml\"\n", &[]);
        assert!(
            message.starts_with(
                "data = \"coco.yaml\" in test.toml: expected a table (a [data] section with keys dataset,"
            ),
            "{message}"
        );
    }

    #[test]
    fn wrong_type_names_key() {
        let message = error("[train]\nepochs = \"ten\"\n", &[]);
        assert_eq!(
            message,
            "train.epochs = \"ten\" in test.toml: expected an integer ≥ 1, found a string"
        );
        let message = error("[train]\ncos_lr = 1\n", &[]);
        assert_eq!(
            message,
            "train.cos_lr = 1 in test.toml: expected a boolean (true or false), found an integer"
        );
    }

    #[test]
    fn integer_is_accepted_where_float_expected() {
        let config = parse("[train]\nlr0 = 1\n[augment]\nmosaic = 0\n", &[]).unwrap();
        assert_eq!(config.train.lr0, 1.0);
        assert_eq!(config.augment.mosaic, 0.0);
    }

    #[test]
    fn negative_epochs_is_rejected() {
        let message = error("[train]\nepochs = -3\n", &[]);
        assert_eq!(
            message,
            "train.epochs = -3 in test.toml: must be an integer ≥ 1"
        );
    }

    #[test]
    fn imgsz_not_multiple_of_32_suggests_nearest() {
        let message = error("[train]\nimgsz = 650\n", &[]);
        assert_eq!(
            message,
            "train.imgsz = 650 in test.toml: must be a positive multiple of 32; \
             use 640 or another multiple of 32"
        );
        assert!(error("[export]\nimgsz = 0\n", &[]).contains("use 32 or another"));
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let cases = [
            (
                "[train]\nbatch = 0",
                "train.batch = 0 in test.toml: must be an integer ≥ 1",
            ),
            ("[train]\nworkers = -1", "must be an integer ≥ 0"),
            (
                "[train]\nlr0 = 0.0",
                "train.lr0 = 0.0 in test.toml: must be a number > 0",
            ),
            ("[train]\nlrf = 1.5", "must be a number in (0, 1]"),
            (
                "[augment]\nfliplr = 1.5",
                "augment.fliplr = 1.5 in test.toml: must be a number in [0, 1]",
            ),
            ("[augment]\nmixup = -0.1", "must be a number in [0, 1]"),
            (
                "[augment]\nhsv_s = 2",
                "augment.hsv_s = 2 in test.toml: must be a number in [0, 1]",
            ),
            ("[eval]\niou = 0", "must be a number in (0, 1]"),
            (
                "[eval]\nconf = 1.1",
                "eval.conf = 1.1 in test.toml: must be a number in [0, 1]",
            ),
            ("[eval]\nmax_det = 0", "must be an integer ≥ 1"),
            (
                "[model]\nnc = 0",
                "model.nc = 0 in test.toml: must be an integer ≥ 1",
            ),
            ("[data]\nfraction = 0", "must be a number in (0, 1]"),
            ("[data]\ndataset = \"\"", "must be a non-empty path string"),
            ("[train]\nlr0 = nan", "must be a number > 0"),
            ("[export]\nopset = 5", "must be an integer from 13 to 17"),
        ];
        for (text, expected) in cases {
            let message = error(text, &[]);
            assert!(message.contains(expected), "{text}: {message}");
        }
    }

    #[test]
    fn bad_enum_lists_allowed_values() {
        let message = error("[model]\narch = \"yolov5\"\n", &[]);
        assert_eq!(
            message,
            "model.arch = \"yolov5\" in test.toml: must be one of \"yolov8\", \"yolo11\""
        );
        let message = error("[train]\ndevice = \"mps\"\n", &[]);
        assert!(
            message.ends_with(
                "must be one of \"cpu\", \"flex\", \"ndarray\", \"cuda\", \"gpu\" or \"cuda:N\" \
                 (N = GPU index, e.g. \"cuda:0\")"
            ),
            "{message}"
        );
    }

    #[test]
    fn enums_are_read_case_insensitively() {
        let text = "[model]\nscale = \"S\"\n[train]\noptimizer = \"sgd\"\nprecision = \"BF16\"\ndevice = \"CUDA\"";
        let config = parse(text, &[]).unwrap();
        assert_eq!(config.model.scale, ScaleName::S);
        assert_eq!(config.train.optimizer, OptimizerKind::Sgd);
        assert_eq!(config.train.precision, Precision::Bf16);
        assert_eq!(config.train.device, "cuda");
    }

    #[test]
    fn cache_accepts_ultralytics_bools() {
        assert_eq!(
            parse("[data]\ncache = true", &[]).unwrap().data.cache,
            CacheMode::Ram
        );
        assert_eq!(
            parse("[data]\ncache = false", &[]).unwrap().data.cache,
            CacheMode::None
        );
        assert_eq!(
            parse("", &["data.cache=true"]).unwrap().data.cache,
            CacheMode::Ram
        );
        assert_eq!(
            parse("", &["data.cache=disk"]).unwrap().data.cache,
            CacheMode::Disk
        );
    }

    #[test]
    fn set_override_parses_toml_values() {
        let config = parse(
            "",
            &[
                "train.epochs=3",
                "model.arch=yolo11",
                "train.lr0=1e-3",
                "data.dataset=../x/y.yaml",
                "train.device=0",
                "train.name=2024",
                "model.weights=\"w 1.safetensors\"",
                "eval.agnostic_nms = true",
                "train.optimizer=AdamW",
            ],
        )
        .unwrap();
        assert_eq!(config.train.epochs, 3);
        assert_eq!(config.model.arch, Arch::Yolo11);
        assert_eq!(config.train.lr0, 1e-3);
        assert_eq!(config.data.dataset, PathBuf::from("../x/y.yaml"));
        assert_eq!(config.train.device, "cuda:0");
        assert_eq!(config.train.name, "2024");
        assert_eq!(config.model.weights, Some(PathBuf::from("w 1.safetensors")));
        assert!(config.eval.agnostic_nms);
        assert_eq!(config.train.optimizer, OptimizerKind::Adamw);
    }

    #[test]
    fn set_override_wins_over_file() {
        let text = "[train]\nepochs = -3\nbatch = 8\n";
        let config = parse(text, &["train.epochs=5"]).unwrap();
        assert_eq!((config.train.epochs, config.train.batch), (5, 8));
    }

    #[test]
    fn set_can_unset_optional_key() {
        let config = parse("[model]\nnc = 3\n", &["model.nc=none"]).unwrap();
        assert_eq!(config.model.nc, None);
    }

    #[test]
    fn set_without_equals_is_rejected() {
        let message = error("", &["train.epochs"]);
        assert_eq!(
            message,
            "--set `train.epochs`: expected section.key=value, e.g. --set train.epochs=3"
        );
        let message = error("", &["a.b.c=1"]);
        assert!(message.contains("the key must be section.key"), "{message}");
    }

    #[test]
    fn set_unknown_key_names_set() {
        let message = error("", &["train.epoch=3"]);
        assert!(
            message.starts_with(
                "unknown key `train.epoch` from `--set train.epoch=3` (did you mean `train.epochs`?)"
            ),
            "{message}"
        );
        let message = error("", &["epochs=3"]);
        assert!(
            message.starts_with("key `epochs` from `--set epochs=3` is outside any section (did you mean `train.epochs`?)"),
            "{message}"
        );
        let message = error("", &["trian.epochs=3"]);
        assert!(message.contains("did you mean `[train]`?"), "{message}");
    }

    #[test]
    fn set_bad_value_names_set() {
        let message = error("[train]\nepochs = 3\n", &["train.epochs=-3"]);
        assert_eq!(
            message,
            "train.epochs = -3 from `--set train.epochs=-3`: must be an integer ≥ 1"
        );
        let message = error("", &["model.arch=yolov5"]);
        assert_eq!(
            message,
            "model.arch = \"yolov5\" from `--set model.arch=yolov5`: must be one of \"yolov8\", \"yolo11\""
        );
    }

    #[test]
    fn all_problems_are_reported() {
        let message = error(
            "[train]\nepochs = 0\nbatch = \"x\"\n",
            &["augment.mosaic=2"],
        );
        assert!(
            message.starts_with("3 problems in the config:\n  - "),
            "{message}"
        );
        assert!(message.contains("train.epochs = 0"), "{message}");
        assert!(message.contains("train.batch = \"x\""), "{message}");
        assert!(
            message.contains("augment.mosaic = 2 from `--set augment.mosaic=2`"),
            "{message}"
        );
    }

    #[test]
    fn odd_values_are_errors_not_panics() {
        let cases = [
            "[train]\nimgsz = [640, 480]",
            "[[train]]\nepochs = 3",
            "[train]\nepochs = 1979-05-27",
            "[train]\nlr0 = inf",
            "[train]\nepochs = { a = 1 }",
            "[model]\nweights = 3",
            "[train.device]\nx = 1",
            "train = 3",
        ];
        for text in cases {
            assert!(parse(text, &[]).is_err(), "{text}");
        }
        for arg in [
            "=",
            "=3",
            ".=3",
            "train.=3",
            ".epochs=3",
            "train.epochs==3",
            "x",
        ] {
            assert!(parse("", &[arg]).is_err(), "--set {arg}");
        }
    }

    #[test]
    fn toml_syntax_error_keeps_line_and_column() {
        let message = error("[train]\nepochs = \n", &[]);
        assert!(
            message.starts_with("test.toml is not valid TOML: "),
            "{message}"
        );
        assert!(message.contains("line 2, column"), "{message}");
    }

    #[test]
    fn missing_file_names_path() {
        let path = Path::new("configs/does-not-exist.toml");
        let message = Config::load(path, &[]).unwrap_err().to_string();
        assert!(
            message.starts_with("cannot read config file configs/does-not-exist.toml: "),
            "{message}"
        );
    }

    #[test]
    fn validate_checks_a_config_built_in_code() {
        let mut config = Config::default();
        config.train.imgsz = 100;
        let message = config.validate().unwrap_err().to_string();
        assert_eq!(
            message,
            "train.imgsz = 100: must be a positive multiple of 32; use 96 or another multiple of 32"
        );
        config.train.imgsz = 640;
        config.train.device = "tpu".to_string();
        assert!(config.validate().is_err());
    }

    #[test]
    fn shipped_configs_parse() {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(configs_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let config = Config::load(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
                config
                    .validate()
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                names.push(path.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
        names.sort();
        for expected in ["coco.toml", "coco128.toml", "objects365.toml", "yolo.toml"] {
            assert!(
                names.iter().any(|n| n == expected),
                "configs/{expected} missing"
            );
        }
    }

    /// yolo.toml shows every key, either set or as `# key = default`; commented defaults must be the real ones.
    #[test]
    fn yolo_toml_documents_every_key() {
        let text = std::fs::read_to_string(configs_dir().join("yolo.toml")).unwrap();
        let defaults = Table::try_from(Config::default()).unwrap();
        let mut seen: Vec<String> = Vec::new();
        let mut section: Option<&SectionSpec> = None;
        for line in text.lines() {
            let line = line.trim();
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = SECTIONS.iter().find(|s| s.name == name);
                continue;
            }
            let (commented, body) = match line.strip_prefix('#') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let Some((key, value)) = body.split_once(" = ") else {
                continue;
            };
            let Some(section) = section else { continue };
            let Some(spec) = section.keys.iter().find(|k| k.name == key.trim()) else {
                continue;
            };
            let full = format!("{}.{}", section.name, spec.name);
            if commented && spec.unset.is_none() {
                let written: Value = value.trim().parse().unwrap();
                let normalised = Table::try_from(
                    parse(
                        &format!("[{}]\n{} = {written}", section.name, spec.name),
                        &[],
                    )
                    .unwrap(),
                )
                .unwrap();
                assert_eq!(
                    normalised[section.name][spec.name], defaults[section.name][spec.name],
                    "yolo.toml shows a wrong default for {full}"
                );
            }
            seen.push(full);
        }
        for section in SECTIONS {
            for key in section.keys {
                let full = format!("{}.{}", section.name, key.name);
                assert!(seen.contains(&full), "yolo.toml does not show {full}");
            }
        }
    }
}
