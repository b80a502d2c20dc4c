//! The `yolo-burn` command line: parse, load the config, dispatch. Errors print once, here, and exit 2.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use burn::tensor::backend::{AutodiffBackend, Backend};
use yolo_burn::backend::{self, BackendChoice, BackendJob};
use yolo_burn::bench::loader::LoaderBench;
use yolo_burn::bench::ModelBench;
use yolo_burn::config::{Arch, Config, ExportFormat, Kernels, Precision, ScaleName, Split};
use yolo_burn::data::loader::{Loader, LoaderConfig};
use yolo_burn::data::preview::render_batch;
use yolo_burn::data::summary::Summary;
use yolo_burn::data::DatasetSpec;
use yolo_burn::data::{read_index, Index, SplitName};
use yolo_burn::eval::coco::{self, read_detections, CocoGroundTruth};
use yolo_burn::eval::nms::NmsConfig;
use yolo_burn::model::meta::{resolve as resolve_weights, WeightsMeta};
use yolo_burn::model::weights::load_ultralytics;
use yolo_burn::model::yolo::parameter_count;
use yolo_burn::model::Yolo;
use yolo_burn::model::{Layer, YoloConfig};
use yolo_burn::predict::onnx::{OnnxHead, OnnxModel};
use yolo_burn::predict::run::{predict_files, PredictOptions, PredictSummary};
use yolo_burn::predict::sources::expand;
use yolo_burn::predict::{DetectModel, Detector};
use yolo_burn::runs::create_run_dir;
use yolo_burn::validate::{validate, ClassTable, Validation};
use yolo_burn::YoloError;

/// Train, evaluate and export YOLOv8 and YOLO11 object detectors, on Burn.
///
/// Every subcommand reads a TOML config (`--config`, default configs/yolo.toml) whose keys can be overridden
/// with `--set section.key=value`, as Ultralytics' `key=value` arguments.
#[derive(Parser, Debug)]
#[command(name = "yolo-burn", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a detector: writes <project>/<name>/ (args.toml, results.csv, results.png, weights/{last,best}).
    Train(TrainArgs),
    /// Evaluate a checkpoint over a dataset split (`--weights`: Ultralytics' per-class table, pycocotools' stats,
    /// predictions.json, plots), or COCO results against COCO ground truth (`--gt`, `--predictions`), as
    /// pycocotools does.
    Val(ValArgs),
    /// Detect objects in images: annotated copies, a JSON file per image, optionally YOLO txt labels.
    Predict(PredictArgs),
    /// Export a checkpoint to ONNX that TensorRT 8.5+ and DeepStream read as is: Conv+BN folded, SiLU as
    /// x·sigmoid(x), a raw, DeepStream or EfficientNMS_TRT output head, fp32 or fp16 inside.
    Export(ExportArgs),
    /// Print the model summary: layers, parameters and GFLOPs at the configured imgsz.
    Info(InfoArgs),
    /// Time forward and forward+backward of a model on a backend, or the data loader (`bench loader`); see
    /// docs/benchmarks.md.
    Bench(BenchArgs),
    /// Dataset tools: `data check` validates a dataset and prints its summary; `data preview` draws an
    /// augmented training batch.
    Data(DataArgs),
}

#[derive(Args, Debug)]
struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Subcommand, Debug)]
enum DataCommand {
    /// Read every split of a dataset, validate images and labels, and print images, boxes, per-class counts
    /// and problems (each named by file and line). Exits 0 unless `data.strict = true` and a problem exists.
    Check(DataCheckArgs),
    /// Write the first augmented training batch as a grid with boxes and class names, like Ultralytics'
    /// train_batch0.jpg.
    Preview(PreviewArgs),
}

#[derive(Args, Debug)]
struct PreviewArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Output image (JPEG or PNG, by extension).
    #[arg(long, default_value = "train_batch0.jpg")]
    out: PathBuf,
    /// Epoch whose first batch is drawn (0-based; the last `train.close_mosaic` epochs show no mosaic).
    #[arg(long, default_value_t = 0)]
    epoch: usize,
}

/// The config file and its overrides, shared by every subcommand.
#[derive(Args, Debug)]
struct ConfigArgs {
    /// TOML config file; without it, the built-in defaults (documented in configs/yolo.toml).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Override a config key, e.g. `--set train.epochs=10 --set model.scale=s` (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    overrides: Vec<String>,
}

impl ConfigArgs {
    /// The config, with its `train.kernels` choice applied to every model this process runs.
    fn load(&self) -> Result<Config> {
        let config = match &self.config {
            Some(path) => Config::load(path, &self.overrides)?,
            None => Config::from_defaults(&self.overrides)?,
        };
        yolo_burn::kernels::select(config.train.kernels);
        Ok(config)
    }

    /// The `section.key`s the config file and `--set` give (the rest are built-in defaults).
    fn explicit_keys(&self) -> BTreeSet<String> {
        let text = self
            .config
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        Config::explicit_keys(&text, &self.overrides)
    }
}

#[derive(Args, Debug)]
struct TrainArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Continue a run from its `weights/last` checkpoint.
    #[arg(long, value_name = "CHECKPOINT")]
    resume: Option<PathBuf>,
    /// Run folder name under `train.project` (overrides `train.name`).
    #[arg(long)]
    name: Option<String>,
    /// Reuse an existing run folder instead of suffixing the name.
    #[arg(long)]
    exist_ok: bool,
    /// Only print errors and the final summary.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct ValArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// COCO instances JSON (ground truth). With --predictions, evaluates that results file with no model.
    #[arg(long, value_name = "INSTANCES_JSON", requires = "predictions")]
    gt: Option<PathBuf>,
    /// COCO results JSON: an array of {image_id, category_id, bbox [x, y, w, h], score}.
    #[arg(long, value_name = "RESULTS_JSON", requires = "gt")]
    predictions: Option<PathBuf>,
    /// Print the 12 stats and per-category AP as one JSON object instead of pycocotools' text.
    #[arg(long)]
    json: bool,
    /// Ultralytics-layout safetensors weights to evaluate (`export --format burn`'s too), or an ONNX file from
    /// `yolo-burn export` (raw or deepstream head, run with tract at the file's input size and batch) (overrides
    /// `model.weights`).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Run folder name under `train.project`; an existing one gets a numeric suffix.
    #[arg(long, default_value = "val")]
    name: String,
    /// Reuse an existing run folder.
    #[arg(long)]
    exist_ok: bool,
}

