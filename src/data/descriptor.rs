//! Dataset descriptors: an Ultralytics data yaml (`path`, `train`, `val`, `test`, `names`, `nc`) or the same
//! keys as a yolo-burn TOML file.
//!
//! One deliberate difference from Ultralytics: a relative `path` (including `.` and an empty one) resolves
//! against the descriptor's own folder, not the current directory or a global datasets folder, so a descriptor
//! and its images can move together.

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

use crate::YoloError;

/// Which split of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitName {
    Train,
    Val,
    Test,
}

impl SplitName {
    pub fn key(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Val => "val",
            Self::Test => "test",
        }
    }
}

/// A parsed descriptor with every path resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSpec {
    /// The descriptor file.
    pub file: PathBuf,
    /// The dataset root (`path`).
    pub root: PathBuf,
    /// Image folders or list files of each split (`train`, `val`, `test`: a string or a list).
    pub train: Vec<PathBuf>,
    pub val: Vec<PathBuf>,
    pub test: Vec<PathBuf>,
    /// Class names by index.
    pub names: Vec<String>,
    /// `generate = "shapes"`: the dataset is drawn by yolo-burn on first use (the embedded default).
    pub generate: Option<String>,
}

impl DatasetSpec {
    pub fn split(&self, split: SplitName) -> &[PathBuf] {
        match split {
            SplitName::Train => &self.train,
            SplitName::Val => &self.val,
            SplitName::Test => &self.test,
        }
    }

    /// Reads a `.yaml`/`.yml` (Ultralytics) or `.toml` descriptor.
    pub fn read(file: &Path) -> Result<Self, YoloError> {
        let text = std::fs::read_to_string(file).map_err(|source| YoloError::Io {
            path: file.into(),
            source,
        })?;
        let bad = |detail: String| YoloError::Dataset {
            path: file.into(),
            line: None,
            detail,
        };
        let is_toml = file.extension().is_some_and(|e| e == "toml");
        let fields = if is_toml {
            fields_from_toml(&text).map_err(bad)?
        } else {
            fields_from_yaml(&text).map_err(bad)?
        };
        let base = file.parent().unwrap_or(Path::new("."));
        let root = match fields.path.as_deref().map(str::trim) {
            None | Some("") | Some(".") => base.to_path_buf(),
            Some(p) if Path::new(p).is_absolute() => PathBuf::from(p),
            Some(p) => base.join(p),
        };
        let resolve = |items: Vec<String>| -> Vec<PathBuf> {
            items
                .into_iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| root.join(s.trim()))
                .collect()
        };
        let names = match (fields.names, fields.nc) {
            (Some(names), Some(nc)) if names.len() != nc => {
                return Err(bad(format!(
                    "nc = {nc} but names has {} entries",
                    names.len()
                )));
            }
            (Some(names), _) => names,
            (None, Some(nc)) => (0..nc).map(|i| format!("class{i}")).collect(),
            (None, None) => {
                return Err(bad(
                    "no `names` (or `nc`): the class list is required".into()
                ))
            }
        };
        let spec = DatasetSpec {
            file: file.into(),
            train: resolve(fields.train),
            val: resolve(fields.val),
            test: resolve(fields.test),
            root,
            names,
            generate: fields.generate,
        };
        if spec.train.is_empty() && spec.val.is_empty() {
            return Err(bad("neither `train` nor `val` is set".into()));
        }
        Ok(spec)
    }
}

/// The descriptor keys, before path resolution.
#[derive(Default)]
struct Fields {
    path: Option<String>,
    train: Vec<String>,
    val: Vec<String>,
    test: Vec<String>,
    names: Option<Vec<String>>,
    nc: Option<usize>,
    generate: Option<String>,
}

