//! The training loop, Ultralytics' `BaseTrainer._do_train` on Burn: epochs over the data loader, forward in
//! train mode on the autodiff backend, loss, backward, gradient accumulation, the optimizer step with the
//! per-iteration schedule, the EMA, validation of the EMA each epoch, best/last checkpoints, results.csv, early
//! stopping on `patience`.
//!
//! Resume is exact: the checkpoint holds the training model, the EMA, the optimizer state, the gradients
//! accumulated since the last step, and where the loop stands (next iteration, last step); the data order is a
//! function of (seed, epoch). Extending a finished run (`--set train.epochs=N`, N larger) resumes with the new
//! epoch count, which changes `lf` from then on, as a fresh run of N epochs would have it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::ToElement;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::FloatDType;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::checkpoint::{Checkpoint, CheckpointPaths, TrainState, ValMetrics};
use super::ema::{all_finite, ModelEma};
use super::optim::{
    grads_from_records, grads_to_records, nominal_accumulate, Optimizer, ResolvedOptimizer,
    StepOutcome,
};
use super::results::{read_rows, write_results, EpochRow, TrainLosses};
use super::schedule::Schedule;
use crate::amp::{self, MasterWeights, ScalerConfig};
use crate::backend::{BackendChoice, BackendJob};
use crate::config::Config;
use crate::data::loader::{Loader, LoaderConfig};
use crate::data::{read_index, Index, SplitName};
use crate::eval::coco::CocoGroundTruth;
use crate::eval::nms::NmsConfig;
use crate::loss::DetectionLossConfig;
use crate::model::meta::WeightsMeta;
use crate::model::weights::{
    load_ultralytics, load_ultralytics_bytes, ultralytics_bytes, write_atomic,
};
use crate::model::{HeadOutput, Yolo, YoloConfig};
use crate::predict::Detector;
use crate::runs::unique_run_dir;
use crate::validate::{validate, ClassTable, ValidationPlots};
use crate::YoloError;

/// What to train: a config, and optionally the checkpoint to continue.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    pub config: Config,
    /// A checkpoint read by [`read_resume`], whose run folder is reused.
    pub resume: Option<(CheckpointPaths, Checkpoint)>,
    /// Only errors and the final summary.
    pub quiet: bool,
    /// Stop (as if killed) after this many epochs of this process; for tests of resume. `None`: run to the end.
    pub stop_after_epochs: Option<usize>,
    /// Multiply the loss by NaN at these global iterations: fault injection for the tests that show a
    /// non-finite loss never reaches the weights, the EMA or a checkpoint. Empty in real runs.
    pub nan_loss_at: Vec<usize>,
    /// Multiply the (finite) loss by infinity just before backward at these global iterations, so the step
    /// that sums them sees non-finite gradients: fault injection for the tests of the skipped step and of
    /// `train.amp_skip_limit`. Empty in real runs.
    pub inf_grad_at: Vec<usize>,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    pub run_dir: PathBuf,
    pub epochs_done: usize,
    pub best_fitness: Option<f64>,
    pub last_metrics: Option<ValMetrics>,
    /// Mean training losses of every epoch this process ran, in order.
    pub epoch_losses: Vec<TrainLosses>,
    pub skipped_steps: u64,
    pub seconds: f64,
}

/// Reads `--resume X` and rebuilds the run's config from the checkpoint, with `overrides` (`--set`) applied on
/// top, so `--set train.epochs=N` extends a run.
pub fn read_resume(
    arg: &Path,
    overrides: &[String],
) -> Result<(Config, CheckpointPaths, Checkpoint), YoloError> {
    let paths = CheckpointPaths::from_resume_arg(arg);
    let checkpoint = Checkpoint::read(&paths.state)?;
    let config = Config::from_toml_str(
        &checkpoint.state.config_toml,
        &paths.state.display().to_string(),
        overrides,
    )
    .map_err(|e| YoloError::InvalidConfig(e.to_string()))?;
    Ok((config, paths, checkpoint))
}

