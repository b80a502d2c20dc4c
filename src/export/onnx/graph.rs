//! The network walk: our `Yolo` layer list written as ONNX nodes, block by block, each mirroring its
//! `forward` in src/model (same splits, same order of operations), with every Conv + BatchNorm folded.

use burn::tensor::backend::Backend;

use super::ops::{GraphBuilder, Value};
use crate::export::fuse::{fuse_conv_bn, plain_conv};
use crate::export::ExportError;
use crate::model::blocks::{Attention, Bottleneck, C2f, C2psa, C3k, CspInner, PsaBlock, Sppf};
use crate::model::conv::Conv;
use crate::model::head::ClsBranch;
use crate::model::{Detect, Layer, Yolo, REG_MAX};

/// The raw head outputs as graph values.
pub struct RawHead {
    /// `[B, 4R, A]` DFL logits.
    pub boxes: Value,
    /// `[B, nc, A]` class logits.
    pub scores: Value,
    /// The `[h, w]` grid of each level, for the anchors.
    pub grids: [[usize; 2]; 3],
}

/// Writes backbone, neck and Detect's branches for an input of `[B, 3, h, w]` named `images` (already in the
/// graph's float type).
pub fn network<B: Backend>(
    g: &mut GraphBuilder,
    model: &Yolo<B>,
    images: &str,
    [h, w]: [usize; 2],
) -> Result<RawHead, ExportError> {
    let mut outputs: Vec<(Value, [usize; 3])> = Vec::with_capacity(model.model.len());
    let mut x = images.to_string();
    let mut shape = [3, h, w];
    for (i, layer) in model.model.iter().enumerate() {
        let name = format!("model.{i}");
        (x, shape) = match layer {
            Layer::Conv(m) => {
                let c2 = m.conv.weight.dims()[0];
                let s = m.conv.stride[0];
                (conv(g, &name, &x, m)?, [c2, shape[1] / s, shape[2] / s])
            }
            Layer::Csp(m) => (
                c2f(g, &name, &x, m)?,
                [out_channels(&m.cv2), shape[1], shape[2]],
            ),
            Layer::Sppf(m) => (
                sppf(g, &name, &x, m)?,
                [out_channels(&m.cv2), shape[1], shape[2]],
            ),
            Layer::C2psa(m) => (c2psa(g, &name, &x, m, shape)?, shape),
            Layer::Upsample(f) => (
                g.upsample_nearest(&x, *f),
                [shape[0], shape[1] * f, shape[2] * f],
            ),
            Layer::Concat(other) => {
                let (y, other_shape) = &outputs[*other];
                (
                    g.concat(&[&x, y], 1),
                    [shape[0] + other_shape[0], shape[1], shape[2]],
                )
            }
            Layer::Detect(head) => {
                let feats = [0, 1, 2].map(|l| outputs[model.head_from()[l]].clone());
                return detect(g, head, feats);
            }
        };
        outputs.push((x.clone(), shape));
    }
    Err(ExportError::Model(
        "the layer list has no Detect head".into(),
    ))
}

fn out_channels<B: Backend>(conv: &Conv<B>) -> usize {
    conv.conv.weight.dims()[0]
}

/// Ultralytics' `Conv`: folded Conv, then SiLU unless `act=False`.
fn conv<B: Backend>(
    g: &mut GraphBuilder,
    name: &str,
    x: &str,
    m: &Conv<B>,
) -> Result<Value, ExportError> {
    let y = g.conv(name, x, &fuse_conv_bn(m)?);
    Ok(if m.act { g.silu(&y) } else { y })
}

fn bottleneck<B: Backend>(
    g: &mut GraphBuilder,
    name: &str,
    x: &str,
    m: &Bottleneck<B>,
) -> Result<Value, ExportError> {
    let y = conv(g, &format!("{name}.cv1"), x, &m.cv1)?;
    let y = conv(g, &format!("{name}.cv2"), &y, &m.cv2)?;
    Ok(if m.add { g.add(x, &y) } else { y })
}

