//! An ONNX file written by `yolo-burn export`, run with tract (pure Rust), so that `val` and `predict` measure
//! the very file a user deploys, not the Burn model it came from.
//!
//! The file's `metadata_props` (written by the exporter) say what it is: `producer = "yolo-burn"`, `nc`, `names`
//! (a JSON array), `imgsz` (`"[H, W]"`: the input is fixed-size), `batch` (a number, or `"dynamic"`) and `head`:
//! - `raw`: `output0` is `[B, 4 + nc, A]`, boxes cx, cy, w, h in input pixels then class scores, what
//!   `Yolo::predict` returns;
//! - `deepstream`: `output0` is `[B, A, 6]`, (x1, y1, x2, y2, score, class) per anchor. It is turned back into
//!   `[B, 4 + nc, A]` with the score at its class and 0 elsewhere, so multi-label NMS (validation) sees only the
//!   best class of each anchor: its mAP can be slightly below the `raw` file's;
//! - `nms`: TensorRT's `EfficientNMS_TRT` plugin, which only TensorRT runs, so it is refused.

use std::path::{Path, PathBuf};

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::DimLike;

/// The head an exported file ends with (metadata `head`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnnxHead {
    /// `[B, 4 + nc, A]`: cx, cy, w, h, then per-class scores (Ultralytics' ONNX output).
    Raw,
    /// `[B, A, 6]`: x1, y1, x2, y2, score, class as a float (DeepStream's custom parser input).
    DeepStream,
}

/// What an exported file's metadata says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxMeta {
    /// The class count (`nc`).
    pub nc: usize,
    /// Class names by index (`names`), `nc` of them.
    pub names: Vec<String>,
    /// The fixed input size `[H, W]` (`imgsz`).
    pub imgsz: [usize; 2],
    /// The batch size the graph was exported with, or `None` when it is dynamic (`batch`).
    pub batch: Option<usize>,
    pub head: OnnxHead,
    /// `arch`, `scale`, `version` and `precision`, as written (shown to the user, not interpreted).
    pub arch: String,
    pub scale: String,
    pub version: String,
    pub precision: String,
}

/// Why an ONNX file cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The file lacks our metadata: an Ultralytics or hand-made export, whose head and classes we cannot know.
    #[error(
        "{} was not written by yolo-burn export (no metadata); export it with `yolo-burn export`",
        path.display()
    )]
    NotOurs { path: PathBuf },
    /// A metadata entry is missing or malformed.
    #[error("{}: metadata {key} = {value:?}: {detail}", path.display())]
    BadMetadata {
        path: PathBuf,
        key: &'static str,
        value: String,
        detail: String,
    },
    /// The `nms` head needs TensorRT's plugin.
    #[error(
        "{} ends with the `nms` head (TensorRT's EfficientNMS_TRT plugin), which only TensorRT can run; to \
         validate or predict with yolo-burn, export the same weights with `--head raw` (or `--head deepstream`)",
        path.display()
    )]
    NmsHead { path: PathBuf },
    /// tract could not read, optimise or run the graph, or its input or output is not what the metadata says.
    #[error("{}: {detail}", path.display())]
    Graph { path: PathBuf, detail: String },
}

/// An exported file ready to run: its metadata and tract's optimised plan.
#[derive(Debug)]
pub struct OnnxModel {
    path: PathBuf,
    meta: OnnxMeta,
    plan: Arc<TypedRunnableModel>,
    /// The graph's input type: f32, or f16 for a half-precision export that kept a half input.
    input_type: DatumType,
}

/// The `producer` value the exporter writes.
const PRODUCER: &str = "yolo-burn";

impl OnnxMeta {
    /// Reads our metadata from `props` (the file's `metadata_props`); `path` only names the file in errors.
    pub fn from_props(path: &Path, props: &[(String, String)]) -> Result<Self, OnnxError> {
        let get = |key: &str| {
            props
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        if get("producer") != Some(PRODUCER) {
            return Err(OnnxError::NotOurs { path: path.into() });
        }
        let bad = |key: &'static str, value: &str, detail: String| OnnxError::BadMetadata {
            path: path.into(),
            key,
            value: value.into(),
            detail,
        };
        let need = |key: &'static str| get(key).ok_or_else(|| bad(key, "", "missing".into()));
        let head = match need("head")? {
            "raw" => OnnxHead::Raw,
            "deepstream" => OnnxHead::DeepStream,
            "nms" => return Err(OnnxError::NmsHead { path: path.into() }),
            other => return Err(bad("head", other, "expected raw, deepstream or nms".into())),
        };
        let nc_text = need("nc")?;
        let nc: usize = nc_text
            .trim()
            .parse()
            .map_err(|e| bad("nc", nc_text, format!("not a class count ({e})")))?;
        let names_text = need("names")?;
        let names: Vec<String> = serde_json::from_str(names_text).map_err(|e| {
            bad(
                "names",
                names_text,
                format!("not a JSON list of strings ({e})"),
            )
        })?;
        if names.len() != nc {
            return Err(bad(
                "names",
                names_text,
                format!("{} names but nc is {nc}", names.len()),
            ));
        }
        let imgsz_text = need("imgsz")?;
        let imgsz: [usize; 2] = serde_json::from_str(imgsz_text)
            .ok()
            .filter(|s: &[usize; 2]| s.iter().all(|&v| v > 0))
            .ok_or_else(|| bad("imgsz", imgsz_text, "expected [H, W], both positive".into()))?;
        let batch_text = need("batch")?;
        let batch = match batch_text.trim() {
            "dynamic" => None,
            n => Some(n.parse::<usize>().ok().filter(|&b| b > 0).ok_or_else(|| {
                bad(
                    "batch",
                    batch_text,
                    "expected a positive number or \"dynamic\"".into(),
                )
            })?),
        };
        let text = |key: &str| get(key).unwrap_or_default().to_string();
        Ok(Self {
            nc,
            names,
            imgsz,
            batch,
            head,
            arch: text("arch"),
            scale: text("scale"),
            version: text("version"),
            precision: text("precision"),
        })
    }
}

