//! The data loader: worker threads decode, augment and collate batches, which come out in a fixed order through
//! bounded queues, so memory is bounded by the queues and not by the dataset.
//!
//! An epoch is cut into *groups* of consecutive batches of the epoch order (Ultralytics-style shuffle from
//! (seed, epoch)). A worker takes whole groups, round-robin: it decodes each image of its group once, draws
//! each image's mosaic partners from the group (the pool that replaces Ultralytics' buffer of recently loaded
//! images), augments with the image's own [`SampleRng`], collates, and sends the group's batches in order on its
//! own `sync_channel`. The consumer reads batch `j` from the worker that owns its group. Every batch is thus a
//! pure function of (seed, epoch, index, batch size): the worker count changes the speed, never the data.
//!
//! Validation: no shuffle, images sorted by aspect ratio, each batch letterboxed to its own shape
//! (Ultralytics' `set_rectangle` with `pad = 0.5`), boxes only scaled; for a fixed-shape exported model, in index
//! order into its one canvas (`LoaderMode::ValFixed`).

pub mod batch;
pub mod cache;
pub mod numpy_argsort;

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::{CacheMode, Config};
use crate::data::augment::resize::long_side_size;
use crate::data::augment::{LabelBox, Letterbox, Sample, TrainAugment};
use crate::data::index::Index;
use crate::data::rng::SampleRng;
use crate::YoloError;

pub use batch::{Batch, Placement};
pub use cache::ImageCache;

/// Images a mosaic may draw its three partners from, at least: whole batches are added to a group until it holds
/// this many (Ultralytics' buffer holds `min(n, 8·batch, 1000)` recently loaded images).
pub const MOSAIC_POOL: usize = 64;

/// The largest stride of the model: rect batch sides are multiples of it.
const STRIDE: f64 = 32.0;

/// Ultralytics' `pad` of `set_rectangle` for validation.
const VAL_RECT_PAD: f64 = 0.5;

/// Training or validation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoaderMode {
    /// Shuffled, augmented, square batches.
    Train(TrainSchedule),
    /// In aspect-ratio order, letterboxed into per-batch rectangles, no augmentation.
    Val,
    /// In index order, every image letterboxed into this one `[w, h]` canvas, no augmentation: the input of a
    /// fixed-shape exported model (Ultralytics' validator sets `rect = False` for any model but a PyTorch one).
    /// `imgsz` must be the canvas's longer side (images are first resized to it, as `load_image` does).
    ValFixed([u32; 2]),
}

/// The training augmentation and when mosaic stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainSchedule {
    pub augment: TrainAugment,
    /// Mosaic is off for this many final epochs (`train.close_mosaic`).
    pub close_mosaic: usize,
    /// Total epochs (`train.epochs`).
    pub epochs: usize,
}

impl TrainSchedule {
    /// The pipeline of 0-based `epoch`: without mosaic in the last `close_mosaic` epochs.
    pub fn augment_at(&self, epoch: usize) -> TrainAugment {
        if self.close_mosaic > 0 && epoch + self.close_mosaic >= self.epochs {
            self.augment.without_mosaic()
        } else {
            self.augment
        }
    }
}

/// How the loader runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderConfig {
    /// Square training size / long side of validation images (`train.imgsz`).
    pub imgsz: usize,
    /// Images per batch (`train.batch`).
    pub batch: usize,
    /// Worker threads; 0 is read as 1 (`train.workers`).
    pub workers: usize,
    /// Seed of shuffling and augmentation (`train.seed`).
    pub seed: u64,
    pub mode: LoaderMode,
    /// `data.cache`.
    pub cache: CacheMode,
    /// Finished batches each worker may queue ahead (PyTorch's `prefetch_factor`, default 2).
    pub prefetch: usize,
}

impl LoaderConfig {
    /// The training loader of a config (`[train]`, `[augment]`, `data.cache`).
    pub fn train(config: &Config) -> Result<Self, YoloError> {
        Ok(Self {
            imgsz: config.train.imgsz,
            batch: config.train.batch,
            workers: config.train.workers,
            seed: config.train.seed,
            mode: LoaderMode::Train(TrainSchedule {
                augment: TrainAugment::new(&config.augment, config.train.imgsz)?,
                close_mosaic: config.train.close_mosaic,
                epochs: config.train.epochs,
            }),
            cache: config.data.cache,
            prefetch: 2,
        })
    }

