//! Faults never corrupt a run: a NaN loss is skipped (weights, EMA and checkpoints stay finite), and a process
//! killed with SIGKILL at any moment, also while writing checkpoints, leaves a loadable `last`.

mod train;

use std::process::Command;
use std::time::Duration;

use burn::backend::Autodiff;
use yolo_burn::backend::Cpu;
use yolo_burn::config::{Arch, ScaleName};
use yolo_burn::model::weights::load_ultralytics;
use yolo_burn::model::YoloConfig;
use yolo_burn::train::checkpoint::{Checkpoint, CheckpointPaths};
use yolo_burn::train::TrainRequest;

type B = Autodiff<Cpu>;

#[test]
fn nan_loss_is_skipped_and_never_reaches_weights() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = train::tiny_dataset(&dir.path().join("data"), 8, 4);
    let config = train::tiny_config(&dataset, &dir.path().join("runs"), 2);
    let summary = yolo_burn::train::train::<B>(
        TrainRequest {
            config,
            resume: None,
            quiet: true,
            stop_after_epochs: None,
            nan_loss_at: vec![0, 1, 3],
            inf_grad_at: Vec::new(),
        },
        &Default::default(),
    )
    .unwrap();
    assert_eq!(summary.skipped_steps, 3);
    assert!(summary
        .epoch_losses
        .iter()
        .all(|l| l.box_loss.is_finite() && l.cls_loss.is_finite() && l.dfl_loss.is_finite()));
    let paths = CheckpointPaths::new(&summary.run_dir.join("weights"), "last");
    let checkpoint = Checkpoint::read(&paths.state).unwrap();
    for bytes in [&checkpoint.model, &checkpoint.ema] {
        let tensors = safetensors::SafeTensors::deserialize(bytes).unwrap();
        for (name, view) in tensors.tensors() {
            if view.dtype() == safetensors::Dtype::F32 {
                assert!(
                    view.data()
                        .chunks_exact(4)
                        .all(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite()),
                    "{name} is not finite"
                );
            }
        }
    }
    // The EMA was updated only by real steps: 2 epochs × 2 batches, 3 NaN batches, accumulate ramps from 1.
    assert!(checkpoint.state.ema_updates >= 1);
}

#[test]
fn sigkill_during_training_always_leaves_a_loadable_last() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = train::tiny_dataset(&dir.path().join("data"), 8, 4);
    let project = dir.path().join("runs");
    let config = train::tiny_config(&dataset, &project, 1000);
    let config_path = dir.path().join("tiny.toml");
    std::fs::write(&config_path, config.to_toml_string()).unwrap();
    let weights = project.join("run/weights");
    let mut loaded = 0;
    // Kill at spread-out moments; an epoch here is ~1 s and ends with writing last.{safetensors,state}.
    for round in 0..6u64 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_yolo-burn"))
            .args(["train", "--quiet", "--exist-ok", "--config"])
            .arg(&config_path)
            .spawn()
            .expect("spawn yolo-burn");
        std::thread::sleep(Duration::from_millis(2500 + round * 370));
        child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
        let _ = child.wait();
        let last = CheckpointPaths::new(&weights, "last");
        if last.state.exists() {
            let checkpoint = Checkpoint::read(&last.state).expect("last.state loads after kill -9");
            assert!(checkpoint.state.epochs_done >= 1);
            let model =
                YoloConfig::new(Arch::Yolov8, ScaleName::N, 2).init::<Cpu>(&Default::default());
            load_ultralytics(model, &last.weights).expect("last.safetensors loads after kill -9");
            loaded += 1;
        }
        // No temporary file may be mistaken for a checkpoint: only the named files count.
    }
    assert!(loaded >= 3, "too few rounds reached a checkpoint: {loaded}");
}