impl OnnxModel {
    /// Loads `path`, checks its metadata (refusing a file that is not ours and the `nms` head before parsing the
    /// graph) and optimises it for this CPU.
    pub fn load(path: &Path) -> Result<Self, OnnxError> {
        let graph_err = |detail: String| OnnxError::Graph {
            path: path.into(),
            detail,
        };
        let onnx = tract_onnx::onnx();
        let proto = onnx
            .proto_model_for_path(path)
            .map_err(|e| graph_err(format!("not a readable ONNX file: {e:#}")))?;
        let props: Vec<(String, String)> = proto
            .metadata_props
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect();
        let meta = OnnxMeta::from_props(path, &props)?;
        let plan = onnx
            .model_for_proto_model(&proto)
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| graph_err(format!("tract cannot prepare the graph: {e:#}")))?;
        let model = plan.model();
        let input = model
            .input_fact(0)
            .map_err(|e| graph_err(format!("{e:#}")))?
            .clone();
        let [h, w] = meta.imgsz;
        let dims: Vec<Option<usize>> = input.shape.iter().map(|d| d.to_usize().ok()).collect();
        let fits = dims.len() == 4
            && dims[1..] == [Some(3), Some(h), Some(w)]
            && (meta.batch.is_none() || dims[0] == meta.batch);
        if !fits || model.inputs.len() != 1 {
            return Err(graph_err(format!(
                "the graph's input is {input:?}, but the metadata says [{}, 3, {h}, {w}]",
                meta.batch.map_or("dynamic".into(), |b| b.to_string())
            )));
        }
        let input_type = input.datum_type;
        if input_type != f32::datum_type() && input_type != f16::datum_type() {
            return Err(graph_err(format!(
                "the graph's input is {input_type:?}; expected f32 (or f16)"
            )));
        }
        Ok(Self {
            path: path.into(),
            meta,
            plan,
            input_type,
        })
    }

    /// What the file's metadata says.
    pub fn meta(&self) -> &OnnxMeta {
        &self.meta
    }

    /// The fixed input canvas `[w, h]` (images are letterboxed into it).
    pub fn canvas(&self) -> [u32; 2] {
        let [h, w] = self.meta.imgsz;
        [w as u32, h as u32]
    }

    /// Decoded predictions of `n` images, as `Yolo::predict` gives them. A static-batch graph runs them in
    /// chunks of its batch size, the last chunk padded with black images whose outputs are dropped (as
    /// Ultralytics' AutoBackend pads short batches for static exports).
    ///
    /// # Shapes
    /// `images`: `[n, 3, H, W]` row-major in 0..1; returns `[n, 4 + nc, A]` row-major.
    pub fn predict(&self, images: &[f32], n: usize) -> Result<Vec<f32>, OnnxError> {
        let [h, w] = self.meta.imgsz;
        let plane = 3 * h * w;
        if images.len() != n * plane {
            return Err(self.graph_err(format!(
                "{} input values for {n} images of 3×{h}×{w}",
                images.len()
            )));
        }
        let chunk = self.meta.batch.unwrap_or(n.max(1));
        let mut out = Vec::new();
        for part in images.chunks(chunk * plane) {
            let real = part.len() / plane;
            let mut input = part.to_vec();
            input.resize(chunk * plane, 0.0);
            let decoded = self.run_chunk(input, chunk)?;
            out.extend_from_slice(&decoded[..decoded.len() / chunk * real]);
        }
        Ok(out)
    }

    /// One run of the graph on exactly `n` images.
    fn run_chunk(&self, images: Vec<f32>, n: usize) -> Result<Vec<f32>, OnnxError> {
        let [h, w] = self.meta.imgsz;
        let tensor = tract_ndarray::Array4::from_shape_vec((n, 3, h, w), images)
            .map(Tensor::from)
            .map_err(|e| self.graph_err(format!("input: {e}")))?;
        let tensor = if self.input_type == f32::datum_type() {
            tensor
        } else {
            tensor
                .cast_to_dt(self.input_type)
                .map_err(|e| self.graph_err(format!("input: {e:#}")))?
                .into_owned()
        };
        let outputs = self
            .plan
            .run(tvec!(tensor.into_tvalue()))
            .map_err(|e| self.graph_err(format!("running the graph: {e:#}")))?;
        let first = outputs
            .first()
            .ok_or_else(|| self.graph_err("the graph has no output".into()))?;
        let output = first
            .cast_to::<f32>()
            .map_err(|e| self.graph_err(format!("output0: {e:#}")))?;
        let shape = output.shape().to_vec();
        let values: Vec<f32> = output
            .to_plain_array_view::<f32>()
            .map_err(|e| self.graph_err(format!("output0: {e:#}")))?
            .iter()
            .copied()
            .collect();
        let nc = self.meta.nc;
        match (self.meta.head, shape.as_slice()) {
            (OnnxHead::Raw, &[b, c, _]) if b == n && c == 4 + nc => Ok(values),
            (OnnxHead::DeepStream, &[b, anchors, 6]) if b == n => {
                Ok(deepstream_to_decoded(&values, n, anchors, nc))
            }
            (head, _) => Err(self.graph_err(format!(
                "output0 is {shape:?}, but a {head:?} head of {nc} classes on {n} images should be {}",
                match head {
                    OnnxHead::Raw => format!("[{n}, {}, A]", 4 + nc),
                    OnnxHead::DeepStream => format!("[{n}, A, 6]"),
                }
            ))),
        }
    }

    fn graph_err(&self, detail: String) -> OnnxError {
        OnnxError::Graph {
            path: self.path.clone(),
            detail,
        }
    }
}