    /// The validation loader of a model with a fixed `[w, h]` input (an exported ONNX file): its batches are
    /// that canvas, `batch` images each.
    pub fn val_fixed(config: &Config, canvas: [u32; 2], batch: usize) -> Self {
        Self {
            imgsz: canvas[0].max(canvas[1]) as usize,
            batch,
            mode: LoaderMode::ValFixed(canvas),
            ..Self::val(config)
        }
    }

    /// The validation loader of a config: Ultralytics' rect batches, or with `eval.rect = false` (its
    /// `rect=False`) every batch the `imgsz` square, which is also what an exported fixed-size file sees.
    pub fn val(config: &Config) -> Self {
        let side = config.train.imgsz as u32;
        Self {
            imgsz: config.train.imgsz,
            batch: config.train.batch,
            workers: config.train.workers,
            seed: config.train.seed,
            mode: if config.eval.rect {
                LoaderMode::Val
            } else {
                LoaderMode::ValFixed([side, side])
            },
            cache: config.data.cache,
            prefetch: 2,
        }
    }
}

/// One image as the loader needs it: file, id, original size and its training boxes.
#[derive(Debug, Clone)]
struct Item {
    path: PathBuf,
    id: u64,
    size: [u32; 2],
    /// Non-crowd boxes in original pixels.
    boxes: Vec<LabelBox>,
}

/// One batch to make: positions in the group's pool, and its `[w, h]`.
#[derive(Debug, Clone)]
struct PlannedBatch {
    /// Positions in the group's `items`.
    members: std::ops::Range<usize>,
    size: [u32; 2],
}

/// Consecutive batches made by one worker from one pool of images.
#[derive(Debug, Clone)]
struct Group {
    /// Item indices, in epoch order.
    items: Vec<usize>,
    batches: Vec<PlannedBatch>,
}

/// The loader of one dataset split.
#[derive(Debug, Clone)]
pub struct Loader {
    items: Arc<Vec<Item>>,
    config: LoaderConfig,
    cache: Arc<ImageCache>,
}

impl Loader {
    /// A loader over `index`; refuses an empty split, a zero batch or an imgsz that is not a multiple of 32.
    pub fn new(index: &Index, config: LoaderConfig) -> Result<Self, YoloError> {
        if index.images.is_empty() {
            let skipped: Vec<String> = index
                .problems
                .counts()
                .into_iter()
                .filter(|(kind, _)| kind.drops_image())
                .map(|(kind, n)| format!("{n} {kind}"))
                .collect();
            let why = if skipped.is_empty() {
                "it lists none".to_string()
            } else {
                format!(
                    "every image it lists was skipped ({}; `yolo-burn data check` names each file)",
                    skipped.join(", ")
                )
            };
            return Err(YoloError::InvalidConfig(format!(
                "the dataset split has no images: {why}; check data.dataset (and data.images for a JSON dataset)"
            )));
        }
        if config.batch == 0 {
            return Err(YoloError::InvalidConfig(
                "train.batch must be at least 1".into(),
            ));
        }
        if config.imgsz == 0 || !config.imgsz.is_multiple_of(32) {
            return Err(YoloError::InvalidConfig(format!(
                "train.imgsz = {} must be a positive multiple of 32, e.g. 640",
                config.imgsz
            )));
        }
        let items: Vec<Item> = index
            .images
            .iter()
            .map(|r| Item {
                path: r.path.clone(),
                id: r.id,
                size: r.size,
                boxes: r
                    .boxes
                    .iter()
                    .filter(|b| !b.crowd)
                    .map(|b| LabelBox {
                        class: b.class,
                        xyxy_px: b.xyxy_px,
                    })
                    .collect(),
            })
            .collect();
        let paths: Vec<&std::path::Path> = items.iter().map(|i| i.path.as_path()).collect();
        let cache = Arc::new(match config.mode {
            LoaderMode::Train(_) => ImageCache::for_training(config.cache, &paths, config.batch),
            _ => ImageCache::new(config.cache, &paths),
        });
        Ok(Self {
            items: Arc::new(items),
            config,
            cache,
        })
    }