/// The job [`crate::backend::dispatch`] runs.
pub struct TrainJob(pub TrainRequest);

impl BackendJob for TrainJob {
    type Output = Result<TrainSummary, YoloError>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        train::<B>(self.0, &device)
    }
}

/// Everything fixed for the run.
struct Setup {
    run_dir: PathBuf,
    weights_dir: PathBuf,
    train_index: Index,
    val_index: Index,
    nc: usize,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> YoloError + '_ {
    move |source| YoloError::Io {
        path: path.into(),
        source,
    }
}

fn setup(request: &TrainRequest) -> Result<Setup, YoloError> {
    let config = &request.config;
    let run_dir = match &request.resume {
        Some((paths, _)) => paths.run_dir(),
        None => unique_run_dir(
            &config.train.project,
            &config.train.name,
            config.train.exist_ok,
        ),
    };
    let weights_dir = run_dir.join("weights");
    std::fs::create_dir_all(&weights_dir).map_err(io_err(&weights_dir))?;
    write_atomic(
        &run_dir.join("args.toml"),
        config.to_toml_string().as_bytes(),
    )?;
    let train_index = read_index(
        &config.data.dataset,
        config.data.images.as_deref(),
        SplitName::Train,
    )?;
    train_index.check_strict(config.data.strict)?;
    let val_index = read_index(
        &config.data.dataset,
        config.data.images.as_deref(),
        SplitName::Val,
    )?;
    let mut train_index = train_index;
    if config.data.fraction < 1.0 {
        let keep =
            ((train_index.images.len() as f64 * config.data.fraction).round() as usize).max(1);
        train_index.images.truncate(keep);
    }
    let nc = config.model.nc.unwrap_or(train_index.nc());
    if nc != train_index.nc() {
        return Err(YoloError::InvalidConfig(format!(
            "model.nc = {nc} but the dataset has {} classes; leave model.nc unset to take the dataset's",
            train_index.nc()
        )));
    }
    Ok(Setup {
        run_dir,
        weights_dir,
        train_index,
        val_index,
        nc,
    })
}