/// The deepstream head's boxes back in the form NMS reads: each anchor's xyxy as cxcywh, its score at its class
/// and 0 at every other (an anchor whose class is not in `0..nc` keeps no score).
///
/// # Shapes
/// `rows`: `[B, A, 6]` (x1, y1, x2, y2, score, class); returns `[B, 4 + nc, A]`.
pub fn deepstream_to_decoded(rows: &[f32], batch: usize, anchors: usize, nc: usize) -> Vec<f32> {
    let channels = 4 + nc;
    let mut out = vec![0f32; batch * channels * anchors];
    for (rows, out) in rows
        .chunks_exact(anchors * 6)
        .zip(out.chunks_exact_mut(channels * anchors))
    {
        for (a, row) in rows.chunks_exact(6).enumerate() {
            let [x1, y1, x2, y2, score, class] = [row[0], row[1], row[2], row[3], row[4], row[5]];
            let cxcywh = [(x1 + x2) / 2.0, (y1 + y2) / 2.0, x2 - x1, y2 - y1];
            for (c, v) in cxcywh.into_iter().enumerate() {
                out[c * anchors + a] = v;
            }
            let class = class.round();
            if class >= 0.0 && (class as usize) < nc {
                out[(4 + class as usize) * anchors + a] = score;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn metadata_is_read_and_checked() {
        let path = Path::new("m.onnx");
        let ok = [
            ("producer", "yolo-burn"),
            ("nc", "2"),
            ("names", r#"["a", "b"]"#),
            ("imgsz", "[320, 640]"),
            ("batch", "4"),
            ("head", "deepstream"),
        ];
        let meta = OnnxMeta::from_props(path, &props(&ok)).unwrap();
        assert_eq!(
            (meta.nc, meta.imgsz, meta.batch, meta.head),
            (2, [320, 640], Some(4), OnnxHead::DeepStream)
        );
        let mut dynamic = ok;
        dynamic[4].1 = "dynamic";
        assert_eq!(
            OnnxMeta::from_props(path, &props(&dynamic)).unwrap().batch,
            None
        );
        let mut three_names = ok;
        three_names[2].1 = r#"["a", "b", "c"]"#;
        let err = OnnxMeta::from_props(path, &props(&three_names))
            .unwrap_err()
            .to_string();
        assert!(err.contains("3 names but nc is 2"), "{err}");
        let err = OnnxMeta::from_props(path, &props(&ok[1..]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not written by yolo-burn export"), "{err}");
    }

    #[test]
    fn deepstream_rows_become_one_hot_scores() {
        // One image, two anchors: class 1 at 0.9, and a class outside 0..nc.
        let rows = [
            10.0, 20.0, 30.0, 60.0, 0.9, 1.0, 0.0, 0.0, 4.0, 4.0, 0.5, 7.0,
        ];
        let out = deepstream_to_decoded(&rows, 1, 2, 2);
        // [1, 6, 2]: cx, cy, w, h, class 0, class 1 for each anchor.
        assert_eq!(
            out,
            vec![20.0, 2.0, 40.0, 2.0, 20.0, 4.0, 40.0, 4.0, 0.0, 0.0, 0.9, 0.0]
        );
    }
}