#[derive(Args, Debug)]
struct PredictArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Ultralytics-layout safetensors weights (`export --format burn`'s too), or an ONNX file from `yolo-burn
    /// export` (raw or deepstream head, run with tract, images letterboxed into its input size) (overrides
    /// `model.weights`).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// An image, a folder of images, or a glob pattern (quote it).
    #[arg(long)]
    source: String,
    /// Also write labels/<stem>.txt: `class cx cy w h conf`, normalised (Ultralytics' save_txt + save_conf).
    #[arg(long)]
    save_txt: bool,
    /// Run folder name under `train.project`; an existing one gets a numeric suffix.
    #[arg(long, default_value = "predict")]
    name: String,
    /// Reuse an existing run folder.
    #[arg(long)]
    exist_ok: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// `export`'s flags; where `[export]` has the same key, the flag overrides it.
#[derive(Args, Debug)]
struct ExportArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Weights to export: our `weights/best` safetensors or an Ultralytics-layout one (overrides
    /// `model.weights`).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Output format (overrides `export.format`): `onnx`, or `burn`: a safetensors Burn record of the model with
    /// Conv+BN fused (f32, `.fused.safetensors`) that `predict`/`val --weights` and burn-cuda load without ONNX.
    #[arg(long)]
    format: Option<ExportFormat>,
    /// f16 weights and computation inside the graph; the input and outputs stay f32 (or `export.half`). ONNX
    /// only: `--format burn` refuses it.
    #[arg(long)]
    half: bool,
    /// ONNX opset, 13 to 17 (default `export.opset`, 17).
    #[arg(long)]
    opset: Option<i64>,
    /// A dynamic batch dimension (or `export.dynamic`); TensorRT then needs an optimisation profile.
    #[arg(long, conflicts_with = "batch")]
    dynamic: bool,
    /// A static batch size (default 1).
    #[arg(long)]
    batch: Option<usize>,
    /// Input size: one side for a square, or H W; multiples of 32 (default `export.imgsz`, else the weights').
    #[arg(long, num_args = 1..=2, value_name = "SIZE")]
    imgsz: Vec<usize>,
    /// Output head: `raw` [B, 4+nc, A] (Ultralytics' cx,cy,w,h + scores), `deepstream` [B, A, 6]
    /// (x1,y1,x2,y2,score,class), or `nms` (TensorRT's EfficientNMS_TRT plugin; works with --dynamic).
    #[arg(long, value_enum, default_value_t = HeadArg::Raw)]
    head: HeadArg,
    /// NMS IoU threshold of `--head nms` (default `eval.iou`).
    #[arg(long)]
    iou: Option<f64>,
    /// Score threshold of `--head nms` (default `eval.conf`, else 0.25 as `predict`).
    #[arg(long)]
    conf: Option<f64>,
    /// Detections per image of `--head nms` (default `eval.max_det`).
    #[arg(long)]
    max_det: Option<usize>,
    /// Output file (default: beside the weights, `.onnx`, `.fp16.onnx` or, for `--format burn`,
    /// `.fused.safetensors`).
    #[arg(long)]
    output: Option<PathBuf>,
}

/// `export --head`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum HeadArg {
    Raw,
    #[value(name = "deepstream")]
    DeepStream,
    Nms,
}

#[derive(Args, Debug)]
struct DataCheckArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The dataset to check (overrides `data.dataset`): a dataset .yaml/.toml or a COCO/Objects365 .json.
    #[arg(long)]
    data: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct InfoArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Also load these Ultralytics-layout safetensors weights, to check that they fit the model.
    #[arg(long)]
    weights: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct BenchArgs {
    /// What to time instead of the model.
    #[command(subcommand)]
    what: Option<BenchCommand>,
    /// Model family.
    #[arg(long, default_value = "yolov8")]
    arch: Arch,
    /// Model scale.
    #[arg(long, default_value = "n")]
    scale: ScaleName,
    /// Square input size.
    #[arg(long, default_value_t = 320)]
    imgsz: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Timed iterations of each measurement.
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Untimed iterations first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Backend: cpu (burn-flex), ndarray (feature `ndarray`), cuda[:N] (feature `cuda`).
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// Conv-block kernels on burn-flex: fast (ours) or burn (stock), as `train.kernels`.
    #[arg(long, default_value = "fast")]
    kernels: Kernels,
    /// Float type of the model and input: fp32, fp16 or bf16 (as `train.precision` runs the compute model).
    #[arg(long, default_value = "fp32")]
    precision: Precision,
    /// bf16 GEMM micro-kernel: auto (the fastest this CPU has), amx, avx512-bf16 or fma, to compare them.
    #[arg(long, default_value = "auto")]
    bf16_kernel: Bf16Kernel,
    /// Print one JSON line instead of a sentence.
    #[arg(long)]
    json: bool,
}

/// `--bf16-kernel`: which micro-kernel multiplies bf16 operands (`half_gemm::force`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Bf16Kernel {
    Auto,
    Amx,
    Avx512Bf16,
    Fma,
}

