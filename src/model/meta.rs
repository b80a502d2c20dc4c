//! Weights that describe themselves: the safetensors metadata of a checkpoint names the model it holds
//! (`arch`, `scale`, `nc`, `names` and `imgsz`), so `predict`, `val` and `info` need only the file, as
//! Ultralytics' `yolo predict model=best.pt` does. Our `train` writes these keys; so does
//! scripts/ultralytics_to_safetensors.py (`imgsz` from the checkpoint's `train_args`, which Ultralytics' own
//! `YOLO(best.pt)` keeps too).
//!
//! A config key that the user set (in a config file or with `--set`) and that contradicts the metadata is an
//! error naming both values: building the model from the config would only fail later with hundreds of
//! mismatched tensors. Keys left at their built-in defaults yield to the metadata.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use super::YoloConfig;
use crate::config::{Arch, Config, ScaleName};
use crate::YoloError;

/// The metadata keys, as both writers spell them.
const ARCH: &str = "arch";
const SCALE: &str = "scale";
const NC: &str = "nc";
const NAMES: &str = "names";
const IMGSZ: &str = "imgsz";

/// Input size for weights that do not give one and a user who did not set `train.imgsz`: Ultralytics' 640.
/// Our built-in `train.imgsz` (128) is sized for the embedded dataset, not for somebody else's weights.
pub const UNDESCRIBED_IMGSZ: usize = 640;

/// What a weights file's metadata says about its model; each field absent when the file does not say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WeightsMeta {
    pub arch: Option<Arch>,
    pub scale: Option<ScaleName>,
    pub nc: Option<usize>,
    pub names: Option<Vec<String>>,
    /// The square input size it was trained at.
    pub imgsz: Option<usize>,
}

impl WeightsMeta {
    /// Parses the keys from a safetensors `__metadata__` map; a key with a value that does not parse is an
    /// error naming the file, the key and the value.
    pub fn from_metadata(
        metadata: &HashMap<String, String>,
        path: &Path,
    ) -> Result<Self, YoloError> {
        let bad = |key: &str, value: &str, why: String| YoloError::WeightsMismatch {
            path: path.into(),
            detail: format!("metadata {key} = {value:?}: {why}"),
        };
        let number = |key: &str| -> Result<Option<usize>, YoloError> {
            metadata
                .get(key)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| bad(key, v, "not a positive integer".into()))
                })
                .transpose()
        };
        let arch = metadata
            .get(ARCH)
            .map(|v| v.parse::<Arch>().map_err(|e| bad(ARCH, v, e.to_string())))
            .transpose()?;
        let scale = metadata
            .get(SCALE)
            .map(|v| {
                v.parse::<ScaleName>()
                    .map_err(|e| bad(SCALE, v, e.to_string()))
            })
            .transpose()?;
        let names = metadata
            .get(NAMES)
            .map(|v| {
                serde_json::from_str::<Vec<String>>(v)
                    .map_err(|e| bad(NAMES, v, format!("not a JSON list of strings ({e})")))
            })
            .transpose()?;
        let meta = Self {
            arch,
            scale,
            nc: number(NC)?,
            names,
            imgsz: number(IMGSZ)?,
        };
        if let (Some(nc), Some(names)) = (meta.nc, &meta.names) {
            if names.len() != nc {
                return Err(bad(
                    NAMES,
                    &format!("{} names", names.len()),
                    format!("nc is {nc}"),
                ));
            }
        }
        Ok(meta)
    }

    /// Reads the metadata of the safetensors file at `path` (its header only).
    pub fn read(path: &Path) -> Result<Self, YoloError> {
        Self::from_metadata(&super::weights::read_metadata(path)?, path)
    }

    /// The keys for a safetensors header (what [`WeightsMeta::read`] reads back).
    pub fn to_metadata(&self, out: &mut HashMap<String, String>) {
        if let Some(arch) = self.arch {
            out.insert(ARCH.into(), arch.to_string());
        }
        if let Some(scale) = self.scale {
            out.insert(SCALE.into(), scale.to_string());
        }
        if let Some(nc) = self.nc {
            out.insert(NC.into(), nc.to_string());
        }
        if let Some(names) = &self.names {
            out.insert(
                NAMES.into(),
                serde_json::to_string(names).unwrap_or_else(|_| "[]".into()),
            );
        }
        if let Some(imgsz) = self.imgsz {
            out.insert(IMGSZ.into(), imgsz.to_string());
        }
    }
}

/// The model to build for a weights file, and how to run it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedModel {
    pub model: YoloConfig,
    /// Class names from the metadata, when it has them.
    pub names: Option<Vec<String>>,
    /// Input size: `train.imgsz` when set, else the weights', else [`UNDESCRIBED_IMGSZ`].
    pub imgsz: usize,
}

