//! Whole models with our kernels (conv blocks, concatenation, residual add) against Burn's stock ops: head
//! outputs and the gradient of every parameter after one training-mode forward and backward, for YOLOv8n and
//! YOLO11n. Its own test binary because the kernel choice (`kernels::select`) is process-wide.
//!
//! Tolerance: `max |ours − stock| ≤ 1e-3 · max |stock| + 1e-5` per tensor: the conv blocks agree to 1e-4
//! (tests/kernels.rs), and a whole network compounds their different summation orders; the absolute term is for
//! gradients that are zero in exact arithmetic (a shift that the next BatchNorm removes, the key bias of an
//! attention softmax), which both sides compute as rounding noise of ~1e-6. The initialisation is seeded: a random
//! one can leave a BatchNorm channel with almost no variance over the batch, whose gradient then magnifies the
//! rounding differences (seen once in ~30 unseeded runs: 6 % on the stem's weight gradient).

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use yolo_burn::backend::Cpu;
use yolo_burn::config::{Arch, ScaleName};
use yolo_burn::kernels::{select, Kernels};
use yolo_burn::model::{Yolo, YoloConfig};

type Ad = Autodiff<Cpu>;

/// Every parameter's gradient, in visiting order, with its path-free index.
struct Grads<'a> {
    grads: &'a <Ad as AutodiffBackend>::Gradients,
    out: Vec<Vec<f32>>,
}

impl ModuleVisitor<Ad> for Grads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Ad, D>>) {
        let g = param
            .val()
            .grad(self.grads)
            .map(|g| g.into_data().to_vec::<f32>().expect("f32"))
            .unwrap_or_default();
        self.out.push(g);
    }
}

/// Reads every parameter once, which initialises it.
struct Touch;

impl ModuleVisitor<Ad> for Touch {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Ad, D>>) {
        let _ = param.val();
    }
}

fn pseudo(len: usize, seed: u64) -> Vec<f32> {
    (0..len as u64)
        .map(|i| {
            let h =
                (i ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let h = (h ^ (h >> 31)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (h >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

fn run(model: &Yolo<Ad>, kernels: Kernels) -> Vec<Vec<f32>> {
    select(kernels);
    let device = Default::default();
    let model = model.clone();
    let x = Tensor::<Ad, 4>::from_data(
        TensorData::new(pseudo(2 * 3 * 128 * 128, 1), [2, 3, 128, 128]),
        &device,
    );
    let out = model.forward(x);
    let [b, rb, a] = out.boxes.dims();
    let [_, nc, _] = out.scores.dims();
    let wb =
        Tensor::<Ad, 3>::from_data(TensorData::new(pseudo(b * rb * a, 2), [b, rb, a]), &device);
    let ws =
        Tensor::<Ad, 3>::from_data(TensorData::new(pseudo(b * nc * a, 3), [b, nc, a]), &device);
    let heads = [
        out.boxes
            .clone()
            .inner()
            .into_data()
            .to_vec::<f32>()
            .expect("f32"),
        out.scores
            .clone()
            .inner()
            .into_data()
            .to_vec::<f32>()
            .expect("f32"),
    ];
    let loss = (out.boxes * wb).sum() + (out.scores * ws).sum();
    let grads = loss.backward();
    let mut visitor = Grads {
        grads: &grads,
        out: Vec::new(),
    };
    model.visit(&mut visitor);
    let _ = model.valid();
    heads.into_iter().chain(visitor.out).collect()
}

#[test]
fn whole_models_match_burn() {
    for arch in [Arch::Yolov8, Arch::Yolo11] {
        // one random initialisation for both runs: parameters initialise lazily, so before the clones
        let device = Default::default();
        Ad::seed(&device, 7);
        let model = YoloConfig::new(arch, ScaleName::N, 5).init::<Ad>(&device);
        model.visit(&mut Touch);
        let ours = run(&model, Kernels::Fast);
        let stock = run(&model, Kernels::Burn);
        select(Kernels::Fast);
        assert_eq!(ours.len(), stock.len());
        let mut with_grads = 0;
        for (i, (a, b)) in ours.iter().zip(&stock).enumerate() {
            assert_eq!(a.len(), b.len(), "{arch:?} tensor {i}");
            if b.is_empty() {
                continue;
            }
            with_grads += 1;
            let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
            let err = a
                .iter()
                .zip(b)
                .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(
                err <= 1e-3 * scale + 1e-5,
                "{arch:?} tensor {i} (0, 1: head outputs, then parameter gradients): max |diff| {err:e}, max |stock| {scale:e}"
            );
        }
        assert!(with_grads > 100, "{arch:?}: {with_grads} tensors compared");
    }
}
