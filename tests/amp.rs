//! Mixed precision (`src/amp`): the loss scaler against torch.amp.GradScaler's own trajectories, the skipped
//! step that leaves masters, optimizer state and EMA bit-identical, FP32 masters that keep updates f16 loses,
//! loss scaling that rescues gradients below f16's range, and the refusals of bad settings.

mod train;

use std::collections::HashMap;
use std::process::Command;

use burn::backend::Autodiff;
use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType, Tensor};
use serde::Deserialize;
use yolo_burn::amp::{LossScaler, MasterWeights, ScalerConfig};
use yolo_burn::backend::Cpu;
use yolo_burn::config::{Arch, Config, Precision, ScaleName};
use yolo_burn::model::yolo::Layer;
use yolo_burn::model::YoloConfig;
use yolo_burn::train::checkpoint::{Checkpoint, CheckpointPaths};
use yolo_burn::train::optim::{GroupHyper, Method, Optimizer, StepOutcome};
use yolo_burn::train::TrainRequest;
use yolo_burn::YoloError;

type B = Autodiff<Cpu>;
type Inner = Cpu;

#[derive(Module, Debug)]
struct Tiny<B: Backend> {
    weight: Param<Tensor<B, 1>>,
}

fn tiny(values: &[f32]) -> Tiny<B> {
    Tiny {
        weight: Param::from_tensor(Tensor::from_floats(values, &Default::default())),
    }
}