    /// Batches per epoch (the last one may be short, as Ultralytics' `drop_last=False`).
    pub fn len(&self) -> usize {
        self.items.len().div_ceil(self.config.batch)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// The groups of `epoch`, in batch order.
    fn plan(&self, epoch: usize) -> Vec<Group> {
        let n = self.items.len();
        let bs = self.config.batch;
        let imgsz = self.config.imgsz as u32;
        match self.config.mode {
            LoaderMode::Train(_) => {
                let mut order: Vec<usize> = (0..n).collect();
                SampleRng::for_epoch(self.config.seed, epoch).shuffle(&mut order);
                let group_len = bs * MOSAIC_POOL.div_ceil(bs);
                order
                    .chunks(group_len)
                    .map(|chunk| Group {
                        items: chunk.to_vec(),
                        batches: (0..chunk.len())
                            .step_by(bs)
                            .map(|s| PlannedBatch {
                                members: s..(s + bs).min(chunk.len()),
                                size: [imgsz, imgsz],
                            })
                            .collect(),
                    })
                    .collect()
            }
            LoaderMode::Val => {
                let sizes: Vec<[u32; 2]> = self.items.iter().map(|i| i.size).collect();
                let plan = rect_plan(&sizes, bs, self.config.imgsz);
                plan.order
                    .chunks(bs)
                    .zip(plan.batch_sizes)
                    .map(|(chunk, size)| Group {
                        items: chunk.to_vec(),
                        batches: vec![PlannedBatch {
                            members: 0..chunk.len(),
                            size,
                        }],
                    })
                    .collect()
            }
            LoaderMode::ValFixed(size) => (0..n)
                .collect::<Vec<_>>()
                .chunks(bs)
                .map(|chunk| Group {
                    items: chunk.to_vec(),
                    batches: vec![PlannedBatch {
                        members: 0..chunk.len(),
                        size,
                    }],
                })
                .collect(),
        }
    }

    /// The batches of 0-based `epoch`, made by `workers` threads; dropping the iterator stops them.
    pub fn epoch(&self, epoch: usize) -> EpochBatches {
        let groups = Arc::new(self.plan(epoch));
        let workers = self.config.workers.max(1).min(groups.len().max(1));
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        let mut batch_group = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            batch_group.extend(std::iter::repeat_n(g, group.batches.len()));
        }
        for w in 0..workers {
            let (tx, rx) = sync_channel(self.config.prefetch.max(1));
            receivers.push(rx);
            let job = WorkerJob {
                items: self.items.clone(),
                cache: self.cache.clone(),
                groups: groups.clone(),
                config: self.config.clone(),
                epoch,
                first_group: w,
                step: workers,
            };
            handles.push(std::thread::spawn(move || job.run(tx)));
        }
        EpochBatches {
            receivers,
            handles,
            batch_group,
            next: 0,
            workers,
        }
    }
}

/// What one worker thread does in one epoch.
struct WorkerJob {
    items: Arc<Vec<Item>>,
    cache: Arc<ImageCache>,
    groups: Arc<Vec<Group>>,
    config: LoaderConfig,
    epoch: usize,
    first_group: usize,
    step: usize,
}