impl Bf16Kernel {
    /// Forces the kernel for this process, or says why it cannot run here; names the one bf16 runs on.
    fn apply(self, precision: Precision) -> Result<()> {
        use yolo_burn::kernels::half_gemm::{force, Compute};
        let compute = match self {
            Bf16Kernel::Auto => None,
            Bf16Kernel::Amx => Some(Compute::AmxBf16),
            Bf16Kernel::Avx512Bf16 => Some(Compute::Bf16Dot),
            Bf16Kernel::Fma => Some(Compute::F32Fma),
        };
        if !force(compute) {
            bail!(
                "--bf16-kernel {self:?}: this CPU or OS cannot run it (amx needs AMX-BF16 and Linux's tile \
                 permission, avx512-bf16 needs AVX512_BF16); use auto"
            );
        }
        if precision == Precision::Bf16 {
            eprintln!(
                "bf16 GEMM micro-kernel: {:?}",
                yolo_burn::kernels::half_gemm::bf16_compute()
            );
        }
        Ok(())
    }
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Training-loader images/s with mosaic and the default augmentations, on a YOLO-txt image folder.
    Loader(LoaderBenchArgs),
    /// GFLOP/s of 13 Conv blocks with YOLOv8n's backbone widths (issue #6's yardstick).
    Conv(ConvBenchArgs),
    /// Bytes of parameters, gradients, optimizer state and activations of one training step in a precision,
    /// and the process's peak memory (run once per precision to compare).
    Memory(MemoryBenchArgs),
}

#[derive(Args, Debug)]
struct MemoryBenchArgs {
    #[arg(long, default_value = "yolov8")]
    arch: Arch,
    #[arg(long, default_value = "n")]
    scale: ScaleName,
    #[arg(long, default_value_t = 640)]
    imgsz: usize,
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Float type the model computes in: fp32, fp16 or bf16 (masters and optimizer state stay FP32).
    #[arg(long, default_value = "fp32")]
    precision: Precision,
    /// Training steps to run (the peak includes the optimizer state from the first).
    #[arg(long, default_value_t = 2)]
    steps: usize,
    /// Backend: cpu (burn-flex), ndarray (feature `ndarray`), cuda[:N] (feature `cuda`).
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// Print one JSON line instead of a sentence.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct ConvBenchArgs {
    #[arg(long, default_value_t = 320)]
    imgsz: usize,
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Float type of the weights and activations: fp32, fp16 or bf16.
    #[arg(long, default_value = "fp32")]
    precision: Precision,
    /// bf16 GEMM micro-kernel: auto (the fastest this CPU has), amx, avx512-bf16 or fma, to compare them.
    #[arg(long, default_value = "auto")]
    bf16_kernel: Bf16Kernel,
    /// Conv-block kernels: fast (ours) or burn (stock).
    #[arg(long, default_value = "fast")]
    kernels: Kernels,
    #[arg(long, default_value_t = 3)]
    iters: usize,
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Print one JSON line instead of a sentence.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct LoaderBenchArgs {
    /// Dataset whose train split is loaded, e.g. ../shared/datasets/coco128/coco128.yaml.
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value_t = 640)]
    imgsz: usize,
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Untimed epochs first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed epochs.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Also make each batch's f32 0..1 image tensor on the consuming thread, as the trainer does. Without it
    /// the loop stops at byte batches, where Ultralytics' dataloader stops (its trainer converts to float).
    #[arg(long)]
    tensor: bool,
    /// Print one JSON line instead of a sentence.
    #[arg(long)]
    json: bool,
}

/// Tells glibc's allocator to keep freed memory for reuse instead of returning it to the kernel.
///
/// Why: by default glibc serves blocks above a threshold (128 KiB at first, growing to 32 MiB) with fresh
/// `mmap`s and trims freed heap tops, so every training step's tensors and every loader canvas (a 640² mosaic is
/// 4.9 MB) are new pages that the kernel must fault in and zero. That was a quarter of the loader's time and
/// ~7 % of a train step (docs/benchmarks.md). Raising the threshold stops at its 32 MiB ceiling, and a 640²
/// batch of 16 as f32 is 78 MB, so no block is mmapped at all (glibc still maps memory when the heap cannot
/// grow). One arena for all threads: a worker thread's arena is a chain of 64 MiB mappings, and glibc unmaps
/// one whenever it empties, so loader batches (20 MB each at 640²) kept landing on fresh pages; the main heap
/// is only trimmed above the threshold below (measured: loader +15 % per worker, train step unchanged). The cost
/// is that the process keeps its peak heap instead of shrinking after it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    const TRIM_THRESHOLD: libc::c_int = 1 << 30;
    // SAFETY: mallopt only changes allocator parameters; it runs before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn main() -> ExitCode {
    keep_freed_memory();
    backend::init_cpu_pool();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("yolo-burn: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => train(&args),
        Command::Val(args) => val(&args),
        Command::Predict(args) => predict(&args),
        Command::Export(args) => export(&args),
        Command::Info(args) => info(&args),
        Command::Bench(args) => match &args.what {
            Some(BenchCommand::Loader(loader)) => bench_loader(loader),
            Some(BenchCommand::Conv(conv)) => bench_conv(conv),
            Some(BenchCommand::Memory(memory)) => bench_memory(memory),
            None => bench(&args),
        },
        Command::Data(args) => match args.command {
            DataCommand::Check(args) => data_check(&args),
            DataCommand::Preview(preview) => data_preview(&preview),
        },
    }
}

/// `train`: a new run from `--config`, or `--resume` from a checkpoint (whose stored config, with `--set` on top,
/// replaces `--config`).
fn train(args: &TrainArgs) -> Result<()> {
    let (mut config, resume) = match &args.resume {
        Some(path) => {
            let (config, paths, checkpoint) =
                yolo_burn::train::read_resume(path, &args.config.overrides)
                    .with_context(|| format!("--resume {}", path.display()))?;
            (config, Some((paths, checkpoint)))
        }
        None => (args.config.load()?, None),
    };
    yolo_burn::kernels::select(config.train.kernels);
    if let Some(name) = &args.name {
        config.train.name = name.clone();
    }
    if args.exist_ok {
        config.train.exist_ok = true;
    }
    let choice = device_choice(&config)?;
    // Before dispatch, so that fp16 on ndarray names the precision even in a build without ndarray; the
    // trainer checks the rest of the mixed-precision settings.
    yolo_burn::amp::check_backend(choice, config.train.precision)?;
    let request = yolo_burn::train::TrainRequest {
        config,
        resume,
        quiet: args.quiet,
        stop_after_epochs: None,
        nan_loss_at: Vec::new(),
        inf_grad_at: Vec::new(),
    };
    backend::dispatch(choice, yolo_burn::train::TrainJob(request))??;
    Ok(())
}