fn values<BB: Backend>(t: Tensor<BB, 1>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

fn sgd(lr: f64) -> [GroupHyper; 3] {
    [GroupHyper {
        lr,
        momentum: 0.0,
        weight_decay: 0.0,
    }; 3]
}

#[derive(Deserialize)]
struct TorchCases {
    source: String,
    cases: Vec<TorchCase>,
}

#[derive(Deserialize)]
struct TorchCase {
    name: String,
    init_scale: f64,
    growth_factor: f64,
    backoff_factor: f64,
    growth_interval: u64,
    overflow: Vec<bool>,
    scale_after: Vec<f64>,
    growth_tracker_after: Vec<u64>,
    step_skipped: Vec<bool>,
}

impl TorchCase {
    fn config(&self) -> ScalerConfig {
        ScalerConfig {
            init_scale: self.init_scale,
            growth_factor: self.growth_factor,
            backoff_factor: self.backoff_factor,
            growth_interval: self.growth_interval,
        }
    }
}

fn torch_cases() -> TorchCases {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/grad_scaler_trajectory.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every scale and growth tracker after every scripted step equals what torch's GradScaler printed, exactly.
#[test]
fn scaler_trajectory_equals_torch_grad_scaler() {
    let cases = torch_cases();
    assert!(cases.source.starts_with("torch "), "{}", cases.source);
    assert!(cases.cases.len() >= 4);
    for case in &cases.cases {
        let mut scaler = LossScaler::new(case.config(), true);
        for (i, &overflow) in case.overflow.iter().enumerate() {
            scaler.update(overflow);
            assert_eq!(
                f64::from(scaler.scale()),
                case.scale_after[i],
                "{} step {i}: scale",
                case.name
            );
            assert_eq!(
                scaler.growth_tracker(),
                case.growth_tracker_after[i],
                "{} step {i}: growth tracker",
                case.name
            );
        }
    }
}

/// The same trajectories through the whole fp16 path: a real backward in f16, the gradients made non-finite
/// where torch's were, and `MasterWeights::step` deciding to skip.
#[test]
fn master_weights_follow_torch_skips_and_scales_in_fp16() {
    let x = [1.0f32, -0.5, 1.5, 0.25];
    let mut checked = 0;
    for case in torch_cases().cases {
        // The loss below is scaled by 2^-20, so the gradients stay within f16's range up to a scale of 2^20.
        let largest = case
            .scale_after
            .iter()
            .fold(case.init_scale, |a, &b| a.max(b));
        if largest > f64::from(1u32 << 20) {
            continue;
        }
        checked += 1;
        let (mut amp, mut model) = MasterWeights::<B, _>::new(
            tiny(&[1.0, -2.0, 0.5, 3.0]),
            Precision::Fp16,
            Optimizer::new(Method::Sgd, 10.0),
            case.config(),
        );
        let xs = amp.to_compute(Tensor::<B, 1>::from_floats(x, &Default::default()));
        for (i, &overflow) in case.overflow.iter().enumerate() {
            // × 2^-20 keeps the scaled gradient that enters the f16 graph (scale · 2^-20) within f16's range.
            let loss = (model.weight.val() * xs.clone())
                .cast(FloatDType::F32)
                .sum()
                * (1.0 / f64::from(1u32 << 20));
            let grads = GradientsParams::from_grads(amp.scale_loss(loss).backward(), &model);
            let mut grads = amp.grads_to_f32(&model, grads);
            if overflow {
                let g = grads.remove::<Inner, 1>(model.weight.id).unwrap();
                let bad = if i % 2 == 0 { f32::INFINITY } else { f32::NAN };
                let g = g + Tensor::from_floats([bad, 0.0, 0.0, 0.0], &Default::default());
                grads.register::<Inner, 1>(model.weight.id, g);
            }
            let (stepped, outcome) = amp.step(model, grads, sgd(0.1));
            model = stepped;
            assert_eq!(
                matches!(outcome, StepOutcome::SkippedNonFinite),
                case.step_skipped[i],
                "{} step {i}: skipped",
                case.name
            );
            assert_eq!(
                f64::from(amp.scaler().scale()),
                case.scale_after[i],
                "{} step {i}",
                case.name
            );
        }
        let skipped = case.step_skipped.iter().filter(|&&s| s).count() as u64;
        assert_eq!(amp.skipped_steps(), skipped, "{}", case.name);
    }
    assert!(checked >= 2, "only {checked} torch cases fit in f16");
}

/// Every parameter of a module, by path, as f32 bits (BatchNorm running statistics left out: every forward in
/// train mode moves them, step or not).
fn bits<BB: Backend, M: Module<BB>>(module: &M) -> HashMap<String, Vec<u32>> {
    params(module)
        .into_iter()
        .map(|(k, (_, v))| (k, v))
        .collect()
}

/// Every parameter's float type, by path (running statistics left out, as in [`bits`]).
fn dtypes<BB: Backend, M: Module<BB>>(module: &M) -> HashMap<String, DType> {
    params(module)
        .into_iter()
        .map(|(k, (t, _))| (k, t))
        .collect()
}

/// Every parameter's type and f32 bits, by path, running statistics left out.
fn params<BB: Backend, M: Module<BB>>(module: &M) -> HashMap<String, (DType, Vec<u32>)> {
    struct Collect(Vec<String>, HashMap<String, (DType, Vec<u32>)>);
    impl<BB: Backend> burn::module::ModuleVisitor<BB> for Collect {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<BB, D>>) {
            if self.0.last().is_some_and(|f| f.starts_with("running_")) {
                return;
            }
            let tensor = param.val();
            let dtype = tensor.dtype();
            let v = tensor.into_data().convert::<f32>().to_vec::<f32>().unwrap();
            let bits = v.iter().map(|f| f.to_bits()).collect();
            self.1.insert(self.0.join("."), (dtype, bits));
        }
    }
    let mut c = Collect(Vec::new(), HashMap::new());
    module.visit(&mut c);
    c.1
}

/// A freshly built YOLOv8n, its parameters not yet initialised (Burn initialises them on first use), split
/// into masters and a compute model: the compute model holds the masters' values rounded to its type
/// (BatchNorm's gamma and beta stay FP32, as they are), and the FP32 model that the EMA starts from is the
/// masters. Burn 0.21 gives a clone of an uninitialised parameter its own initialiser, so before `materialize`
/// the two copies were two different random inits.
#[test]
fn compute_model_and_ema_start_from_the_masters() {
    let device = Default::default();
    for precision in [Precision::Fp32, Precision::Fp16, Precision::Bf16] {
        let model = YoloConfig::new(Arch::Yolov8, ScaleName::N, 2).init::<B>(&device);
        let (amp, compute) = MasterWeights::<B, _>::new(
            model,
            precision,
            Optimizer::new(Method::Sgd, 10.0),
            ScalerConfig::default(),
        );
        let round = |v: u32| -> u32 {
            let v = f32::from_bits(v);
            match precision {
                Precision::Fp32 => v,
                Precision::Fp16 => half::f16::from_f32(v).to_f32(),
                Precision::Bf16 => half::bf16::from_f32(v).to_f32(),
            }
            .to_bits()
        };
        let masters = bits(&amp.fp32_model(&compute));
        let types = dtypes(&compute);
        let compute = bits(&compute);
        assert_eq!(masters.len(), compute.len(), "{precision:?}");
        let mut affine = 0;
        for (name, values) in &compute {
            // BatchNorm's scale and shift stay FP32, as under autocast (our kernels' BatchNorm is f32 inside).
            let batch_norm = name.ends_with(".gamma") || name.ends_with(".beta");
            let want: Vec<u32> = if batch_norm {
                affine += 1;
                assert_eq!(types[name], DType::F32, "{precision:?} {name}");
                masters[name].clone()
            } else {
                let dtype = match precision {
                    Precision::Fp32 => DType::F32,
                    Precision::Fp16 => DType::F16,
                    Precision::Bf16 => DType::BF16,
                };
                assert_eq!(types[name], dtype, "{precision:?} {name}");
                masters[name].iter().map(|v| round(*v)).collect()
            };
            assert_eq!(values, &want, "{precision:?} {name}");
        }
        assert!(affine >= 2 * 50, "{affine} BatchNorm gamma/beta tensors");
    }
}

/// A YOLOv8n step whose gradients hold an infinity (or a NaN) is skipped: masters, optimizer state and the
/// compute model stay bit-identical, the scale halves and the skip is counted; a clean step then applies.
#[test]
fn nonfinite_gradient_skips_the_step_and_halves_the_scale() {
    let device = Default::default();
    let model = YoloConfig::new(Arch::Yolov8, ScaleName::N, 2).init::<B>(&device);
    // A random-init YOLOv8n's gradients overflow f16 at the default 2^16 (the trainer backs off within a few
    // steps); start where they fit.
    let config = ScalerConfig {
        init_scale: 64.0,
        ..ScalerConfig::default()
    };
    let (mut amp, mut model) = MasterWeights::<B, _>::new(
        model,
        Precision::Fp16,
        Optimizer::new(Method::AdamW, 10.0),
        config,
    );
    let images = Tensor::<B, 4>::ones([1, 3, 64, 64], &device) * 0.5;
    let grads_of = |model: &yolo_burn::model::Yolo<B>, amp: &MasterWeights<B, _>| {
        let out = model.forward(amp.to_compute(images.clone()));
        let loss = out.boxes.cast(FloatDType::F32).mean() + out.scores.cast(FloatDType::F32).mean();
        let grads = GradientsParams::from_grads(amp.scale_loss(loss).backward(), model);
        amp.grads_to_f32(model, grads)
    };
    // One clean step first, so the optimizer has state to keep.
    let grads = grads_of(&model, &amp);
    let (stepped, outcome) = amp.step(model, grads, sgd(1e-3));
    model = stepped;
    assert!(matches!(outcome, StepOutcome::Applied { .. }));
    let scale = amp.scaler().scale();
    for bad in [f32::INFINITY, f32::NAN] {
        let masters = bits(amp.masters().unwrap());
        let compute = bits(&model);
        let optimizer = amp.optimizer().to_record();
        let mut grads = grads_of(&model, &amp);
        let Layer::Conv(stem) = &model.model[0] else {
            panic!("layer 0 is the stem conv")
        };
        let id = stem.conv.weight.id;
        let g = grads.remove::<Inner, 4>(id).unwrap();
        grads.register::<Inner, 4>(id, g.clone() + g.zeros_like().add_scalar(bad));
        let skipped_before = amp.skipped_steps();
        let (stepped, outcome) = amp.step(model, grads, sgd(1e-3));
        model = stepped;
        assert_eq!(outcome, StepOutcome::SkippedNonFinite);
        assert_eq!(amp.skipped_steps(), skipped_before + 1);
        assert!(bits(amp.masters().unwrap()) == masters, "masters changed");
        assert!(bits(&model) == compute, "compute model changed");
        assert!(
            amp.optimizer().to_record() == optimizer,
            "optimizer state changed"
        );
    }
    assert_eq!(amp.scaler().scale(), scale / 4.0, "two backoffs of 0.5");
    assert_eq!(amp.consecutive_skips(), 2);
    let grads = grads_of(&model, &amp);
    let (_, outcome) = amp.step(model, grads, sgd(1e-3));
    assert!(matches!(outcome, StepOutcome::Applied { .. }));
    assert_eq!(amp.consecutive_skips(), 0);
}

/// The masters are FP32 while the compute weights are f16, and 1000 updates of 1e-8 each, every one far below
/// half an f16 ulp of the weight, move the master by 1e-5 (and, rounded, the compute weight too), where an f16
/// weight updated directly never moves.
#[test]
fn masters_accumulate_updates_that_f16_loses() {
    let w0 = 1e-3f32;
    let (mut amp, mut model) = MasterWeights::<B, _>::new(
        tiny(&[w0; 4]),
        Precision::Fp16,
        Optimizer::new(Method::Sgd, 10.0),
        ScalerConfig::default(),
    );
    assert_eq!(model.weight.val().dtype(), DType::F16);
    assert_eq!(amp.masters().unwrap().weight.val().dtype(), DType::F32);
    let start16 = values(model.weight.val());
    let device = Default::default();
    let mut direct16 = Tensor::<Inner, 1>::from_floats([w0; 4], &device).cast(FloatDType::F16);
    for _ in 0..1000 {
        // The gradient as a scaled backward would give it; the step unscales it to 1e-8.
        let scaled = 1e-8f32 * amp.scaler().scale();
        let mut grads = GradientsParams::new();
        grads.register::<Inner, 1>(model.weight.id, Tensor::from_floats([scaled; 4], &device));
        let (stepped, outcome) = amp.step(model, grads, sgd(1.0));
        model = stepped;
        assert!(matches!(outcome, StepOutcome::Applied { .. }));
        direct16 = direct16.clone() - direct16.ones_like().mul_scalar(1e-8);
    }
    let master = values(amp.masters().unwrap().weight.val());
    // Each FP32 step rounds to 1.2e-10 (an f32 ulp at 1e-3), so 1000 of them may drift ~1e-8: 1e-2 of the
    // 1e-5 moved.
    for m in &master {
        assert!(
            ((m - (w0 - 1e-5)) / 1e-5).abs() < 1e-2,
            "master {m}, want {}",
            w0 - 1e-5
        );
    }
    assert_eq!(values(direct16), start16, "f16 alone keeps every update");
    let compute = values(model.weight.val());
    assert_ne!(
        compute, start16,
        "the rounded masters moved the compute weight"
    );
    assert_eq!(
        compute,
        values(Tensor::<Inner, 1>::from_floats(master.as_slice(), &device).cast(FloatDType::F16)),
        "compute = f16(master)"
    );
    assert_eq!(amp.compute_dtype(), FloatDType::F16);
}

/// Gradients of 5e-10, below f16's smallest subnormal (6e-8): an f16 backward without scaling flushes them to
/// zero; with the default scale (2^16) they come back within 1e-2 relative.
#[test]
fn loss_scaling_recovers_gradients_below_f16_range() {
    let x = [1.0f32, 0.75, -0.5, 0.625];
    let tiny_gain = 5e-10f32;
    let grads_with = |init_scale: f64| -> Vec<f32> {
        let config = ScalerConfig {
            init_scale,
            ..ScalerConfig::default()
        };
        let (amp, model) = MasterWeights::<B, _>::new(
            tiny(&[0.5, 0.25, 1.0, 2.0]),
            Precision::Fp16,
            Optimizer::new(Method::Sgd, 10.0),
            config,
        );
        let xs = amp.to_compute(Tensor::<B, 1>::from_floats(x, &Default::default()));
        let y = (model.weight.val() * xs).sum();
        let loss = y.cast(FloatDType::F32) * tiny_gain;
        let grads = GradientsParams::from_grads(amp.scale_loss(loss).backward(), &model);
        let grads = amp.grads_to_f32(&model, grads);
        let g = grads.get::<Inner, 1>(model.weight.id).unwrap();
        values(g)
            .into_iter()
            .map(|v| (f64::from(v) / init_scale) as f32)
            .collect()
    };
    let unscaled = grads_with(1.0);
    assert!(
        unscaled.iter().all(|&g| g == 0.0),
        "f16 without scaling should flush: {unscaled:?}"
    );
    let scaled = grads_with(65536.0);
    for (g, xi) in scaled.iter().zip(x) {
        let want = xi * tiny_gain;
        assert!(((g - want) / want).abs() < 1e-2, "{g} vs {want}");
    }
}

fn config_error(overrides: &[&str]) -> String {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    Config::from_toml_str("", "test.toml", &overrides)
        .unwrap_err()
        .to_string()
}

#[test]
fn invalid_scaler_keys_are_refused_by_name() {
    for (set, key) in [
        ("train.amp_init_scale=0", "train.amp_init_scale"),
        ("train.amp_init_scale=-2.0", "train.amp_init_scale"),
        ("train.amp_growth_factor=1.0", "train.amp_growth_factor"),
        ("train.amp_growth_factor=0.5", "train.amp_growth_factor"),
        ("train.amp_backoff_factor=1.0", "train.amp_backoff_factor"),
        ("train.amp_backoff_factor=0", "train.amp_backoff_factor"),
        ("train.amp_growth_interval=0", "train.amp_growth_interval"),
        ("train.amp_skip_limit=0", "train.amp_skip_limit"),
        ("train.precision=fp8", "train.precision"),
    ] {
        let message = config_error(&[set]);
        assert!(message.contains(key), "{set}: {message}");
    }
    let ok = Config::from_toml_str(
        "",
        "t",
        &[
            "train.amp_growth_factor=1.5".to_string(),
            "train.amp_backoff_factor=0.25".to_string(),
        ],
    )
    .unwrap();
    assert_eq!(
        ScalerConfig::from_train(&ok.train).growth_factor,
        1.5,
        "the key reaches the scaler"
    );
}

/// The scaler's keys change only fp16 runs; set with another precision they are refused, not ignored.
#[test]
fn scaler_keys_outside_fp16_are_refused() {
    for precision in ["fp32", "bf16"] {
        let config = Config::from_toml_str(
            "",
            "t",
            &[
                format!("train.precision={precision}"),
                "train.amp_growth_interval=10".to_string(),
            ],
        )
        .unwrap();
        let err = yolo_burn::amp::check_scaler_keys(&config.train)
            .unwrap_err()
            .to_string();
        assert!(err.contains("train.amp_growth_interval"), "{err}");
        assert!(err.contains("fp16"), "{err}");
    }
    let mut config = Config::default();
    config.train.amp_skip_limit = 5;
    assert!(
        yolo_burn::amp::check_scaler_keys(&config.train).is_ok(),
        "the skip limit serves every precision"
    );
    config.train.precision = Precision::Fp16;
    config.train.amp_init_scale = 8.0;
    assert!(yolo_burn::amp::check_scaler_keys(&config.train).is_ok());
}

/// fp16 and bf16 on burn-ndarray (no half types) are refused naming both keys and the devices that can,
/// with exit code 2, not a panic; whether or not the binary has the ndarray feature.
#[test]
fn half_precision_on_ndarray_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for precision in ["fp16", "bf16"] {
        let out = Command::new(env!("CARGO_BIN_EXE_yolo-burn"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["train", "--quiet", "--set", "train.device=ndarray", "--set"])
            .arg(format!("train.precision={precision}"))
            .arg("--set")
            .arg(format!("train.project={}", dir.path().display()))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        for needle in ["train.precision", "train.device", "ndarray", "\"cpu\""] {
            assert!(stderr.contains(needle), "{needle} missing: {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

fn fp16_request(config: Config, inf_grad_at: Vec<usize>) -> TrainRequest {
    TrainRequest {
        config,
        resume: None,
        quiet: true,
        stop_after_epochs: None,
        nan_loss_at: Vec::new(),
        inf_grad_at,
    }
}

/// In the trainer: when every step's gradients are non-finite, every step is skipped, so the saved masters and
/// the EMA are still the initial weights bit for bit, the optimizer has no state, and the scale backed off
/// once per step; the saved weights are FP32.
#[test]
fn trainer_skipped_steps_never_touch_masters_ema_or_optimizer() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = train::tiny_dataset(&dir.path().join("data"), 8, 4);
    let mut config = train::tiny_config(&dataset, &dir.path().join("runs"), 1);
    config.train.precision = Precision::Fp16;
    let summary = yolo_burn::train::train::<B>(
        fp16_request(config.clone(), (0..2).collect()),
        &Default::default(),
    )
    .unwrap();
    let paths = CheckpointPaths::new(&summary.run_dir.join("weights"), "last");
    let checkpoint = Checkpoint::read(&paths.state).unwrap();
    let amp = checkpoint.state.amp;
    assert!(amp.skipped_steps >= 1);
    assert_eq!(amp.consecutive_skips, amp.skipped_steps);
    assert_eq!(
        amp.scaler.scale,
        65536.0 * 0.5f64.powi(amp.skipped_steps as i32)
    );
    assert_eq!(checkpoint.state.ema_updates, 0);
    assert!(checkpoint.optimizer.slots.is_empty());
    // No step ran, so the masters are still what the EMA started from (bit for bit; BatchNorm running
    // statistics excepted, which every forward in train mode updates).
    let (masters, ema) = (
        safetensors::SafeTensors::deserialize(&checkpoint.model).unwrap(),
        safetensors::SafeTensors::deserialize(&checkpoint.ema).unwrap(),
    );
    let mut compared = 0;
    for name in masters.names() {
        if name.contains("running") || name.contains("num_batches") {
            continue;
        }
        let (m, e) = (masters.tensor(name).unwrap(), ema.tensor(name).unwrap());
        assert_eq!(m.dtype(), safetensors::Dtype::F32, "{name}");
        assert!(
            m.data() == e.data(),
            "{name}: masters moved from the initial weights"
        );
        compared += 1;
    }
    assert!(compared > 100, "{compared}");
    let weights = std::fs::read(&paths.weights).unwrap();
    let weights = safetensors::SafeTensors::deserialize(&weights).unwrap();
    assert!(weights
        .tensors()
        .iter()
        .filter(|(n, _)| !n.contains("num_batches"))
        .all(|(_, v)| v.dtype() == safetensors::Dtype::F32));
    let csv = std::fs::read_to_string(summary.run_dir.join("results.csv")).unwrap();
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .ends_with("amp/scale,amp/skipped_steps"));
}

/// `train.amp_skip_limit` steps skipped in a row stop the run with an error naming the key and the likely
/// causes, instead of training on nothing.
#[test]
fn too_many_skipped_steps_in_a_row_stop_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = train::tiny_dataset(&dir.path().join("data"), 8, 4);
    let mut config = train::tiny_config(&dataset, &dir.path().join("runs"), 3);
    config.train.precision = Precision::Fp16;
    config.train.amp_skip_limit = 2;
    let err = yolo_burn::train::train::<B>(
        fp16_request(config, (0..100).collect()),
        &Default::default(),
    )
    .unwrap_err();
    assert!(matches!(err, YoloError::Diverged(_)), "{err}");
    let message = err.to_string();
    for needle in ["train.amp_skip_limit = 2", "non-finite", "lr0", "NaN"] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
}