impl WorkerJob {
    fn run(self, tx: SyncSender<Result<Batch, YoloError>>) {
        for group in self.groups.iter().skip(self.first_group).step_by(self.step) {
            match self.make_group(group) {
                Ok(batches) => {
                    for batch in batches {
                        if tx.send(Ok(batch)).is_err() {
                            return; // the consumer is gone
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    }

    /// Decodes the group's images once, then makes its batches.
    fn make_group(&self, group: &Group) -> Result<Vec<Batch>, YoloError> {
        let imgsz = self.config.imgsz as u32;
        let pool: Vec<Sample> = group
            .items
            .iter()
            .map(|&i| self.resized_sample(i, imgsz))
            .collect::<Result<_, _>>()?;
        let mut batches = Vec::with_capacity(group.batches.len());
        for planned in &group.batches {
            let members = planned.members.clone();
            let item_ids = &group.items[members.clone()];
            let paths = item_ids
                .iter()
                .map(|&i| self.items[i].path.clone())
                .collect();
            let ids = item_ids.iter().map(|&i| self.items[i].id).collect();
            let batch = match self.config.mode {
                LoaderMode::Train(schedule) => {
                    let augment = schedule.augment_at(self.epoch);
                    let samples: Vec<Sample> = members
                        .map(|p| {
                            let mut rng =
                                SampleRng::for_sample(self.config.seed, self.epoch, group.items[p]);
                            augment.apply(&pool, p, &mut rng)
                        })
                        .collect();
                    Batch::collate(&samples, paths, ids, Vec::new())
                }
                LoaderMode::Val | LoaderMode::ValFixed(_) => {
                    let mut placements = Vec::new();
                    let samples: Vec<Sample> = members
                        .map(|p| {
                            let item = &self.items[group.items[p]];
                            let lb = Letterbox::fit(pool[p].size(), planned.size, false);
                            // Ultralytics' `ratio_pad`: load_image's per-axis ratio times the letterbox's.
                            let [rw, rh] = pool[p].size();
                            let [w0, h0] = item.size.map(|v| v.max(1) as f32);
                            placements.push(Placement {
                                original_size: item.size,
                                gain: [rw as f32 / w0 * lb.gain, rh as f32 / h0 * lb.gain],
                                pad_px: lb.pad_left_top.map(|v| v as f32),
                            });
                            lb.apply(&pool[p])
                        })
                        .collect();
                    Batch::collate(&samples, paths, ids, placements)
                }
            };
            batches.push(batch);
        }
        Ok(batches)
    }

    /// Item `i` resized (long side = imgsz) with its boxes in the resized pixels.
    fn resized_sample(&self, i: usize, imgsz: u32) -> Result<Sample, YoloError> {
        let item = &self.items[i];
        let image = self.cache.load(i, &item.path, imgsz)?;
        let image = Arc::try_unwrap(image).unwrap_or_else(|shared| (*shared).clone());
        // Ultralytics keeps labels normalised and denormalises by the resized shape.
        let sx = image.width() as f32 / item.size[0].max(1) as f32;
        let sy = image.height() as f32 / item.size[1].max(1) as f32;
        let boxes = item
            .boxes
            .iter()
            .map(|b| {
                let [x1, y1, x2, y2] = b.xyxy_px;
                LabelBox {
                    class: b.class,
                    xyxy_px: [x1 * sx, y1 * sy, x2 * sx, y2 * sy],
                }
            })
            .collect();
        Ok(Sample { image, boxes })
    }
}

/// The batches of one epoch, in order. Dropping it stops and joins the workers.
pub struct EpochBatches {
    receivers: Vec<Receiver<Result<Batch, YoloError>>>,
    handles: Vec<JoinHandle<()>>,
    /// Group of each batch.
    batch_group: Vec<usize>,
    next: usize,
    workers: usize,
}

impl Iterator for EpochBatches {
    type Item = Result<Batch, YoloError>;

    fn next(&mut self) -> Option<Self::Item> {
        let group = *self.batch_group.get(self.next)?;
        self.next += 1;
        let received = self.receivers.get(group % self.workers)?.recv();
        match received {
            Ok(Err(e)) => {
                self.next = self.batch_group.len(); // one error ends the epoch
                Some(Err(e))
            }
            Ok(batch) => Some(batch),
            Err(_) => {
                self.next = self.batch_group.len();
                Some(Err(YoloError::InvalidTargets(
                    "a data-loader worker stopped unexpectedly".into(),
                )))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.batch_group.len() - self.next;
        (left, Some(left))
    }
}

impl Drop for EpochBatches {
    fn drop(&mut self) {
        self.receivers.clear(); // blocked senders fail and their workers return
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

/// The validation order and each batch's `[w, h]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RectPlan {
    /// Image indices sorted by aspect ratio h/w, equal ratios in numpy 2.4.6's order on this CPU.
    pub order: Vec<usize>,
    /// `[w, h]` of each batch, multiples of 32.
    pub batch_sizes: Vec<[u32; 2]>,
}

/// Ultralytics' `BaseDataset.set_rectangle` for validation (`pad = 0.5`, stride 32): sort by h/w; a batch whose
/// images are all wide gets height `imgsz · max(h/w)`, all tall gets width `imgsz · w/h` of its least tall
/// image, mixed gets a square; each side is then `ceil(side / 32 + 0.5) · 32`.
///
/// The sort is numpy's default `ar.argsort()`, which is unstable and orders equal ratios differently on
/// AVX-512, AVX2 and other CPUs; images with equal ratios (every 640x480 one) would otherwise land in other
/// batches than Ultralytics puts them in, with other padding and so other predictions. So the order is numpy
/// 2.4.6's on this CPU ([`numpy_argsort::ArgsortKernel::detect`]), as `yolo val` here would have it.
pub fn rect_plan(sizes: &[[u32; 2]], batch: usize, imgsz: usize) -> RectPlan {
    let ar: Vec<f64> = sizes
        .iter()
        .map(|&[w, h]| h as f64 / w.max(1) as f64)
        .collect();
    let order = numpy_argsort::argsort(&ar, numpy_argsort::ArgsortKernel::detect());
    let batch_sizes = order
        .chunks(batch.max(1))
        .map(|chunk| {
            let min = chunk.iter().map(|&i| ar[i]).fold(f64::INFINITY, f64::min);
            let max = chunk
                .iter()
                .map(|&i| ar[i])
                .fold(f64::NEG_INFINITY, f64::max);
            let [h, w] = if max < 1.0 {
                [max, 1.0]
            } else if min > 1.0 {
                [1.0, 1.0 / min]
            } else {
                [1.0, 1.0]
            };
            let side = |s: f64| ((s * imgsz as f64 / STRIDE + VAL_RECT_PAD).ceil() * STRIDE) as u32;
            [side(w), side(h)]
        })
        .collect();
    RectPlan { order, batch_sizes }
}

/// Size of image `[w, h]` after `load_image` at `imgsz` (re-exported for the preview and tests).
pub fn resized_size(size: [u32; 2], imgsz: usize) -> [u32; 2] {
    long_side_size(size, imgsz as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_rect_false_gives_square_batches_of_imgsz() {
        let mut config = Config::default();
        config.train.imgsz = 96;
        assert_eq!(LoaderConfig::val(&config).mode, LoaderMode::Val);
        config.eval.rect = false;
        assert_eq!(
            LoaderConfig::val(&config).mode,
            LoaderMode::ValFixed([96, 96])
        );
    }

    #[test]
    fn rect_plan_wide_batch_gets_short_height() {
        // 640x480 images: h/w = 0.75 -> height ceil(0.75*640/32 + 0.5)*32 = ceil(15.5)*32 = 512.
        let plan = rect_plan(&[[640, 480], [640, 480]], 2, 640);
        assert_eq!(plan.batch_sizes, vec![[672, 512]]);
    }

    #[test]
    fn rect_plan_sorts_by_aspect_ratio() {
        let plan = rect_plan(&[[100, 300], [300, 100], [100, 100]], 1, 320);
        assert_eq!(plan.order, vec![1, 2, 0]);
        // 300x100: h/w = 1/3 -> height ceil(1/3*10 + 0.5)*32 = 128; width ceil(10.5)*32 = 352.
        assert_eq!(plan.batch_sizes[0], [352, 128]);
        assert_eq!(plan.batch_sizes[2], [128, 352]);
    }

    #[test]
    fn close_mosaic_turns_mosaic_off_for_last_epochs() {
        let augment = TrainAugment::new(&Default::default(), 640).unwrap();
        let schedule = TrainSchedule {
            augment,
            close_mosaic: 2,
            epochs: 5,
        };
        assert_eq!(schedule.augment_at(2).mosaic, 1.0);
        assert_eq!(schedule.augment_at(3).mosaic, 0.0);
        assert_eq!(schedule.augment_at(4).mosaic, 0.0);
    }
}