/// Trains as the module doc says.
pub fn train<B: AutodiffBackend>(
    request: TrainRequest,
    device: &B::Device,
) -> Result<TrainSummary, YoloError> {
    let started = Instant::now();
    let config = request.config.clone();
    config
        .validate()
        .map_err(|e| YoloError::InvalidConfig(e.to_string()))?;
    let t = &config.train;
    let device_choice: BackendChoice = t.device.parse().map_err(YoloError::InvalidConfig)?;
    amp::check_backend(device_choice, t.precision)?;
    amp::check_scaler_keys(t)?;
    let setup = setup(&request)?;
    // Training batches come from data::loader (mosaic, HSV, perspective, flips; a pure function of
    // (seed, epoch, index), with close_mosaic). Validation goes through `crate::validate`, as `yolo-burn val`
    // does: the loader's rectangular val batches, NMS, boxes back in original pixels, COCO evaluation.
    let train_loader = Loader::new(&setup.train_index, LoaderConfig::train(&config)?)?;
    let val_gt = CocoGroundTruth::from_index(&setup.val_index);
    let nb = train_loader.len();

    let model_config = YoloConfig::new(config.model.arch, config.model.scale, setup.nc);
    B::seed(device, t.seed);
    let mut model: Yolo<B> = model_config.init(device);
    let mut optimizer = Optimizer::<B::InnerBackend>::new(
        ResolvedOptimizer::new(t, setup.nc, setup.train_index.images.len()).method,
        t.max_grad_norm,
    );
    let mut accumulator = GradientsAccumulator::<Yolo<B>>::new();
    // The FP32 model (the masters in fp16/bf16, whose `model` section a checkpoint holds) before the compute
    // model is made from it.
    let ema_state = match &request.resume {
        Some((paths, checkpoint)) => {
            model = load_ultralytics_bytes(model, checkpoint.model.clone(), &paths.state)?;
            optimizer.load_record(checkpoint.optimizer.clone(), device);
            let ema_model = load_ultralytics_bytes(
                model_config.init::<B::InnerBackend>(device),
                checkpoint.ema.clone(),
                &paths.state,
            )?;
            Some(ema_model)
        }
        None => {
            if let Some(weights) = &config.model.weights {
                crate::export::refuse_fused(weights)?;
                model = load_ultralytics(model, weights)?;
            }
            None
        }
    };
    let (mut amp, compute) =
        MasterWeights::new(model, t.precision, optimizer, ScalerConfig::from_train(t));
    let mut model = compute;
    let (mut state, mut ema) = match (&request.resume, ema_state) {
        (Some((_, checkpoint)), Some(ema_model)) => {
            amp.restore(checkpoint.state.amp);
            let pending =
                grads_from_records::<B, _>(&model, checkpoint.pending_grads.clone(), device);
            if !pending.is_empty() {
                accumulator.accumulate(&model, pending);
            }
            let mut state = checkpoint.state.clone();
            state.config_toml = config.to_toml_string();
            (
                state,
                ModelEma::new(ema_model, checkpoint.state.ema_updates),
            )
        }
        _ => {
            let state = TrainState {
                epochs_done: 0,
                next_iteration: 0,
                last_opt_step: -1,
                best_fitness: None,
                best_epoch: 0,
                ema_updates: 0,
                skipped_steps: 0,
                optimizer: ResolvedOptimizer::new(t, setup.nc, setup.train_index.images.len()),
                data_seed: t.seed,
                amp: amp.state(),
                config_toml: config.to_toml_string(),
                metrics: None,
            };
            let ema = ModelEma::new(amp.fp32_model(&model), 0);
            (state, ema)
        }
    };
    let accumulate = nominal_accumulate(t).min(nb * t.epochs).max(1);
    let schedule = Schedule {
        optimizer: state.optimizer,
        epochs: t.epochs,
        batches_per_epoch: nb,
        warmup_epochs: t.warmup_epochs,
        warmup_momentum: t.warmup_momentum,
        lrf: t.lrf,
        cos_lr: t.cos_lr,
        accumulate,
    };
    let loss_fn = DetectionLossConfig::new()
        .with_box_gain(t.box_gain)
        .with_cls_gain(t.cls_gain)
        .with_dfl_gain(t.dfl_gain)
        .init();
    // The same NMS as `yolo-burn val` (eval.conf, iou, max_det, agnostic_nms).
    let nms = NmsConfig::val_with(&config.eval);
    // What the saved weights say about themselves, so predict, val and info need only the file.
    let describe = WeightsMeta {
        arch: Some(config.model.arch),
        scale: Some(config.model.scale),
        nc: Some(setup.nc),
        names: Some(setup.train_index.names.clone()),
        imgsz: Some(t.imgsz),
    };
    let results_path = setup.run_dir.join("results.csv");
    let mut rows = read_rows(&results_path, state.epochs_done);
    let time_offset = rows.last().map_or(0.0, |r| r.time_s);
    let say = |text: &str| {
        if !request.quiet {
            eprintln!("{text}");
        }
    };
    say(&format!(
        "train: {} train, {} val images at imgsz {}, batch {}, {nb} batches/epoch; {:?} lr0 {} momentum {} \
         (accumulate {accumulate}, weight decay {:.3e}); logging to {}",
        setup.train_index.images.len(),
        setup.val_index.images.len(),
        t.imgsz,
        t.batch,
        state.optimizer.method,
        state.optimizer.lr0,
        state.optimizer.momentum,
        state.optimizer.weight_decay,
        setup.run_dir.display()
    ));
    say(&format!(
        "{device_choice}: {}",
        amp::describe(device_choice, t.precision)
    ));
    let mut summary = TrainSummary {
        run_dir: setup.run_dir.clone(),
        epochs_done: state.epochs_done,
        best_fitness: state.best_fitness,
        last_metrics: state.metrics,
        epoch_losses: Vec::new(),
        skipped_steps: state.skipped_steps,
        seconds: 0.0,
    };
    let mut epochs_this_process = 0;
    // Ultralytics' final_eval validates best.pt with plots on: the best epoch's validation (the EMA best.pt
    // holds) gives the same pictures, kept here until training ends; the latest stands in when no epoch of this
    // process improved (a resumed run).
    let (mut best_plots, mut last_plots): (Option<ValidationPlots>, Option<ValidationPlots>) =
        (None, None);
    let mut stopped_early = false;
    while state.epochs_done < t.epochs {
        let epoch = state.epochs_done;
        let bar = progress_bar(nb, request.quiet);
        let mut sums = [0f64; 3];
        let mut counted = 0usize;
        let mut lr = [0f64; 3];
        let epoch_start = Instant::now();
        for (i, batch) in train_loader.epoch(epoch).enumerate() {
            let batch = batch?;
            let ni = epoch * nb + i;
            let plan = schedule.at(epoch, ni);
            lr = plan.hyper.map(|h| h.lr);
            let out = model.forward(amp.to_compute(batch.images_tensor::<B>(device)));
            let out = head_in_f32(out);
            let mut loss = loss_fn.forward(&out, &batch.loss_targets())?;
            if request.nan_loss_at.contains(&ni) {
                loss.total = loss.total * f32::NAN;
                loss.parts.box_loss = loss.parts.box_loss * f32::NAN;
            }
            let batch_images = batch.len();
            let parts = [
                loss.parts.box_loss.clone(),
                loss.parts.cls_loss.clone(),
                loss.parts.dfl_loss.clone(),
            ]
            .map(|p| p.into_scalar().to_f64());
            let total = loss.total.clone().into_scalar().to_f64();
            if total.is_finite() && parts.iter().all(|p| p.is_finite()) {
                let mut scaled = amp.scale_loss(loss.total);
                if request.inf_grad_at.contains(&ni) {
                    scaled = scaled * f32::INFINITY;
                }
                let grads = GradientsParams::from_grads(scaled.backward(), &model);
                accumulator.accumulate(&model, amp.grads_to_f32(&model, grads));
                for (s, p) in sums.iter_mut().zip(parts) {
                    *s += p;
                }
                counted += 1;
            } else {
                state.skipped_steps += 1;
                bar.println(format!(
                    "warning: non-finite loss at epoch {} batch {i} (box {}, cls {}, dfl {}); batch skipped",
                    epoch + 1,
                    parts[0],
                    parts[1],
                    parts[2]
                ));
            }
            if ni as i64 - state.last_opt_step >= plan.accumulate as i64 {
                let grads = accumulator.grads();
                let (stepped, outcome) = amp.step(model, grads, plan.step_hyper());
                model = stepped;
                state.last_opt_step = ni as i64;
                state.amp = amp.state();
                match outcome {
                    StepOutcome::Applied { .. } => {
                        if ema.update(&amp.fp32_model(&model)).is_err() {
                            state.skipped_steps += 1;
                            bar.println(
                                "warning: non-finite weights after a step; the EMA was not updated",
                            );
                        }
                    }
                    StepOutcome::SkippedNonFinite => {
                        state.skipped_steps += 1;
                        bar.println(format!(
                            "warning: non-finite gradients; optimizer step skipped{}",
                            if amp.scaler().enabled() {
                                format!(", loss scale now {}", amp.scaler().scale())
                            } else {
                                String::new()
                            }
                        ));
                    }
                }
                if amp.consecutive_skips() >= t.amp_skip_limit as u64 {
                    bar.abandon();
                    return Err(YoloError::Diverged(format!(
                        "{} optimizer steps in a row had non-finite gradients (epoch {}, batch {i}{}; \
                         train.amp_skip_limit = {}): the learning rate probably diverges (lower train.lr0) or \
                         the data holds NaN; weights/last keeps the last good state (epoch {})",
                        amp.consecutive_skips(),
                        epoch + 1,
                        if amp.scaler().enabled() {
                            format!(", loss scale {}", amp.scaler().scale())
                        } else {
                            String::new()
                        },
                        t.amp_skip_limit,
                        state.epochs_done
                    )));
                }
            }
            state.next_iteration = ni + 1;
            let n = counted.max(1) as f64;
            let elapsed = epoch_start.elapsed().as_secs_f64().max(1e-9);
            let scale = if amp.scaler().enabled() {
                format!(" scale {}", amp.scaler().scale())
            } else {
                String::new()
            };
            bar.set_message(format!(
                "{}/{} box {:.4} cls {:.4} dfl {:.4} inst {:>3}{scale} {:.1} img/s",
                epoch + 1,
                t.epochs,
                sums[0] / n,
                sums[1] / n,
                sums[2] / n,
                batch.targets.len(),
                ((i + 1) * batch_images) as f64 / elapsed
            ));
            bar.inc(1);
        }
        bar.finish();
        let n = counted.max(1) as f64;
        let losses = TrainLosses {
            box_loss: sums[0] / n,
            cls_loss: sums[1] / n,
            dfl_loss: sums[2] / n,
        };
        summary.epoch_losses.push(losses);
        state.ema_updates = ema.updates;
        state.epochs_done = epoch + 1;
        let final_epoch = state.epochs_done >= t.epochs;
        let mut improved = false;
        if t.val || final_epoch {
            let detector = Detector {
                model: (&ema.model).into(),
                imgsz: t.imgsz,
                nms,
            };
            let validation = validate(
                &detector,
                &setup.val_index,
                &val_gt,
                LoaderConfig::val(&config),
                device,
                Some(&loss_fn),
            )?;
            say(&ClassTable(&validation.rows).to_string());
            let metrics = ValMetrics::from_validation(&validation);
            let fitness = metrics.fitness();
            state.metrics = Some(metrics);
            // EarlyStopping: a better fitness, or the first epochs at zero, moves the best epoch.
            if state.best_fitness.is_none_or(|b| fitness > b || b == 0.0) {
                improved = true;
                state.best_fitness = Some(fitness);
                state.best_epoch = state.epochs_done;
                best_plots = Some(validation.plots());
            } else {
                last_plots = Some(validation.plots());
            }
        }
        rows.push(EpochRow {
            epoch: state.epochs_done,
            time_s: time_offset + started.elapsed().as_secs_f64(),
            train: losses,
            val: state.metrics.unwrap_or_default(),
            lr,
            amp_scale: f64::from(amp.scaler().scale()),
            amp_skipped_steps: amp.skipped_steps(),
        });
        write_results(&setup.run_dir, &rows)?;
        // Gradients summed since the last step go into the checkpoint, then back into the accumulator.
        let mut pending = accumulator.grads();
        let pending_grads = grads_to_records::<B, _>(&model, &mut pending);
        let restored = grads_from_records::<B, _>(&model, pending_grads.clone(), device);
        if !restored.is_empty() {
            accumulator.accumulate(&model, restored);
        }
        let checkpoint = Checkpoint {
            state: state.clone(),
            model: Vec::new(),
            ema: Vec::new(),
            optimizer: amp.optimizer().to_record(),
            pending_grads,
        };
        save::<B>(
            &amp.fp32_model(&model),
            &ema,
            &describe,
            checkpoint,
            &setup.weights_dir,
            improved,
            t.save_period,
        )?;
        summary.epochs_done = state.epochs_done;
        summary.best_fitness = state.best_fitness;
        summary.last_metrics = state.metrics;
        summary.skipped_steps = state.skipped_steps;
        epochs_this_process += 1;
        if t.patience > 0 && state.epochs_done - state.best_epoch >= t.patience && !final_epoch {
            say(&format!(
                "EarlyStopping: no improvement in the last {} epochs; best was epoch {}",
                t.patience, state.best_epoch
            ));
            stopped_early = true;
            break;
        }
        if request
            .stop_after_epochs
            .is_some_and(|n| epochs_this_process >= n)
        {
            break;
        }
    }
    if stopped_early || state.epochs_done >= t.epochs {
        if let Some(plots) = best_plots.as_ref().or(last_plots.as_ref()) {
            plots.write(&setup.run_dir, &setup.val_index.names)?;
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    if !request.quiet || summary.epochs_done >= t.epochs {
        eprintln!(
            "{} epochs completed in {:.1} s; mAP50 {:.3}, mAP50-95 {:.3}; weights in {}",
            summary.epochs_done,
            summary.seconds,
            summary.last_metrics.map_or(0.0, |m| m.map50),
            summary.last_metrics.map_or(0.0, |m| m.map50_95),
            setup.weights_dir.display()
        );
    }
    Ok(summary)
}

/// Writes `last` (and `best` when `improved`, and `epoch<N>` every `save_period` epochs), refusing weights that
/// are not finite so that a corrupt model never replaces a good checkpoint.
#[allow(clippy::too_many_arguments)]
fn save<B: AutodiffBackend>(
    inner: &Yolo<B::InnerBackend>,
    ema: &ModelEma<B::InnerBackend>,
    describe: &WeightsMeta,
    mut checkpoint: Checkpoint,
    weights_dir: &Path,
    improved: bool,
    save_period: i64,
) -> Result<(), YoloError> {
    if !all_finite(inner) || !all_finite(&ema.model) {
        eprintln!("warning: non-finite weights; checkpoint not written (the previous one is kept)");
        return Ok(());
    }
    let last = CheckpointPaths::new(weights_dir, "last");
    let mut metadata = HashMap::new();
    describe.to_metadata(&mut metadata);
    metadata.insert(
        "epoch".to_string(),
        checkpoint.state.epochs_done.to_string(),
    );
    if let Some(m) = checkpoint.state.metrics {
        metadata.insert("fitness".to_string(), m.fitness().to_string());
    }
    let ema_bytes = ultralytics_bytes(&ema.model, &last.weights, &metadata)?;
    checkpoint.model = ultralytics_bytes(inner, &last.state, &HashMap::new())?;
    checkpoint.ema = ema_bytes.clone();
    let state_bytes = checkpoint.to_bytes()?;
    let mut names = vec!["last".to_string()];
    if improved {
        names.push("best".to_string());
    }
    if save_period > 0 && checkpoint.state.epochs_done as i64 % save_period == 0 {
        names.push(format!("epoch{}", checkpoint.state.epochs_done));
    }
    for name in names {
        let paths = CheckpointPaths::new(weights_dir, &name);
        write_atomic(&paths.weights, &ema_bytes)?;
        write_atomic(&paths.state, &state_bytes)?;
    }
    Ok(())
}

/// The head's outputs in f32 for the loss (a no-op in fp32): the assigner, IoUs, the DFL softmax and the BCE
/// sums run in f32 whatever the model computes in, as autocast runs them.
fn head_in_f32<B: AutodiffBackend>(out: HeadOutput<B>) -> HeadOutput<B> {
    let f32 = burn::tensor::DType::F32;
    if out.boxes.dtype() == f32 && out.scores.dtype() == f32 {
        return out;
    }
    HeadOutput {
        boxes: crate::kernels::cast(out.boxes, FloatDType::F32),
        scores: crate::kernels::cast(out.scores, FloatDType::F32),
        grids: out.grids,
    }
}

fn progress_bar(len: usize, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    } else {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}]",
        ) {
            bar.set_style(style);
        }
    }
    bar
}