/// `data preview`: the first batch of an epoch of the training loader, drawn.
fn data_preview(args: &PreviewArgs) -> Result<()> {
    let config = args.config.load()?;
    let index = read_index(
        &config.data.dataset,
        config.data.images.as_deref(),
        SplitName::Train,
    )?;
    let loader = Loader::new(&index, LoaderConfig::train(&config)?)?;
    let batch = loader
        .epoch(args.epoch)
        .next()
        .context("the training split has no batch")??;
    let grid = render_batch(&batch, &index.names)?;
    grid.save(&args.out)
        .with_context(|| format!("--out {}", args.out.display()))?;
    println!(
        "{}: {} images, {} boxes, epoch {}",
        args.out.display(),
        batch.len(),
        batch.targets.len(),
        args.epoch
    );
    Ok(())
}

/// `bench conv`: GFLOP/s of the conv stack.
fn bench_conv(args: &ConvBenchArgs) -> Result<()> {
    if args.imgsz < 64 {
        bail!(
            "--imgsz {} is too small for 6 stride-2 convs; use 64 or more",
            args.imgsz
        );
    }
    yolo_burn::kernels::select(args.kernels);
    args.bf16_kernel.apply(args.precision)?;
    let job = yolo_burn::bench::conv_stack::ConvStackBench {
        imgsz: args.imgsz,
        batch: args.batch.max(1),
        precision: args.precision,
        warmup: args.warmup,
        iters: args.iters.max(1),
    };
    let r = backend::dispatch(BackendChoice::Flex, job)?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "conv stack ({:.3} GMAC/img) imgsz {} batch {} {} {} kernels ({} threads): forward {:.1} GFLOP/s \
             ({:.1} img/s), forward+backward {:.2} img/s",
            r.gmac_per_img,
            r.imgsz,
            r.batch,
            r.precision,
            args.kernels,
            r.threads,
            r.forward_gflops,
            r.forward_img_per_s,
            r.train_img_per_s
        );
    }
    Ok(())
}

/// `bench memory`: the bytes of one training step in a precision.
fn bench_memory(args: &MemoryBenchArgs) -> Result<()> {
    let choice = bench_backend(&args.backend, args.imgsz)?;
    yolo_burn::amp::check_backend(choice, args.precision).context("--precision")?;
    let job = yolo_burn::bench::memory::MemoryBench {
        model: YoloConfig::new(args.arch, args.scale, 80),
        imgsz: args.imgsz,
        batch: args.batch.max(1),
        precision: args.precision,
        steps: args.steps.max(1),
    };
    let r = backend::dispatch(choice, job)?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        let opt = |b: Option<u64>| b.map_or("n/a".to_string(), |b| format!("{:.1} MiB", mib(b)));
        println!(
            "{} imgsz {} batch {} {} on {choice}: parameters {:.1} MiB (+ FP32 masters {:.1} MiB), gradients \
             {:.1} MiB (+ FP32 accumulation {:.1} MiB), optimizer state {:.1} MiB, activations {}, peak RSS {}; \
             {:.2} img/s, {} skipped steps",
            r.model,
            r.imgsz,
            r.batch,
            r.precision,
            mib(r.param_bytes),
            mib(r.master_bytes),
            mib(r.grad_bytes),
            mib(r.grad_f32_bytes),
            mib(r.optimizer_bytes),
            opt(r.activation_bytes),
            opt(r.peak_rss_bytes),
            r.train_img_per_s,
            r.skipped_steps
        );
    }
    Ok(())
}

/// `bench loader`: images/s of the training loader.
fn bench_loader(args: &LoaderBenchArgs) -> Result<()> {
    let job = LoaderBench {
        dataset: args.data.clone(),
        imgsz: args.imgsz,
        batch: args.batch.max(1),
        workers: args.workers.max(1),
        warmup_epochs: args.warmup,
        epochs: args.epochs.max(1),
        tensor: args.tensor,
    };
    let result = job.run()?;
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        println!(
            "loader imgsz {} batch {} workers {}{}: {} images in {:.2} s, {:.1} images/s",
            result.imgsz,
            result.batch,
            result.workers,
            if result.tensor { ", f32 tensors" } else { "" },
            result.images,
            result.seconds,
            result.images_per_s
        );
    }
    Ok(())
}

/// `val`: with `--gt` and `--predictions`, pycocotools' bbox evaluation of that file; otherwise the model path,
/// which needs the data loader.
fn val(args: &ValArgs) -> Result<()> {
    let (Some(gt_path), Some(predictions_path)) = (&args.gt, &args.predictions) else {
        return val_model(args);
    };
    let gt = CocoGroundTruth::from_path(gt_path).context("--gt")?;
    let detections = read_detections(predictions_path, &gt).context("--predictions")?;
    let evaluation = coco::evaluate(&gt, &detections);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &evaluation.report())?;
        writeln!(out)?;
    } else {
        write!(out, "{}", evaluation.stats.to_pycocotools_text())?;
    }
    out.flush()?;
    Ok(())
}