/// The model `path` holds, from its metadata where it speaks and from `config` elsewhere. `explicit` holds the
/// `section.key`s the user set (config file or `--set`); one that contradicts the metadata is an error naming
/// both values. `fallback_nc` serves when neither the metadata nor `model.nc` gives the class count (a
/// dataset's, say).
pub fn resolve(
    meta: &WeightsMeta,
    path: &Path,
    config: &Config,
    explicit: &BTreeSet<String>,
    fallback_nc: Option<usize>,
) -> Result<ResolvedModel, YoloError> {
    // A key the user set must agree with the weights; otherwise the weights' value wins (below).
    let agree = |key: &str, ours: String, theirs: Option<String>| -> Result<(), YoloError> {
        match theirs {
            Some(theirs) if explicit.contains(key) && theirs != ours => Err(YoloError::WeightsMismatch {
                path: path.into(),
                detail: format!(
                    "{key} = {ours} is set (config file or --set), but the weights' metadata says {theirs}; \
                     remove {key} to use the weights' value, or pass weights made with {ours}"
                ),
            }),
            _ => Ok(()),
        }
    };
    agree(
        "model.arch",
        config.model.arch.to_string(),
        meta.arch.map(|a| a.to_string()),
    )?;
    agree(
        "model.scale",
        config.model.scale.to_string(),
        meta.scale.map(|s| s.to_string()),
    )?;
    if let Some(ours) = config.model.nc {
        agree("model.nc", ours.to_string(), meta.nc.map(|n| n.to_string()))?;
    }
    let arch = meta.arch.unwrap_or(config.model.arch);
    let scale = meta.scale.unwrap_or(config.model.scale);
    let nc = meta
        .nc
        .or(config.model.nc)
        .or(fallback_nc)
        .or(meta.names.as_ref().map(Vec::len))
        .ok_or_else(|| {
            YoloError::InvalidConfig(format!(
                "{}: its metadata does not give the number of classes; set model.nc",
                path.display()
            ))
        })?;
    let imgsz = if explicit.contains("train.imgsz") {
        config.train.imgsz
    } else {
        meta.imgsz.unwrap_or(UNDESCRIBED_IMGSZ)
    };
    Ok(ResolvedModel {
        model: YoloConfig::new(arch, scale, nc),
        names: meta.names.clone().filter(|n| n.len() == nc),
        imgsz,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> WeightsMeta {
        WeightsMeta {
            arch: Some(Arch::Yolo11),
            scale: Some(ScaleName::S),
            nc: Some(2),
            names: Some(vec!["cat".into(), "dog".into()]),
            imgsz: Some(320),
        }
    }

    fn keys(k: &[&str]) -> BTreeSet<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn metadata_round_trips() {
        let mut map = HashMap::new();
        meta().to_metadata(&mut map);
        assert_eq!(
            WeightsMeta::from_metadata(&map, Path::new("w")).unwrap(),
            meta()
        );
    }

    #[test]
    fn defaults_yield_to_the_metadata() {
        let r = resolve(
            &meta(),
            Path::new("w"),
            &Config::default(),
            &keys(&[]),
            Some(80),
        )
        .unwrap();
        assert_eq!(r.model, YoloConfig::new(Arch::Yolo11, ScaleName::S, 2));
        assert_eq!(r.imgsz, 320);
        assert_eq!(r.names.unwrap(), ["cat", "dog"]);
    }

    #[test]
    fn an_explicit_contradiction_names_both_values() {
        let mut config = Config::default();
        config.model.scale = ScaleName::N;
        let err = resolve(
            &meta(),
            Path::new("w.safetensors"),
            &config,
            &keys(&["model.scale"]),
            None,
        )
        .unwrap_err()
        .to_string();
        for needle in ["model.scale = n", "says s", "w.safetensors"] {
            assert!(err.contains(needle), "{needle}: {err}");
        }
        config.model.nc = Some(3);
        let err = resolve(
            &meta(),
            Path::new("w"),
            &Config {
                model: config.model.clone(),
                ..Config::default()
            },
            &keys(&["model.nc"]),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("model.nc = 3") && err.contains("says 2"),
            "{err}"
        );
    }

    #[test]
    fn an_explicit_agreement_or_imgsz_is_taken() {
        let mut config = Config::default();
        config.model.arch = Arch::Yolo11;
        config.train.imgsz = 640;
        let r = resolve(
            &meta(),
            Path::new("w"),
            &config,
            &keys(&["model.arch", "train.imgsz"]),
            None,
        )
        .unwrap();
        assert_eq!(r.imgsz, 640, "a set imgsz wins over the weights'");
    }

    #[test]
    fn without_metadata_the_config_decides() {
        let r = resolve(
            &WeightsMeta::default(),
            Path::new("w"),
            &Config::default(),
            &keys(&[]),
            Some(5),
        )
        .unwrap();
        assert_eq!(r.model, YoloConfig::new(Arch::Yolov8, ScaleName::N, 5));
        let mut small = Config::default();
        small.train.imgsz = 128;
        let default_small = resolve(
            &WeightsMeta::default(),
            Path::new("w"),
            &small,
            &keys(&[]),
            Some(5),
        );
        assert_eq!(
            default_small.unwrap().imgsz,
            UNDESCRIBED_IMGSZ,
            "an unset imgsz is Ultralytics' 640"
        );
        assert_eq!(r.imgsz, 640);
        assert!(r.names.is_none());
        let err = resolve(
            &WeightsMeta::default(),
            Path::new("w"),
            &Config::default(),
            &keys(&[]),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("model.nc"), "{err}");
    }

    #[test]
    fn garbage_metadata_is_an_error_naming_the_key() {
        let mut map = HashMap::new();
        map.insert("scale".to_string(), "huge".to_string());
        let err = WeightsMeta::from_metadata(&map, Path::new("w"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("scale") && err.contains("huge"), "{err}");
    }
}