fn c3k<B: Backend>(
    g: &mut GraphBuilder,
    name: &str,
    x: &str,
    m: &C3k<B>,
) -> Result<Value, ExportError> {
    let mut a = conv(g, &format!("{name}.cv1"), x, &m.cv1)?;
    for (j, b) in m.m.iter().enumerate() {
        a = bottleneck(g, &format!("{name}.m.{j}"), &a, b)?;
    }
    let b = conv(g, &format!("{name}.cv2"), x, &m.cv2)?;
    let cat = g.concat(&[&a, &b], 1);
    conv(g, &format!("{name}.cv3"), &cat, &m.cv3)
}

/// C2f / C3k2: `cv1`, its second half through each inner block, everything concatenated into `cv2`.
fn c2f<B: Backend>(
    g: &mut GraphBuilder,
    name: &str,
    x: &str,
    m: &C2f<B>,
) -> Result<Value, ExportError> {
    let y = conv(g, &format!("{name}.cv1"), x, &m.cv1)?;
    let mut last = g.split(&y, 1, &[m.c, m.c]).remove(1);
    let mut ys = vec![y];
    for (j, inner) in m.m.iter().enumerate() {
        let inner_name = format!("{name}.m.{j}");
        last = match inner {
            CspInner::Bottleneck(b) => bottleneck(g, &inner_name, &last, b)?,
            CspInner::C3k(b) => c3k(g, &inner_name, &last, b)?,
        };
        ys.push(last.clone());
    }
    let refs: Vec<&str> = ys.iter().map(String::as_str).collect();
    let cat = g.concat(&refs, 1);
    conv(g, &format!("{name}.cv2"), &cat, &m.cv2)
}

/// SPPF: three chained 5×5 max-pools (ONNX pads them with −∞, as PyTorch does).
fn sppf<B: Backend>(
    g: &mut GraphBuilder,
    name: &str,
    x: &str,
    m: &Sppf<B>,
) -> Result<Value, ExportError> {
    let k = m.m.kernel_size[0];
    let y0 = conv(g, &format!("{name}.cv1"), x, &m.cv1)?;
    let y1 = g.max_pool(&y0, k);
    let y2 = g.max_pool(&y1, k);
    let y3 = g.max_pool(&y2, k);
    let cat = g.concat(&[&y0, &y1, &y2, &y3], 1);
    conv(g, &format!("{name}.cv2"), &cat, &m.cv2)
}

fn c2psa<B: Backend>(
    g: &mut GraphBuilder,
    name: &str,
    x: &str,
    m: &C2psa<B>,
    [_, h, w]: [usize; 3],
) -> Result<Value, ExportError> {
    let y = conv(g, &format!("{name}.cv1"), x, &m.cv1)?;
    let mut halves = g.split(&y, 1, &[m.c, m.c]);
    let mut b = halves.remove(1);
    for (j, block) in m.m.iter().enumerate() {
        b = psa_block(g, &format!("{name}.m.{j}"), &b, block, [m.c, h, w])?;
    }
    let cat = g.concat(&[&halves[0], &b], 1);
    conv(g, &format!("{name}.cv2"), &cat, &m.cv2)
}

fn psa_block<B: Backend>(
    g: &mut GraphBuilder,
    name: &str,
    x: &str,
    m: &PsaBlock<B>,
    shape: [usize; 3],
) -> Result<Value, ExportError> {
    let a = attention(g, &format!("{name}.attn"), x, &m.attn, shape)?;
    let x = g.add(x, &a);
    let f = conv(g, &format!("{name}.ffn.0"), &x, &m.ffn.0)?;
    let f = conv(g, &format!("{name}.ffn.1"), &f, &m.ffn.1)?;
    Ok(g.add(&x, &f))
}