/// `export`: the weights (read as every subcommand reads them: metadata, then config) written as ONNX, or as a
/// fused Burn record (`--format burn`).
fn export(args: &ExportArgs) -> Result<()> {
    use yolo_burn::export::{
        default_output, export_onnx, BatchSize, ExportHead, ExportOptions, ExportPrecision,
        NmsOptions,
    };
    let config = args.config.load()?;
    let format = args.format.unwrap_or(config.export.format);
    let Some(path) = args.weights.as_ref().or(config.model.weights.as_ref()) else {
        bail!("no weights: pass --weights FILE or set model.weights (a .safetensors)");
    };
    let meta = WeightsMeta::read(path).with_context(|| format!("--weights {}", path.display()))?;
    let resolved = resolve_weights(&meta, path, &config, &args.config.explicit_keys(), None)?;
    let model_config = resolved.model.clone();
    let device = Default::default();
    let model = load_ultralytics(model_config.init::<backend::Cpu>(&device), path)?;
    let nc = model_config.nc;
    let names = resolved
        .names
        .unwrap_or_else(|| (0..nc).map(|i| format!("class{i}")).collect());
    let imgsz = match args.imgsz[..] {
        [h, w] => [h, w],
        [side] => [side, side],
        _ => [config.export.imgsz.unwrap_or(resolved.imgsz); 2],
    };
    if format == ExportFormat::Burn {
        return export_burn_record(args, &config, (&model, &model_config), path, names, imgsz);
    }
    let precision = if args.half || config.export.half {
        ExportPrecision::Fp16
    } else {
        ExportPrecision::Fp32
    };
    let batch = if args.dynamic || (config.export.dynamic && args.batch.is_none()) {
        BatchSize::Dynamic
    } else {
        BatchSize::Static(args.batch.unwrap_or(1))
    };
    let head = match args.head {
        HeadArg::Raw => ExportHead::Raw,
        HeadArg::DeepStream => ExportHead::DeepStream,
        HeadArg::Nms => ExportHead::Nms(NmsOptions {
            iou: args.iou.unwrap_or(config.eval.iou),
            conf: args.conf.unwrap_or(config.eval.predict_conf()),
            max_det: args.max_det.unwrap_or(config.eval.max_det),
        }),
    };
    let options = ExportOptions {
        opset: args.opset.unwrap_or(config.export.opset as i64),
        precision,
        batch,
        imgsz,
        head,
        arch: model_config.arch,
        scale: model_config.scale,
        names,
    };
    let exported = export_onnx(&model, &options)?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| default_output(path, precision));
    yolo_burn::model::weights::write_atomic(&output, &exported.bytes)
        .with_context(|| format!("--output {}", output.display()))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "exported {}{} ({} classes) to {} ({:.1} MB): head {}, precision {}, opset {}",
        model_config.arch,
        model_config.scale,
        nc,
        output.display(),
        exported.bytes.len() as f64 / 1e6,
        options.head.name(),
        precision.name(),
        options.opset
    )?;
    writeln!(out, "  input  {}", exported.input)?;
    for o in &exported.outputs {
        writeln!(out, "  output {o}")?;
    }
    Ok(())
}

/// `export --format burn`: the model with Conv+BN folded, as a safetensors Burn record that `predict` and `val`
/// load (`yolo_burn::export::export_burn`); the ONNX-only flags are refused.
fn export_burn_record(
    args: &ExportArgs,
    config: &Config,
    (model, model_config): (&Yolo<backend::Cpu>, &YoloConfig),
    path: &Path,
    names: Vec<String>,
    imgsz: [usize; 2],
) -> Result<()> {
    use yolo_burn::export::{default_burn_output, export_burn};
    if args.half || config.export.half {
        bail!(
            "--half (or export.half) with --format burn: the Burn record is f32 only; drop --half (burn-cuda can \
             still run it in f16), or use --format onnx --half"
        );
    }
    let onnx_only = [
        ("--opset", args.opset.is_some()),
        ("--dynamic", args.dynamic),
        ("--batch", args.batch.is_some()),
        ("--head", args.head != HeadArg::Raw),
        ("--iou", args.iou.is_some()),
        ("--conf", args.conf.is_some()),
        ("--max-det", args.max_det.is_some()),
    ];
    if let Some((flag, _)) = onnx_only.iter().find(|(_, set)| *set) {
        bail!("{flag} is for --format onnx; --format burn writes the model alone (any batch, raw head)");
    }
    let [h, w] = imgsz;
    if h != w || h < 32 || h % 32 != 0 {
        bail!("--imgsz {h} {w}: --format burn records one square input size, a multiple of 32 (e.g. 640)");
    }
    let meta = WeightsMeta {
        arch: Some(model_config.arch),
        scale: Some(model_config.scale),
        nc: Some(model_config.nc),
        names: Some(names),
        imgsz: Some(h),
    };
    let bytes = export_burn(model, &meta)?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| default_burn_output(path));
    yolo_burn::model::weights::write_atomic(&output, &bytes)
        .with_context(|| format!("--output {}", output.display()))?;
    writeln!(
        std::io::stdout().lock(),
        "exported {}{} ({} classes) to {} ({:.1} MB): Burn record (safetensors), Conv+BN fused, fp32, imgsz {h}; \
         predict/val --weights {} load it",
        model_config.arch,
        model_config.scale,
        model_config.nc,
        output.display(),
        bytes.len() as f64 / 1e6,
        output.display()
    )?;
    Ok(())
}

/// The model a weights file holds (`--weights`, or `model.weights`), built as its metadata describes it and the
/// config where the metadata is silent (`model::meta::resolve`), with the weights loaded; its class names (the
/// metadata's, else `class<i>`) and input size. `fallback_nc`: the class count when neither says (a dataset's).
fn load_model<B: Backend>(
    args: &ConfigArgs,
    config: &Config,
    weights: Option<&PathBuf>,
    fallback_nc: Option<usize>,
    device: &B::Device,
) -> Result<(Yolo<B>, Vec<String>, usize)> {
    let Some(path) = weights.or(config.model.weights.as_ref()) else {
        bail!("no weights: pass --weights FILE or set model.weights (an Ultralytics-layout .safetensors)");
    };
    let meta = WeightsMeta::read(path).with_context(|| format!("--weights {}", path.display()))?;
    let resolved = resolve_weights(&meta, path, config, &args.explicit_keys(), fallback_nc)?;
    let nc = resolved.model.nc;
    let model = resolved.model.init::<B>(device);
    let model = load_ultralytics(model, path)?;
    let names = resolved
        .names
        .unwrap_or_else(|| (0..nc).map(|i| format!("class{i}")).collect());
    Ok((model, names, resolved.imgsz))
}