fn fields_from_yaml(text: &str) -> Result<Fields, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let doc = docs.first().ok_or("empty YAML document")?;
    let string = |key: &str| match &doc[key] {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        _ => None,
    };
    let list = |key: &str| -> Vec<String> {
        match &doc[key] {
            Yaml::String(s) => vec![s.clone()],
            Yaml::Array(items) => items
                .iter()
                .filter_map(|y| y.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        }
    };
    let names = match &doc["names"] {
        Yaml::Array(items) => Some(
            items
                .iter()
                .map(yaml_scalar)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Yaml::Hash(map) => {
            let mut pairs = Vec::with_capacity(map.len());
            for (k, v) in map {
                let index = k
                    .as_i64()
                    .ok_or_else(|| format!("names key {k:?} is not an integer"))?;
                pairs.push((index, yaml_scalar(v)?));
            }
            pairs.sort_by_key(|(i, _)| *i);
            if pairs
                .iter()
                .enumerate()
                .any(|(pos, (i, _))| *i != pos as i64)
            {
                return Err("names keys must be 0, 1, 2, … without gaps".into());
            }
            Some(pairs.into_iter().map(|(_, n)| n).collect())
        }
        Yaml::Null | Yaml::BadValue => None,
        other => return Err(format!("names must be a list or a map, found {other:?}")),
    };
    let nc = match &doc["nc"] {
        Yaml::Integer(n) if *n >= 1 => Some(*n as usize),
        Yaml::Null | Yaml::BadValue => None,
        other => return Err(format!("nc must be a positive integer, found {other:?}")),
    };
    Ok(Fields {
        path: string("path"),
        train: list("train"),
        val: list("val"),
        test: list("test"),
        names,
        nc,
        generate: string("generate"),
    })
}

fn yaml_scalar(y: &Yaml) -> Result<String, String> {
    match y {
        Yaml::String(s) => Ok(s.clone()),
        Yaml::Integer(i) => Ok(i.to_string()),
        Yaml::Real(r) => Ok(r.clone()),
        Yaml::Boolean(b) => Ok(b.to_string()),
        other => Err(format!("class name {other:?} is not a string")),
    }
}

fn fields_from_toml(text: &str) -> Result<Fields, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TomlSpec {
        path: Option<String>,
        #[serde(default)]
        train: OneOrMany,
        #[serde(default)]
        val: OneOrMany,
        #[serde(default)]
        test: OneOrMany,
        names: Option<Vec<String>>,
        nc: Option<usize>,
        generate: Option<String>,
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(untagged)]
    enum OneOrMany {
        #[default]
        None,
        One(String),
        Many(Vec<String>),
    }
    impl OneOrMany {
        fn into_vec(self) -> Vec<String> {
            match self {
                Self::None => Vec::new(),
                Self::One(s) => vec![s],
                Self::Many(v) => v,
            }
        }
    }
    let spec: TomlSpec =
        toml::from_str(text).map_err(|e| format!("not a valid dataset TOML: {e}"))?;
    Ok(Fields {
        path: spec.path,
        train: spec.train.into_vec(),
        val: spec.val.into_vec(),
        test: spec.test.into_vec(),
        names: spec.names,
        nc: spec.nc,
        generate: spec.generate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_names_map_and_relative_root_resolve_against_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("d.yaml");
        std::fs::write(
            &file,
            "path: .\ntrain: images/train\nval: [images/a, images/b]\nnames:\n  0: cat\n  1: dog\n",
        )
        .expect("write");
        let spec = DatasetSpec::read(&file).expect("read");
        assert_eq!(spec.names, ["cat", "dog"]);
        assert_eq!(spec.train, [dir.path().join("images/train")]);
        assert_eq!(spec.val.len(), 2);
    }

    #[test]
    fn nc_disagreeing_with_names_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("d.yaml");
        std::fs::write(&file, "train: x\nnc: 3\nnames: [a, b]\n").expect("write");
        let err = DatasetSpec::read(&file).expect_err("mismatch");
        assert!(err.to_string().contains("nc = 3"), "{err}");
    }

    #[test]
    fn toml_descriptor_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("d.toml");
        std::fs::write(
            &file,
            "path = \"shapes\"\ntrain = \"images/train\"\nnames = [\"a\"]\ngenerate = \"shapes\"\n",
        )
        .expect("write");
        let spec = DatasetSpec::read(&file).expect("read");
        assert_eq!(spec.root, dir.path().join("shapes"));
        assert_eq!(spec.generate.as_deref(), Some("shapes"));
    }
}
