//! The YOLO txt reader on real data (../shared/datasets/coco128) and on generated corrupt inputs.

use std::path::{Path, PathBuf};

mod common;

use yolo_burn::data::image::load_rgb;
use yolo_burn::data::{read_index, ProblemKind, SplitName};

fn shared(path: &str) -> PathBuf {
    common::shared(&format!("datasets/{path}"))
}

#[test]
fn coco128_train_has_128_images_and_929_boxes() {
    let index =
        read_index(&shared("coco128/coco128.yaml"), None, SplitName::Train).expect("read coco128");
    assert_eq!(index.images.len(), 128);
    assert_eq!(index.train_boxes(), 929);
    assert!(index.problems.is_empty(), "{:?}", index.problems.items);
    assert_eq!(index.nc(), 80);
    assert_eq!(index.names[0], "person");
    // Two images have no label file: background images, kept with no boxes.
    assert_eq!(
        index.images.iter().filter(|i| i.boxes.is_empty()).count(),
        2
    );
}

#[test]
fn coco128_heldout_val_has_128_images_and_898_boxes() {
    let index = read_index(
        &shared("coco128/coco128-heldout.yaml"),
        None,
        SplitName::Val,
    )
    .expect("read heldout");
    assert_eq!(index.images.len(), 128);
    assert_eq!(index.train_boxes(), 898);
}

#[test]
fn grayscale_jpeg_loads_as_rgb() {
    let path = shared("coco128/images/train2017/000000000086.jpg");
    let image = load_rgb(&path).expect("grayscale image decodes");
    assert!(image.width() > 0 && image.height() > 0);
    let index = read_index(&shared("coco128/coco128.yaml"), None, SplitName::Train).expect("read");
    let record = index
        .images
        .iter()
        .find(|i| i.path.ends_with("000000000086.jpg"))
        .expect("in the index");
    assert_eq!(record.size, [image.width(), image.height()]);
}

/// A dataset in a temp dir with one good image and every kind of bad input.
fn corrupt_dataset() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = dir.path().join("images/train");
    let labels = dir.path().join("labels/train");
    std::fs::create_dir_all(&images).expect("mkdir");
    std::fs::create_dir_all(&labels).expect("mkdir");
    let good = image::RgbImage::from_pixel(64, 48, image::Rgb([200, 10, 10]));
    good.save(images.join("good.jpg")).expect("save jpeg");
    let bytes = std::fs::read(images.join("good.jpg")).expect("read jpeg");
    std::fs::write(images.join("truncated.jpg"), &bytes[..bytes.len() / 2]).expect("write");
    std::fs::write(images.join("empty.jpg"), b"").expect("write");
    std::fs::write(images.join("text.jpg"), b"this is not an image\n").expect("write");
    std::fs::write(
        labels.join("good.txt"),
        "0 0.5 0.5 0.5 0.5\n0 0.5 0.5\n0 nan 0.5 0.1 0.1\n5 0.5 0.5 0.1 0.1\n0 1.2 0.5 0.1 0.1\n0 0.5 0.5 0 0.1\n0 0.5 0.5 0.5 0.5\n",
    )
    .expect("write labels");
    // A list file naming an image that does not exist.
    std::fs::write(
        dir.path().join("train.txt"),
        "./images/train/good.jpg\n./images/train/gone.jpg\n",
    )
    .expect("write");
    let yaml = dir.path().join("bad.yaml");
    std::fs::write(
        &yaml,
        "path: .\ntrain: [images/train, train.txt]\nnames: [a, b]\n",
    )
    .expect("write yaml");
    (dir, yaml)
}

#[test]
fn corrupt_inputs_are_counted_and_named() {
    let (_dir, yaml) = corrupt_dataset();
    let index =
        read_index(&yaml, None, SplitName::Train).expect("a dataset with bad items still reads");
    // good.jpg is listed twice (folder and list file); each copy keeps its one good box.
    assert_eq!(index.images.len(), 2);
    assert_eq!(index.train_boxes(), 2);
    let named = |kind: ProblemKind, file: &str| {
        index
            .problems
            .items
            .iter()
            .any(|p| p.kind == kind && p.file.to_string_lossy().ends_with(file))
    };
    assert!(
        named(ProblemKind::UnreadableImage, "truncated.jpg"),
        "{:#?}",
        index.problems.items
    );
    assert!(named(ProblemKind::UnreadableImage, "empty.jpg"));
    assert!(named(ProblemKind::UnreadableImage, "text.jpg"));
    assert!(named(ProblemKind::MissingImage, "gone.jpg"));
    for kind in [
        ProblemKind::WrongFieldCount,
        ProblemKind::NotANumber,
        ProblemKind::ClassOutOfRange,
        ProblemKind::OutOfRange,
        ProblemKind::ZeroSize,
        ProblemKind::DuplicateBox,
    ] {
        assert!(named(kind, "good.txt"), "{kind:?} not reported");
    }
    let with_lines = index
        .problems
        .items
        .iter()
        .filter(|p| p.file.ends_with("labels/train/good.txt"));
    assert!(with_lines.clone().all(|p| p.line.is_some()));
    let err = index.check_strict(true).expect_err("strict fails");
    assert!(
        err.to_string().contains(".jpg") || err.to_string().contains(".txt"),
        "{err}"
    );
    assert!(index.check_strict(false).is_ok());
}