/// `Attention::forward` op for op: the batch stays dynamic (Reshape's 0 copies it), H·W is fixed by the
/// export size.
fn attention<B: Backend>(
    g: &mut GraphBuilder,
    name: &str,
    x: &str,
    m: &Attention<B>,
    [c, h, w]: [usize; 3],
) -> Result<Value, ExportError> {
    let n = (h * w) as i64;
    let (nh, kd, hd) = (m.num_heads, m.key_dim, m.head_dim);
    let qkv = conv(g, &format!("{name}.qkv"), x, &m.qkv)?;
    let qkv = g.reshape(&qkv, &[0, nh as i64, (2 * kd + hd) as i64, n]);
    let [q, k, v]: [Value; 3] = g
        .split(&qkv, 2, &[kd, kd, hd])
        .try_into()
        .map_err(|_| ExportError::Model("split arity".into()))?;
    let scale = g.float_const(
        &format!("{name}.scale"),
        &[],
        &[(kd as f64).powf(-0.5) as f32],
    );
    let q = g.mul(&q, &scale);
    let qt = g.transpose(&q, &[0, 1, 3, 2]);
    // [B, nh, N, N]: row i attends over every position j.
    let scores = g.matmul(&qt, &k);
    let attn = g.softmax(&scores, 3);
    let attn_t = g.transpose(&attn, &[0, 1, 3, 2]);
    let out = g.matmul(&v, &attn_t);
    let image_shape = [0, c as i64, h as i64, w as i64];
    let out = g.reshape(&out, &image_shape);
    let v_image = g.reshape(&v, &image_shape);
    let pe = conv(g, &format!("{name}.pe"), &v_image, &m.pe)?;
    let sum = g.add(&out, &pe);
    conv(g, &format!("{name}.proj"), &sum, &m.proj)
}

/// Detect's box and class branches per level, flattened and concatenated over levels.
fn detect<B: Backend>(
    g: &mut GraphBuilder,
    head: &Detect<B>,
    feats: [(Value, [usize; 3]); 3],
) -> Result<RawHead, ExportError> {
    let mut boxes = Vec::new();
    let mut scores = Vec::new();
    let mut grids = [[0; 2]; 3];
    let prefix = "model.head";
    for (i, (x, [_, h, w])) in feats.iter().enumerate() {
        grids[i] = [*h, *w];
        let a = (h * w) as i64;
        let (c1, c2, c3) = &head.cv2[i];
        let b = conv(g, &format!("{prefix}.cv2.{i}.0"), x, c1)?;
        let b = conv(g, &format!("{prefix}.cv2.{i}.1"), &b, c2)?;
        let b = g.conv(&format!("{prefix}.cv2.{i}.2"), &b, &plain_conv(c3)?);
        boxes.push(g.reshape(&b, &[0, (4 * REG_MAX) as i64, a]));
        let s = match &head.cv3[i] {
            ClsBranch::Legacy((c1, c2, c3)) => {
                let s = conv(g, &format!("{prefix}.cv3.{i}.0"), x, c1)?;
                let s = conv(g, &format!("{prefix}.cv3.{i}.1"), &s, c2)?;
                g.conv(&format!("{prefix}.cv3.{i}.2"), &s, &plain_conv(c3)?)
            }
            ClsBranch::DepthWise(((a1, a2), (b1, b2), c3)) => {
                let s = conv(g, &format!("{prefix}.cv3.{i}.0.0"), x, a1)?;
                let s = conv(g, &format!("{prefix}.cv3.{i}.0.1"), &s, a2)?;
                let s = conv(g, &format!("{prefix}.cv3.{i}.1.0"), &s, b1)?;
                let s = conv(g, &format!("{prefix}.cv3.{i}.1.1"), &s, b2)?;
                g.conv(&format!("{prefix}.cv3.{i}.2"), &s, &plain_conv(c3)?)
            }
        };
        scores.push(g.reshape(&s, &[0, head.nc as i64, a]));
    }
    let boxes: Vec<&str> = boxes.iter().map(String::as_str).collect();
    let scores: Vec<&str> = scores.iter().map(String::as_str).collect();
    Ok(RawHead {
        boxes: g.concat(&boxes, 2),
        scores: g.concat(&scores, 2),
        grids,
    })
}