/// `val --config`: the checkpoint over `eval.split` of the dataset; prints Ultralytics' table and pycocotools'
/// stats, and writes predictions.json, metrics.json, the PR/F1/P/R curves and the two confusion matrices.
fn val_model(args: &ValArgs) -> Result<()> {
    let config = args.config.load()?;
    let split = match config.eval.split {
        Split::Train => SplitName::Train,
        Split::Val => SplitName::Val,
        Split::Test => SplitName::Test,
    };
    let dataset = &config.data.dataset;
    let index = read_index(dataset, config.data.images.as_deref(), split)
        .with_context(|| format!("reading {}", dataset.display()))?;
    index.check_strict(config.data.strict)?;
    let is_json = dataset
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    // A COCO JSON dataset is evaluated against the file itself, exactly as pycocotools would read it.
    let gt = if is_json {
        CocoGroundTruth::from_path(dataset)
            .with_context(|| format!("reading {}", dataset.display()))?
    } else {
        CocoGroundTruth::from_index(&index)
    };
    let job = ValJob {
        args,
        config: &config,
        index: &index,
        gt: &gt,
    };
    let (validation, about) = backend::dispatch(device_choice(&config)?, job)??;
    let dir = create_run_dir(&config.train.project, &args.name, args.exist_ok)?;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
    };
    write("predictions.json", validation.predictions_json().as_bytes())?;
    let metrics = serde_json::json!({
        "coco": validation.evaluation.report(),
        "ultralytics": {
            "precision": validation.metrics.best.precision,
            "recall": validation.metrics.best.recall,
            "mAP50": validation.map50(),
            "mAP50-95": validation.map50_95(),
        },
        "classes": validation.rows,
        "best_f1": validation.metrics.best,
        "fitness": validation.fitness(),
    });
    write(
        "metrics.json",
        serde_json::to_string_pretty(&metrics)?.as_bytes(),
    )?;
    validation
        .plots()
        .write(&dir, &index.names)
        .context("writing val's plots")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{about}")?;
    write!(out, "{}", ClassTable(&validation.rows))?;
    write!(out, "{}", validation.evaluation.stats.to_pycocotools_text())?;
    writeln!(out, "results saved to {}", dir.display())?;
    Ok(())
}

/// The backend `train.device` names (val, predict and info run there too, as training does).
fn device_choice(config: &Config) -> Result<BackendChoice> {
    config
        .train
        .device
        .parse()
        .map_err(anyhow::Error::msg)
        .context("train.device")
}

/// `val`'s model work on the chosen backend: the weights loaded as their metadata says, then the split.
struct ValJob<'a> {
    args: &'a ValArgs,
    config: &'a Config,
    index: &'a Index,
    gt: &'a CocoGroundTruth,
}

impl BackendJob for ValJob<'_> {
    /// The validation, and a line naming the model and input size it ran at.
    type Output = Result<(Validation, String)>;

    fn run<AB: AutodiffBackend>(self, device: AB::Device) -> Self::Output {
        if let Some(path) = onnx_weights(self.args.weights.as_ref(), self.config) {
            return self.run_onnx::<AB::InnerBackend>(path, &device);
        }
        let (model, names, imgsz) = load_model::<AB::InnerBackend>(
            &self.args.config,
            self.config,
            self.args.weights.as_ref(),
            Some(self.index.nc()),
            &device,
        )?;
        let about = format!(
            "val: {} images at imgsz {imgsz} ({}), {} classes",
            self.index.images.len(),
            if self.config.eval.rect {
                "rect batches"
            } else {
                "square batches, eval.rect = false"
            },
            names.len()
        );
        if names.len() != self.index.nc() {
            bail!(
                "the weights detect {} classes but {} has {}: evaluate them on the dataset they were \
                 trained for (data.dataset)",
                names.len(),
                self.config.data.dataset.display(),
                self.index.nc()
            );
        }
        let detector = Detector {
            model: DetectModel::Burn(&model),
            imgsz,
            nms: NmsConfig::val_with(&self.config.eval),
        };
        // The loader letterboxes to the resolved size (the weights' imgsz unless train.imgsz is set).
        let mut config = self.config.clone();
        config.train.imgsz = imgsz;
        let loader = LoaderConfig::val(&config);
        let validation = validate(&detector, self.index, self.gt, loader, &device, None)?;
        Ok((validation, about))
    }
}

impl ValJob<'_> {
    /// `val` of an exported ONNX file, as Ultralytics' validator runs a non-PyTorch model: every batch is the
    /// file's fixed input (`rect = False`, `imgsz` from its metadata), `batch` images each when its batch is
    /// static (else `train.batch`).
    fn run_onnx<B: Backend>(
        &self,
        path: &Path,
        device: &B::Device,
    ) -> Result<(Validation, String)> {
        if self.config.eval.rect && self.args.config.explicit_keys().contains("eval.rect") {
            bail!(
                "eval.rect = true: {} has a fixed input, so its batches cannot be rectangular; remove \
                 eval.rect (or set it to false, what the file runs anyway)",
                path.display()
            );
        }
        let (model, names) = load_onnx(&self.args.config, self.config, path)?;
        if names.len() != self.index.nc() {
            bail!(
                "{} detects {} classes but {} has {}: evaluate it on the dataset it was trained for \
                 (data.dataset)",
                path.display(),
                names.len(),
                self.config.data.dataset.display(),
                self.index.nc()
            );
        }
        let meta = model.meta();
        let [w, h] = model.canvas();
        let batch = meta.batch.unwrap_or(self.config.train.batch);
        let about = format!(
            "val: {} images at {w}x{h} (the ONNX file's input, {} head, {}, batch {}), {} classes",
            self.index.images.len(),
            match meta.head {
                OnnxHead::Raw => "raw",
                OnnxHead::DeepStream => "deepstream",
            },
            meta.precision,
            meta.batch.map_or("dynamic".into(), |b| b.to_string()),
            names.len()
        );
        let detector = Detector::<B> {
            model: DetectModel::Onnx(&model),
            imgsz: w.max(h) as usize,
            nms: NmsConfig::val_with(&self.config.eval),
        };
        let loader = LoaderConfig::val_fixed(self.config, [w, h], batch);
        let validation = validate(&detector, self.index, self.gt, loader, device, None)?;
        Ok((validation, about))
    }
}

/// The val/predict weights when they are an exported ONNX file (by extension): `--weights`, else `model.weights`.
fn onnx_weights<'a>(weights: Option<&'a PathBuf>, config: &'a Config) -> Option<&'a Path> {
    weights
        .or(config.model.weights.as_ref())
        .map(PathBuf::as_path)
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
        })
}

