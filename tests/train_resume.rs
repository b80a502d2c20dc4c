//! Resume is exact: 3 epochs in one go equal 2 epochs, a stop, and a resume for the third (losses, model, EMA and
//! optimizer state bit for bit on the CPU backend); and a finished run can be extended with more epochs.

mod train;

use burn::backend::Autodiff;
use yolo_burn::backend::Cpu;
use yolo_burn::train::checkpoint::{Checkpoint, CheckpointPaths};
use yolo_burn::train::{read_resume, TrainRequest};

type B = Autodiff<Cpu>;

/// Burn's seeded generator is process-wide, so two runs initialising models at once would draw from each
/// other's stream; the tests of this file take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(request: TrainRequest) -> yolo_burn::train::TrainSummary {
    yolo_burn::train::train::<B>(request, &Default::default()).expect("training runs")
}

/// Every tensor of two safetensors files is equal bit for bit (the headers' metadata order may differ).
fn same_tensors(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (
        safetensors::SafeTensors::deserialize(a).unwrap(),
        safetensors::SafeTensors::deserialize(b).unwrap(),
    );
    let mut names = a.names();
    names.sort();
    let mut names_b = b.names();
    names_b.sort();
    names == names_b
        && names
            .iter()
            .all(|n| a.tensor(n).unwrap().data() == b.tensor(n).unwrap().data())
}

/// The last checkpoints of run `a` (uninterrupted) and of `b1` stopped then resumed as `b2` are equal: per-epoch
/// losses, training weights (the FP32 masters in fp16), EMA, optimizer state, the mixed-precision state and the
/// metrics, bit for bit. Returns both checkpoints for further checks.
fn assert_resume_exact(
    a: &yolo_burn::train::TrainSummary,
    b1: &yolo_burn::train::TrainSummary,
    b2: &yolo_burn::train::TrainSummary,
) -> (Checkpoint, Checkpoint) {
    let losses_b: Vec<_> = b1
        .epoch_losses
        .iter()
        .chain(&b2.epoch_losses)
        .copied()
        .collect();
    assert_eq!(a.epoch_losses, losses_b, "per-epoch losses differ");
    let read = |s: &yolo_burn::train::TrainSummary| {
        Checkpoint::read(&CheckpointPaths::new(&s.run_dir.join("weights"), "last").state).unwrap()
    };
    let (ca, cb) = (read(a), read(b2));
    assert!(
        same_tensors(&ca.model, &cb.model),
        "training weights differ"
    );
    assert!(same_tensors(&ca.ema, &cb.ema), "EMA weights differ");
    assert!(ca.optimizer == cb.optimizer, "optimizer state differs");
    assert_eq!(ca.state.ema_updates, cb.state.ema_updates);
    assert_eq!(ca.state.amp, cb.state.amp, "scaler or skip counts differ");
    assert_eq!(ca.state.skipped_steps, cb.state.skipped_steps);
    assert_eq!(ca.state.metrics, cb.state.metrics);
    (ca, cb)
}

#[test]
fn resume_after_two_epochs_equals_three_in_one_go_and_extends() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let dataset = train::tiny_dataset(&dir.path().join("data"), 10, 4);

    // A: three epochs straight.
    let config_a = train::tiny_config(&dataset, &dir.path().join("a"), 3);
    let a = run(TrainRequest {
        config: config_a,
        resume: None,
        quiet: true,
        stop_after_epochs: None,
        nan_loss_at: Vec::new(),
        inf_grad_at: Vec::new(),
    });
    assert_eq!(a.epochs_done, 3);

    // B: the same run stopped after two epochs, then resumed from weights/last.
    let config_b = train::tiny_config(&dataset, &dir.path().join("b"), 3);
    let b1 = run(TrainRequest {
        config: config_b,
        resume: None,
        quiet: true,
        stop_after_epochs: Some(2),
        nan_loss_at: Vec::new(),
        inf_grad_at: Vec::new(),
    });
    assert_eq!(b1.epochs_done, 2);
    let last = b1.run_dir.join("weights/last");
    let (config, paths, checkpoint) = read_resume(&last, &[]).unwrap();
    let b2 = run(TrainRequest {
        config,
        resume: Some((paths, checkpoint)),
        quiet: true,
        stop_after_epochs: None,
        nan_loss_at: Vec::new(),
        inf_grad_at: Vec::new(),
    });
    assert_eq!(b2.epochs_done, 3);
    assert_resume_exact(&a, &b1, &b2);

    // Extending the finished run A to 4 epochs continues from its last checkpoint.
    let (config, paths, checkpoint) = read_resume(
        &a.run_dir.join("weights/last.state"),
        &["train.epochs=4".to_string()],
    )
    .unwrap();
    assert_eq!(config.train.epochs, 4);
    let a2 = run(TrainRequest {
        config,
        resume: Some((paths, checkpoint)),
        quiet: true,
        stop_after_epochs: None,
        nan_loss_at: Vec::new(),
        inf_grad_at: Vec::new(),
    });
    assert_eq!(a2.epochs_done, 4);
    assert_eq!(a2.epoch_losses.len(), 1);
    let csv = std::fs::read_to_string(a.run_dir.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(a.run_dir.join("results.png").exists());
    assert!(a.run_dir.join("args.toml").exists());
    assert!(a.run_dir.join("weights/best.safetensors").exists());
}

/// fp16 resume is as exact as fp32's: the masters, the scaler (scale, growth tracker) and the skip counts come
/// back, so 2 epochs + resume equal 3 in one go bit for bit. A short growth interval and an injected overflow
/// make the scale move and a step skip before the stop.
#[test]
fn fp16_resume_restores_masters_scaler_and_skips_exactly() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let dataset = train::tiny_dataset(&dir.path().join("data"), 10, 4);
    let fp16 = |name: &str| {
        let mut config = train::tiny_config(&dataset, &dir.path().join(name), 3);
        config.train.precision = yolo_burn::config::Precision::Fp16;
        config.train.amp_growth_interval = 2;
        config.train.amp_init_scale = 1024.0;
        config
    };
    let request = |config, stop_after_epochs| TrainRequest {
        config,
        resume: None,
        quiet: true,
        stop_after_epochs,
        nan_loss_at: Vec::new(),
        inf_grad_at: vec![2],
    };
    let a = run(request(fp16("a"), None));
    let b1 = run(request(fp16("b"), Some(2)));
    let (config, paths, checkpoint) = read_resume(&b1.run_dir.join("weights/last"), &[]).unwrap();
    assert_eq!(
        config.train.precision,
        yolo_burn::config::Precision::Fp16,
        "the checkpoint's config keeps the precision"
    );
    let mid = checkpoint.state.amp;
    assert!(mid.skipped_steps >= 1, "{mid:?}");
    let b2 = run(TrainRequest {
        config,
        resume: Some((paths, checkpoint)),
        quiet: true,
        stop_after_epochs: None,
        nan_loss_at: Vec::new(),
        inf_grad_at: Vec::new(),
    });
    let (ca, _) = assert_resume_exact(&a, &b1, &b2);
    assert_ne!(ca.state.amp.scaler.scale, 1024.0, "the scale never moved");
    let csv = std::fs::read_to_string(b2.run_dir.join("results.csv")).unwrap();
    let last = csv.lines().last().unwrap();
    assert!(
        last.ends_with(&format!(",{}", ca.state.amp.skipped_steps)),
        "{last}"
    );
}