#[test]
fn missing_descriptor_and_split_are_clean_errors() {
    let err = read_index(Path::new("/nonexistent/data.yaml"), None, SplitName::Train)
        .expect_err("missing");
    assert!(err.to_string().contains("/nonexistent/data.yaml"), "{err}");
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = dir.path().join("d.yaml");
    std::fs::write(&yaml, "train: images/train\nnames: [a]\n").expect("write");
    let err = read_index(&yaml, None, SplitName::Val).expect_err("no val split");
    assert!(err.to_string().contains("`val`"), "{err}");
    let err = read_index(&yaml, None, SplitName::Train).expect_err("no images folder");
    assert!(err.to_string().contains("images/train"), "{err}");
}

#[test]
fn embedded_default_dataset_is_drawn_on_first_use() {
    use yolo_burn::data::shapes;
    let dir = tempfile::tempdir().expect("tempdir");
    // As when the binary runs outside the repository: the descriptor itself is written from the embedded copy.
    let descriptor = dir.path().join("datasets/shapes.toml");
    let train = read_index(&descriptor, None, SplitName::Train).expect("draw and read shapes");
    assert!(descriptor.exists());
    assert_eq!(train.images.len(), shapes::TRAIN_IMAGES);
    assert_eq!(train.names, shapes::NAMES);
    assert!(
        train.problems.is_empty(),
        "{:?}",
        train.problems.items.first()
    );
    assert!(
        train.class_counts().iter().all(|&n| n > 100),
        "{:?}",
        train.class_counts()
    );
    let val = read_index(&descriptor, None, SplitName::Val).expect("read val");
    assert_eq!(val.images.len(), shapes::VAL_IMAGES);
    // Drawn once: a second read reuses the files.
    let marker = dir.path().join("datasets/shapes/.complete");
    let before = std::fs::metadata(&marker)
        .and_then(|m| m.modified())
        .expect("marker");
    read_index(&descriptor, None, SplitName::Train).expect("reread");
    assert_eq!(
        std::fs::metadata(&marker)
            .and_then(|m| m.modified())
            .expect("marker"),
        before
    );
}

#[test]
fn index_cache_is_reused_and_rebuilt_when_a_label_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = dir.path().join("images/train");
    let labels = dir.path().join("labels/train");
    std::fs::create_dir_all(&images).expect("mkdir");
    std::fs::create_dir_all(&labels).expect("mkdir");
    for i in 0..3 {
        image::RgbImage::from_pixel(40, 20, image::Rgb([i * 50, 0, 0]))
            .save(images.join(format!("{i}.png")))
            .expect("png");
        std::fs::write(labels.join(format!("{i}.txt")), "0 0.5 0.5 0.5 0.5\n").expect("label");
    }
    let yaml = dir.path().join("d.yaml");
    std::fs::write(&yaml, "train: images/train\nnames: [a, b]\n").expect("yaml");

    let first = read_index(&yaml, None, SplitName::Train).expect("read");
    let cache = dir.path().join("labels/train.yolo-burn-cache");
    assert!(cache.exists(), "cache beside the labels");
    let again = read_index(&yaml, None, SplitName::Train).expect("reread");
    assert_eq!(again, first);

    // A changed label (different size) invalidates the cache.
    std::fs::write(
        labels.join("1.txt"),
        "1 0.5 0.5 0.25 0.25\n0 0.2 0.2 0.1 0.1\n",
    )
    .expect("label");
    let changed = read_index(&yaml, None, SplitName::Train).expect("reread after change");
    assert_eq!(changed.train_boxes(), 4);
    assert_ne!(changed, first);
}
