//! Issue 3, must-show 4 (second half): the loader gives bit-identical batches (images and targets) with 1 and 4
//! workers, with and without caches, in training (mosaic and close_mosaic epochs) and validation.

use std::path::Path;

use image::{Rgb, RgbImage};
use yolo_burn::config::{AugmentSection, CacheMode};
use yolo_burn::data::augment::TrainAugment;
use yolo_burn::data::loader::{Batch, Loader, LoaderConfig, LoaderMode, TrainSchedule};
use yolo_burn::data::{BoxLabel, ImageRecord, Index};

/// 23 PNG images of varied sizes with two boxes each (one crowd box on every fifth image).
fn dataset(dir: &Path) -> Index {
    let images = (0..23u32)
        .map(|i| {
            let (w, h) = (90 + 17 * (i % 5), 70 + 23 * (i % 4));
            let image = RgbImage::from_fn(w, h, |x, y| {
                Rgb([(x * 3 + i) as u8, (y * 5) as u8, ((x ^ y) + 40 * i) as u8])
            });
            let path = dir.join(format!("im{i:02}.png"));
            image.save(&path).unwrap();
            let b = |class: u32, xyxy: [f32; 4], crowd: bool| BoxLabel {
                class,
                xyxy_px: xyxy,
                crowd,
                area: (xyxy[2] - xyxy[0]) * (xyxy[3] - xyxy[1]),
            };
            ImageRecord {
                path,
                id: 1000 + i as u64,
                size: [w, h],
                boxes: vec![
                    b(i % 3, [5.0, 6.0, 50.0, 40.0], false),
                    b(2, [30.0, 20.0, w as f32 - 4.0, h as f32 - 3.0], i % 5 == 0),
                ],
            }
        })
        .collect();
    Index {
        names: vec!["a".into(), "b".into(), "c".into()],
        images,
        ..Index::default()
    }
}

fn train_config(workers: usize, cache: CacheMode) -> LoaderConfig {
    LoaderConfig {
        imgsz: 96,
        batch: 4,
        workers,
        seed: 7,
        mode: LoaderMode::Train(TrainSchedule {
            augment: TrainAugment::new(&AugmentSection::default(), 96).unwrap(),
            close_mosaic: 1,
            epochs: 2,
        }),
        cache,
        prefetch: 1,
    }
}

fn epochs(loader: &Loader, n: usize) -> Vec<Batch> {
    (0..n)
        .flat_map(|e| loader.epoch(e).map(|b| b.unwrap()).collect::<Vec<_>>())
        .collect()
}

#[test]
fn loader_batches_identical_with_1_and_4_workers() {
    let dir = tempfile::tempdir().unwrap();
    let index = dataset(dir.path());
    let one = epochs(
        &Loader::new(&index, train_config(1, CacheMode::None)).unwrap(),
        2,
    );
    let four = epochs(
        &Loader::new(&index, train_config(4, CacheMode::None)).unwrap(),
        2,
    );
    assert_eq!(one.len(), 2 * 6);
    assert_eq!(one.last().unwrap().len(), 3); // 23 = 5 x 4 + 3
    for (j, (a, b)) in one.iter().zip(&four).enumerate() {
        assert_eq!(a.ids, b.ids, "batch {j}");
        assert_eq!(a.targets, b.targets, "batch {j}");
        assert!(a.images == b.images, "batch {j}: images differ");
    }
    // The two epochs differ (shuffle and augmentation depend on the epoch), and nothing crowd is a target.
    assert_ne!(one[0].ids, one[6].ids);
    assert!(one.iter().all(|b| b.shape == [b.len(), 3, 96, 96]));
    assert!(one.iter().any(|b| !b.targets.is_empty()));
    for b in &one {
        for t in &b.targets {
            assert!((t[0] as usize) < b.len() && t[1] < 3.0);
            assert!(t[2..].iter().all(|v| (0.0..=1.0).contains(v)), "{t:?}");
        }
    }
}

#[test]
fn loader_caches_give_the_same_batches() {
    let dir = tempfile::tempdir().unwrap();
    let index = dataset(dir.path());
    let plain = epochs(
        &Loader::new(&index, train_config(2, CacheMode::None)).unwrap(),
        1,
    );
    let ram = epochs(
        &Loader::new(&index, train_config(3, CacheMode::Ram)).unwrap(),
        1,
    );
    let disk_loader = Loader::new(&index, train_config(2, CacheMode::Disk)).unwrap();
    let disk_first = epochs(&disk_loader, 1);
    assert!(dir.path().join("im00.png.96.cv2.npy").exists());
    let disk_again = epochs(&disk_loader, 1); // now read from the .npy files
    for other in [&ram, &disk_first, &disk_again] {
        assert_eq!(&plain, other);
    }
}

#[test]
fn loader_val_rect_batches_identical_with_1_and_4_workers() {
    let dir = tempfile::tempdir().unwrap();
    let index = dataset(dir.path());
    let config = |workers| LoaderConfig {
        mode: LoaderMode::Val,
        ..train_config(workers, CacheMode::None)
    };
    let one = epochs(&Loader::new(&index, config(1)).unwrap(), 1);
    let four = epochs(&Loader::new(&index, config(4)).unwrap(), 1);
    assert_eq!(one, four);
    for b in &one {
        let [_, _, h, w] = b.shape;
        assert!(h % 32 == 0 && w % 32 == 0 && h.max(w) <= 96 + 32);
        assert_eq!(b.placements.len(), b.len());
    }
    // Every non-crowd box comes out once: 23 + 23 - 5 crowd.
    assert_eq!(one.iter().map(|b| b.targets.len()).sum::<usize>(), 41);
}