/// An exported ONNX file and its class names (from its metadata). A `model.nc`, `model.arch` or `model.scale`
/// the user set (config file or `--set`) must agree with the metadata, as for safetensors weights: the file
/// cannot be rebuilt for other classes.
fn load_onnx(args: &ConfigArgs, config: &Config, path: &Path) -> Result<(OnnxModel, Vec<String>)> {
    let model = OnnxModel::load(path).with_context(|| format!("--weights {}", path.display()))?;
    let meta = model.meta();
    let explicit = args.explicit_keys();
    let ours = [
        (
            "model.nc",
            config.model.nc.map(|n| n.to_string()),
            meta.nc.to_string(),
        ),
        (
            "model.arch",
            Some(config.model.arch.to_string()),
            meta.arch.clone(),
        ),
        (
            "model.scale",
            Some(config.model.scale.to_string()),
            meta.scale.clone(),
        ),
    ];
    for (key, ours, theirs) in ours {
        if let Some(ours) =
            ours.filter(|o| explicit.contains(key) && !theirs.is_empty() && *o != theirs)
        {
            bail!(
                "{key} = {ours} is set (config file or --set), but the metadata of {} says {theirs}; remove \
                 {key} to use the file's value, or export a model made with {ours}",
                path.display()
            );
        }
    }
    let names = meta.names.clone();
    Ok((model, names))
}

/// `predict`'s model work on the chosen backend.
struct PredictJob<'a> {
    args: &'a PredictArgs,
    config: &'a Config,
    sources: &'a [PathBuf],
    dataset_names: Option<Vec<String>>,
}

impl BackendJob for PredictJob<'_> {
    type Output = Result<(PathBuf, PredictSummary)>;

    fn run<AB: AutodiffBackend>(self, device: AB::Device) -> Self::Output {
        let (args, config) = (self.args, self.config);
        if let Some(path) = onnx_weights(args.weights.as_ref(), config) {
            let (onnx, names) = load_onnx(&args.config, config, path)?;
            let [w, h] = onnx.canvas();
            let imgsz = w.max(h) as usize;
            return self.predict_with::<AB::InnerBackend>(
                DetectModel::Onnx(&onnx),
                names,
                imgsz,
                &device,
            );
        }
        let (model, names, imgsz) = load_model::<AB::InnerBackend>(
            &args.config,
            config,
            args.weights.as_ref(),
            self.dataset_names.as_ref().map(Vec::len),
            &device,
        )?;
        self.predict_with(DetectModel::Burn(&model), names, imgsz, &device)
    }
}

impl PredictJob<'_> {
    /// The run itself, once the model is loaded (the Burn model or an ONNX file).
    fn predict_with<B: Backend>(
        self,
        model: DetectModel<B>,
        mut names: Vec<String>,
        imgsz: usize,
        device: &B::Device,
    ) -> Result<(PathBuf, PredictSummary)> {
        let (args, config) = (self.args, self.config);
        if let Some(dataset_names) = self
            .dataset_names
            .filter(|n| n.len() == names.len() && names[0] == "class0")
        {
            names = dataset_names;
        }
        let detector = Detector {
            model,
            imgsz,
            nms: NmsConfig::predict_with(&config.eval),
        };
        let dir = create_run_dir(&config.train.project, &args.name, args.exist_ok)?;
        let options = PredictOptions {
            names: &names,
            out_dir: &dir,
            save_txt: args.save_txt,
            progress: !args.quiet,
        };
        let summary = predict_files(&detector, self.sources, &options, device)?;
        Ok((dir, summary))
    }
}

/// `predict`: detections for every source image, written to a run folder.
fn predict(args: &PredictArgs) -> Result<()> {
    let config = args.config.load()?;
    let sources = expand(&args.source).context("--source")?;
    let dataset_names = DatasetSpec::read(&config.data.dataset)
        .ok()
        .map(|spec| spec.names);
    let job = PredictJob {
        args,
        config: &config,
        sources: &sources,
        dataset_names,
    };
    let (dir, summary) = backend::dispatch(device_choice(&config)?, job)??;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} images, {} detections; results saved to {}",
        summary.images,
        summary.detections,
        dir.display()
    )?;
    if let Some((path, reason)) = summary.unreadable.first() {
        bail!(
            "{} of {} sources could not be read, first {}: {reason}",
            summary.unreadable.len(),
            sources.len(),
            path.display()
        );
    }
    Ok(())
}

/// `data check`: every split the descriptor names, validated and summarised.
fn data_check(args: &DataCheckArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let config = args.config.load()?;
    let dataset = args.data.clone().unwrap_or(config.data.dataset.clone());
    let mut first_error = None;
    let mut read_any = false;
    // An instances JSON is a single split; a descriptor names up to three.
    let is_json = dataset
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let splits: &[SplitName] = if is_json {
        &[SplitName::Train]
    } else {
        &[SplitName::Train, SplitName::Val, SplitName::Test]
    };
    for &split in splits {
        let index = match read_index(&dataset, config.data.images.as_deref(), split) {
            Ok(index) => index,
            // A descriptor without this split: say nothing unless no split reads at all.
            Err(YoloError::Dataset { detail, .. }) if detail.contains("has no `") => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", dataset.display())),
        };
        read_any = true;
        write!(
            out,
            "{}",
            Summary {
                split: if is_json { "instances" } else { split.key() },
                index: &index
            }
        )?;
        if let Err(e) = index.check_strict(config.data.strict) {
            first_error.get_or_insert(e);
        }
    }
    if !read_any {
        bail!("{}: no train, val or test split", dataset.display());
    }
    match first_error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Ultralytics' `model.info()`: per-layer table and the one-line summary.
fn info(args: &InfoArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let config = args.config.load()?;
    let weights = args.weights.as_ref().or(config.model.weights.as_ref());
    let (model_config, nc_source, imgsz) = match weights {
        // The weights' metadata describes the model (arch, scale, nc, imgsz) where the config does not.
        Some(path) => {
            let meta =
                WeightsMeta::read(path).with_context(|| format!("--weights {}", path.display()))?;
            let source = match (meta.nc, config.model.nc) {
                (Some(_), _) => "from the weights",
                (None, Some(_)) => "model.nc",
                (None, None) => "model.nc unset, so 80 as in the Ultralytics yaml",
            };
            let resolved =
                resolve_weights(&meta, path, &config, &args.config.explicit_keys(), Some(80))?;
            (resolved.model, source, resolved.imgsz)
        }
        None => {
            let (nc, source) = match config.model.nc {
                Some(nc) => (nc, "model.nc"),
                None => (80, "model.nc unset, so 80 as in the Ultralytics yaml"),
            };
            (
                YoloConfig::new(config.model.arch, config.model.scale, nc),
                source,
                config.train.imgsz,
            )
        }
    };
    let job = InfoJob {
        model_config,
        weights: weights.cloned(),
        nc_source,
        imgsz,
    };
    let text = backend::dispatch(device_choice(&config)?, job)??;
    write!(out, "{text}")?;
    Ok(())
}

/// `info`'s model work on the chosen backend: build, load the weights, and the table as text.
struct InfoJob {
    model_config: YoloConfig,
    weights: Option<PathBuf>,
    nc_source: &'static str,
    imgsz: usize,
}

impl BackendJob for InfoJob {
    type Output = Result<String>;

    fn run<AB: AutodiffBackend>(self, device: AB::Device) -> Self::Output {
        use std::fmt::Write as _;
        let (model_config, imgsz, nc) = (&self.model_config, self.imgsz, self.model_config.nc);
        let mut out = String::new();
        let mut model = model_config.init::<AB::InnerBackend>(&device);
        if let Some(path) = &self.weights {
            model = load_ultralytics(model, path)?;
            writeln!(out, "weights: {} loaded, every key matched", path.display())?;
        }
        writeln!(
            out,
            "{:>3}  {:<8} {:>10}  arguments",
            "", "module", "params"
        )?;
        for (i, layer) in model.model.iter().enumerate() {
            let (name, detail) = describe(layer, model_config.arch);
            writeln!(
                out,
                "{i:>3}  {name:<8} {:>10}  {detail}",
                thousands(parameter_count(layer))
            )?;
        }
        let params = model.num_parameters();
        let frozen = 16; // DFL's fixed conv
        writeln!(out,
            "{} summary ({nc} classes, {}): {} layers, {} parameters, {} gradients, {:.1} GFLOPs at {imgsz}x{imgsz}",
            title(model_config),
            self.nc_source,
            model.model.len(),
            thousands(params),
            thousands(params - frozen),
            model.gflops([imgsz, imgsz]),
        )?;
        Ok(out)
    }
}

fn title(config: &YoloConfig) -> String {
    match config.arch {
        Arch::Yolov8 => format!("YOLOv8{}", config.scale),
        Arch::Yolo11 => format!("YOLO11{}", config.scale),
    }
}

/// A layer's Ultralytics module name and arguments, for the `info` table.
fn describe<B: burn::tensor::backend::Backend>(
    layer: &Layer<B>,
    arch: Arch,
) -> (&'static str, String) {
    match layer {
        Layer::Conv(m) => {
            let [c1, c2] = [
                m.conv.weight.dims()[1] * m.conv.groups,
                m.conv.weight.dims()[0],
            ];
            (
                "Conv",
                format!(
                    "[{c1}, {c2}, {}, {}]",
                    m.conv.kernel_size[0], m.conv.stride[0]
                ),
            )
        }
        Layer::Csp(m) => {
            let inner = match m.m.first() {
                Some(yolo_burn::model::blocks::CspInner::C3k(_)) => "C3k",
                _ => "Bottleneck",
            };
            let name = match arch {
                Arch::Yolov8 => "C2f",
                Arch::Yolo11 => "C3k2",
            };
            (name, format!("{} x {inner}, hidden {}", m.m.len(), m.c))
        }
        Layer::Sppf(_) => ("SPPF", "k 5".into()),
        Layer::C2psa(m) => ("C2PSA", format!("{} x PSABlock, hidden {}", m.m.len(), m.c)),
        Layer::Upsample(f) => ("Upsample", format!("nearest x{f}")),
        Layer::Concat(other) => ("Concat", format!("[-1, {other}]")),
        Layer::Detect(d) => ("Detect", format!("nc {}, reg_max 16", d.nc)),
    }
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The `--backend` and `--imgsz` of a model benchmark, checked.
fn bench_backend(backend: &str, imgsz: usize) -> Result<BackendChoice> {
    let choice: BackendChoice = backend
        .parse()
        .map_err(anyhow::Error::msg)
        .context("--backend")?;
    if imgsz == 0 || !imgsz.is_multiple_of(32) {
        bail!("--imgsz {imgsz} must be a positive multiple of 32");
    }
    Ok(choice)
}

fn bench(args: &BenchArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let choice = bench_backend(&args.backend, args.imgsz)?;
    yolo_burn::amp::check_backend(choice, args.precision).context("--precision")?;
    yolo_burn::kernels::select(args.kernels);
    args.bf16_kernel.apply(args.precision)?;
    let job = ModelBench {
        model: YoloConfig::new(args.arch, args.scale, 80),
        imgsz: args.imgsz,
        batch: args.batch.max(1),
        warmup: args.warmup,
        iters: args.iters.max(1),
        precision: args.precision,
    };
    let result = backend::dispatch(choice, job)?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&result)?)?;
    } else {
        writeln!(
            out,
            "{} imgsz {} batch {} on {choice}, {} kernels, {} ({} threads): forward {:.1} ms/img ({:.2} img/s), \
             forward+backward {:.1} ms/img ({:.2} img/s)",
            result.model,
            result.imgsz,
            result.batch,
            args.kernels,
            result.precision,
            result.threads,
            result.forward_ms_per_img,
            result.forward_img_per_s,
            result.train_ms_per_img,
            result.train_img_per_s
        )?;
    }
    Ok(())
}
