//! COCO and Objects365 instances JSON readers (issue 3): coco128's real COCO annotations against its YOLO txt
//! labels, generated corrupt inputs, and a generated Objects365 v2 file of 200k images and 3M boxes whose parse
//! time and peak RSS are measured in a child process (docs/benchmarks.md, "Objects365 JSON parsing").

use std::collections::HashMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use yolo_burn::data::coco::{read_coco, CocoOptions};
use yolo_burn::data::objects365::NameStyle;
use yolo_burn::data::verify::verify_images;
use yolo_burn::data::{read_json_index, Index, JsonFormat, JsonOptions, ProblemKind};

fn shared_datasets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets")
}

/// One YOLO txt box converted to pixel xyxy, with its COCO category id.
struct YoloBox {
    category_id: u64,
    xyxy_px: [f64; 4],
}

/// A tiny YOLO txt parser for this comparison only (the real reader is `data::yolo_txt`).
fn read_yolo_labels(path: &Path, size: [u32; 2], coco91: &[u64]) -> Vec<YoloBox> {
    let Ok(text) = fs::read_to_string(path) else {
        return Vec::new(); // no label file: a background image
    };
    let (w, h) = (f64::from(size[0]), f64::from(size[1]));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Vec<f64> = line
                .split_whitespace()
                .map(|f| f.parse().expect("number"))
                .collect();
            let [class, cx, cy, bw, bh] = v[..] else {
                panic!("{}: {line}", path.display())
            };
            YoloBox {
                category_id: coco91[class as usize],
                xyxy_px: [
                    (cx - bw / 2.0) * w,
                    (cy - bh / 2.0) * h,
                    (cx + bw / 2.0) * w,
                    (cy + bh / 2.0) * h,
                ],
            }
        })
        .collect()
}

/// `coco80_to_coco91_category_id.txt`: "yolo_index coco_category_id name" per line.
fn coco80_to_coco91() -> Vec<u64> {
    let text =
        fs::read_to_string(shared_datasets().join("coco128/coco80_to_coco91_category_id.txt"))
            .expect("mapping file");
    let pairs: Vec<(usize, u64)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split_whitespace();
            (
                f.next().unwrap().parse().unwrap(),
                f.next().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert!(pairs.iter().enumerate().all(|(i, (k, _))| i == *k));
    pairs.into_iter().map(|(_, id)| id).collect()
}

fn coco128_index() -> Index {
    let json = shared_datasets().join("coco-json/instances_train2017_coco128.json");
    let images_dir = shared_datasets().join("coco128/images/train2017");
    read_coco(
        &json,
        &CocoOptions {
            images_dir: Some(images_dir),
        },
    )
    .expect("coco128 JSON reads")
}

#[test]
fn coco128_json_has_929_boxes_and_10_crowd() {
    let index = coco128_index();
    assert!(index.problems.is_empty(), "{:?}", index.problems.items);
    assert_eq!(index.images.len(), 128);
    assert_eq!(index.train_boxes(), 929);
    let crowd = index
        .images
        .iter()
        .flat_map(|i| &i.boxes)
        .filter(|b| b.crowd)
        .count();
    assert_eq!(crowd, 10);
    assert_eq!(index.nc(), 80);
    assert_eq!(index.names[0], "person");
    let ids = index
        .category_ids
        .as_ref()
        .expect("COCO keeps category ids");
    assert_eq!(ids, &coco80_to_coco91());
}

#[test]
fn coco128_json_matches_yolo_txt_labels_per_image() {
    let index = coco128_index();
    let ids = index.category_ids.clone().expect("category ids");
    let coco91 = coco80_to_coco91();
    let labels = shared_datasets().join("coco128/labels/train2017");
    let mut matched = 0;
    let mut worst = 0.0f64;
    for image in &index.images {
        let stem = image.path.file_stem().unwrap().to_str().unwrap();
        let mut yolo = read_yolo_labels(&labels.join(format!("{stem}.txt")), image.size, &coco91);
        let json: Vec<_> = image.boxes.iter().filter(|b| !b.crowd).collect();
        assert_eq!(
            json.len(),
            yolo.len(),
            "{}: box count",
            image.path.display()
        );
        for b in json {
            let xyxy = b.xyxy_px.map(f64::from);
            let error = |y: &YoloBox| {
                xyxy.iter()
                    .zip(y.xyxy_px)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max)
            };
            let best = yolo
                .iter()
                .enumerate()
                .filter(|(_, y)| y.category_id == ids[b.class as usize])
                .min_by(|(_, a), (_, c)| error(a).total_cmp(&error(c)));
            let (k, y) =
                best.unwrap_or_else(|| panic!("{}: no YOLO box for {b:?}", image.path.display()));
            let e = error(y);
            assert!(
                e < 1e-3,
                "{}: {b:?} vs {:?}: {e} px",
                image.path.display(),
                y.xyxy_px
            );
            worst = worst.max(e);
            yolo.swap_remove(k);
            matched += 1;
        }
    }
    assert_eq!(matched, 929);
    eprintln!("coco128: 929 boxes matched, worst corner difference {worst:.2e} px");
}

#[test]
fn coco128_json_dispatch_and_verify_images_all_readable() {
    let json = shared_datasets().join("coco-json/instances_train2017_coco128.json");
    let options = JsonOptions {
        images_dir: Some(shared_datasets().join("coco128/images/train2017")),
        ..JsonOptions::default()
    };
    let mut index = read_json_index(&json, &options).expect("reads");
    assert_eq!(index.train_boxes(), 929);
    verify_images(&mut index);
    assert!(index.problems.is_empty(), "{:?}", index.problems.items);
    assert_eq!(index.images.len(), 128);
}

/// Writes a real 64x48 JPEG with enough detail that cutting it leaves a truncated scan.
fn write_jpeg(path: &Path) {
    let image = image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([
            (x * 4) as u8,
            (y * 5) as u8,
            ((x * 31 + y * 17) % 251) as u8,
        ])
    });
    image.save(path).expect("jpeg written");
}

/// A COCO file with one defect of each JSON kind, annotations before images, and categories 5 and 2 (so their
/// contiguous order is by id, not by position).
const CORRUPT_JSON: &str = r#"{
  "annotations": [
    {"id": 1, "image_id": 1, "category_id": 5, "bbox": [4, 4, 20, 10], "area": 150.5, "iscrowd": 0},
    {"id": 2, "image_id": 99, "category_id": 5, "bbox": [4, 4, 20, 10], "area": 200, "iscrowd": 0},
    {"id": 3, "image_id": 1, "category_id": 77, "bbox": [4, 4, 20, 10], "area": 200, "iscrowd": 0},
    {"id": 4, "image_id": 1, "category_id": 2, "bbox": [10, 10, 0, 5], "area": 0, "iscrowd": 0},
    {"id": 5, "image_id": 1, "category_id": 5, "bbox": [4, 4, 20, 10], "area": 150.5, "iscrowd": 0},
    {"id": 6, "image_id": 1, "category_id": 2, "bbox": [30, 20, 100, 100], "area": 600, "iscrowd": 1}
  ],
  "images": [
    {"id": 1, "file_name": "good.jpg", "width": 64, "height": 48},
    {"id": 2, "file_name": "truncated.jpg", "width": 64, "height": 48},
    {"id": 3, "file_name": "empty.jpg", "width": 64, "height": 48},
    {"id": 4, "file_name": "text.jpg", "width": 64, "height": 48},
    {"id": 5, "file_name": "missing.jpg", "width": 64, "height": 48}
  ],
  "categories": [{"id": 5, "name": "cat"}, {"id": 2, "name": "dog"}]
}"#;

fn corrupt_dataset() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = dir.path().join("images/bad");
    fs::create_dir_all(&images).unwrap();
    write_jpeg(&images.join("good.jpg"));
    let jpeg = fs::read(images.join("good.jpg")).unwrap();
    fs::write(images.join("truncated.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    fs::write(images.join("empty.jpg"), b"").unwrap();
    fs::write(images.join("text.jpg"), b"this is not an image\n").unwrap();
    fs::create_dir_all(dir.path().join("annotations")).unwrap();
    let json = dir.path().join("annotations/instances_bad.json");
    fs::write(&json, CORRUPT_JSON).unwrap();
    (dir, json)
}

fn problems_of(index: &Index, kind: ProblemKind) -> Vec<&yolo_burn::data::Problem> {
    index
        .problems
        .items
        .iter()
        .filter(|p| p.kind == kind)
        .collect()
}

#[test]
fn corrupt_json_each_defect_counted_and_named() {
    let (_dir, json) = corrupt_dataset();
    // Default image folder: annotations/instances_bad.json → annotations/../images/bad.
    let index =
        read_json_index(&json, &JsonOptions::default()).expect("defects are counted, not fatal");
    assert_eq!(index.names, ["dog", "cat"]);
    assert_eq!(index.category_ids, Some(vec![2, 5]));
    assert_eq!(index.images.len(), 5);
    assert!(
        index.images[0].path.ends_with("images/bad/good.jpg"),
        "{:?}",
        index.images[0].path
    );

    let dangling_image = problems_of(&index, ProblemKind::DanglingImageId);
    assert_eq!(dangling_image.len(), 1);
    assert_eq!(
        (dangling_image[0].file.as_path(), dangling_image[0].line),
        (json.as_path(), Some(1))
    );
    assert!(
        dangling_image[0].detail.contains("image_id 99"),
        "{}",
        dangling_image[0]
    );
    let dangling_category = problems_of(&index, ProblemKind::DanglingCategoryId);
    assert_eq!(dangling_category.len(), 1);
    assert_eq!(dangling_category[0].line, Some(2));
    assert!(
        dangling_category[0].detail.contains("category_id 77"),
        "{}",
        dangling_category[0]
    );
    let zero = problems_of(&index, ProblemKind::ZeroSize);
    assert_eq!(zero.len(), 1);
    assert_eq!(zero[0].line, Some(3));
    let duplicate = problems_of(&index, ProblemKind::DuplicateBox);
    assert_eq!(duplicate.len(), 1);
    assert!(duplicate[0].detail.contains("good.jpg"), "{}", duplicate[0]);
    assert_eq!(index.problems.items.len(), 4, "{:?}", index.problems.items);

    // Kept: the first cat box and the crowd dog box, clipped to the 64x48 image.
    let boxes = &index.images[0].boxes;
    assert_eq!(boxes.len(), 2);
    assert_eq!(
        (
            boxes[0].class,
            boxes[0].xyxy_px,
            boxes[0].area,
            boxes[0].crowd
        ),
        (1, [4.0, 4.0, 24.0, 14.0], 150.5, false)
    );
    assert_eq!(
        (boxes[1].class, boxes[1].xyxy_px, boxes[1].crowd),
        (0, [30.0, 20.0, 64.0, 48.0], true)
    );
    assert_eq!(index.train_boxes(), 1);

    assert!(index.check_strict(false).is_ok());
    let err = index
        .check_strict(true)
        .expect_err("strict fails")
        .to_string();
    assert!(
        err.contains("instances_bad.json") && err.contains("strict"),
        "{err}"
    );
}

#[test]
fn corrupt_images_verify_pass_counts_each_by_path() {
    let (dir, json) = corrupt_dataset();
    let mut index = read_json_index(&json, &JsonOptions::default()).expect("reads");
    let before = index.problems.items.len();
    verify_images(&mut index);
    let images = dir.path().join("images/bad");
    let found: Vec<(ProblemKind, PathBuf)> = index.problems.items[before..]
        .iter()
        .map(|p| (p.kind, p.file.clone()))
        .collect();
    let expected = [
        (ProblemKind::UnreadableImage, "truncated.jpg"),
        (ProblemKind::UnreadableImage, "empty.jpg"),
        (ProblemKind::UnreadableImage, "text.jpg"),
        (ProblemKind::MissingImage, "missing.jpg"),
    ]
    .map(|(kind, name)| (kind, images.join(name)));
    // The JSON's folder is reached through `annotations/..`; compare canonical parents.
    let canon = |(kind, path): &(ProblemKind, PathBuf)| {
        let parent = path.parent().unwrap().canonicalize().unwrap();
        (*kind, parent.join(path.file_name().unwrap()))
    };
    assert_eq!(
        found.iter().map(canon).collect::<Vec<_>>(),
        expected.iter().map(canon).collect::<Vec<_>>()
    );
    assert_eq!(index.images.len(), 1);
    assert!(index.images[0].path.ends_with("good.jpg"));
    let err = index
        .check_strict(true)
        .expect_err("strict fails")
        .to_string();
    assert!(err.contains("instances_bad.json"), "{err}");
}

#[test]
fn malformed_json_is_a_clean_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("instances_broken.json");
    fs::write(
        &json,
        r#"{"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "#,
    )
    .unwrap();
    let err = read_json_index(&json, &JsonOptions::default())
        .expect_err("malformed")
        .to_string();
    assert!(err.contains("instances_broken.json"), "{err}");
    let missing = dir.path().join("nope.json");
    let err = read_json_index(&missing, &JsonOptions::default())
        .expect_err("missing")
        .to_string();
    assert!(err.contains("nope.json"), "{err}");
}

// ---- Objects365 v2 at scale -------------------------------------------------------------------------------

const O365_IMAGES: u64 = 200_000;
const O365_BOXES: u64 = 3_000_000;
const CHILD_ENV: &str = "YOLO_BURN_O365_JSON";

/// The real 365 (id, official name) pairs from ../shared/datasets/objects365.
fn objects365_categories() -> Vec<(u64, String)> {
    let path = shared_datasets().join("objects365/objects365_v2_categories.json");
    let value: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    value["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_u64().unwrap(),
                c["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Streams a zhiyuan_objv2-shaped file: images (v1 and v2 patches), annotations with Objects365's extra fields,
/// then categories; 15 boxes per image; deterministic.
fn write_objects365_v2(path: &Path) {
    let mut out = BufWriter::with_capacity(1 << 20, fs::File::create(path).unwrap());
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let size_of = |id: u64| [640 + (id % 7) as u32 * 160, 480 + (id % 5) as u32 * 120];
    write!(out, r#"{{"images": ["#).unwrap();
    for id in 1..=O365_IMAGES {
        let [w, h] = size_of(id);
        let (v, patch) = if id % 2 == 0 {
            (1, id % 16)
        } else {
            (2, 16 + id % 35)
        };
        let sep = if id == 1 { "" } else { ", " };
        write!(
            out,
            r#"{sep}{{"height": {h}, "id": {id}, "license": 5, "width": {w}, "file_name": "images/v{v}/patch{patch}/objects365_v{v}_{id:08}.jpg", "url": ""}}"#
        )
        .unwrap();
    }
    write!(out, r#"], "annotations": ["#).unwrap();
    let per_image = O365_BOXES / O365_IMAGES;
    for k in 0..O365_BOXES {
        let image_id = k / per_image + 1;
        let [w, h] = size_of(image_id);
        let r = next();
        let x = (r % u64::from(w - 40)) as f64 + 0.25;
        let y = ((r >> 16) % u64::from(h - 40)) as f64 + 0.5;
        let bw = 2.0 + ((r >> 32) % u64::from(w / 2)) as f64 * 0.75;
        let bh = 2.0 + ((r >> 44) % u64::from(h / 2)) as f64 * 0.5;
        let category = (r >> 20) % 365 + 1;
        let crowd = u8::from(r % 97 == 0);
        let sep = if k == 0 { "" } else { ", " };
        write!(
            out,
            r#"{sep}{{"id": {}, "iscrowd": {crowd}, "isfake": 0, "area": {:.4}, "isreflected": 0, "bbox": [{x:.2}, {y:.2}, {bw:.2}, {bh:.2}], "image_id": {image_id}, "category_id": {category}}}"#,
            k + 1,
            bw * bh
        )
        .unwrap();
    }
    write!(out, r#"], "categories": ["#).unwrap();
    for (i, (id, name)) in objects365_categories().iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        write!(
            out,
            r#"{sep}{{"name": {}, "id": {id}}}"#,
            serde_json::to_string(name).unwrap()
        )
        .unwrap();
    }
    write!(
        out,
        r#"], "licenses": [{{"name": "", "id": 5, "url": ""}}]}}"#
    )
    .unwrap();
    out.flush().unwrap();
}

/// Peak resident set of this process in bytes (`VmHWM` in /proc/self/status).
fn peak_rss_bytes() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Child half of [`objects365_v2_3m_boxes_parse_time_and_peak_rss`]: does nothing unless the parent set
/// `YOLO_BURN_O365_JSON`, so that the peak RSS it reports is the parser's alone.
#[test]
fn objects365_child_parse() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let start = Instant::now();
    let index = read_json_index(Path::new(&path), &JsonOptions::default()).expect("parses");
    let parse_s = start.elapsed().as_secs_f64();
    let boxes: usize = index.images.iter().map(|i| i.boxes.len()).sum();
    println!(
        "O365_RESULT parse_s={parse_s:.3} peak_rss={} images={} boxes={boxes} problems={} name98={}",
        peak_rss_bytes().unwrap_or(0),
        index.images.len(),
        index.problems.items.len(),
        index.names.get(98).map(|n| n.replace(' ', "_")).unwrap_or_default(),
    );
}

#[test]
fn objects365_v2_3m_boxes_parse_time_and_peak_rss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("zhiyuan_objv2_train.json");
    let start = Instant::now();
    write_objects365_v2(&json);
    let write_s = start.elapsed().as_secs_f64();
    let bytes = fs::metadata(&json).unwrap().len();

    // A fresh process of this test binary, running only the child test, so no other test's memory counts.
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "objects365_child_parse",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &json)
        .output()
        .expect("child runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.find("O365_RESULT").map(|at| &l[at..]))
        .expect("child reports");
    let fields: HashMap<&str, &str> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.split_once('='))
        .collect();
    let parse_s: f64 = fields["parse_s"].parse().unwrap();
    let peak_rss: u64 = fields["peak_rss"].parse().unwrap();
    assert_eq!(fields["images"], O365_IMAGES.to_string());
    assert_eq!(fields["boxes"], O365_BOXES.to_string());
    assert_eq!(fields["problems"], "0");
    assert_eq!(
        fields["name98"], "Dining_Table",
        "Ultralytics names by default: {line}"
    );
    eprintln!(
        "objects365 v2: {:.0} MB JSON written in {write_s:.1} s; parsed in {parse_s:.2} s, peak RSS {:.0} MB",
        bytes as f64 / 1e6,
        peak_rss as f64 / 1e6
    );
    assert!(
        peak_rss > 0 && peak_rss < 2_500_000_000,
        "peak RSS {peak_rss} bytes"
    );
}

#[test]
fn objects365_official_names_keep_json_spelling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("zhiyuan_objv2_val.json");
    let mut text = String::from(r#"{"images": [], "annotations": [], "categories": ["#);
    for (i, (id, name)) in objects365_categories().iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        text += &format!(
            r#"{sep}{{"name": {}, "id": {id}}}"#,
            serde_json::to_string(name).unwrap()
        );
    }
    text += "]}";
    fs::write(&json, text).unwrap();
    let official = JsonOptions {
        names: NameStyle::Official,
        ..JsonOptions::default()
    };
    let index = read_json_index(&json, &official).expect("reads");
    assert_eq!(
        (index.names[37].as_str(), index.names[364].as_str()),
        ("Moniter/TV", "Table Tennis ")
    );
    let index = read_json_index(&json, &JsonOptions::default()).expect("reads");
    assert_eq!(
        (index.names[37].as_str(), index.names[364].as_str()),
        ("Monitor/TV", "Table Tennis")
    );
    // Content detection: the same file under a neutral name is still Objects365.
    let renamed = dir.path().join("val.json");
    fs::rename(&json, &renamed).unwrap();
    let index = read_json_index(&renamed, &JsonOptions::default()).expect("reads");
    assert_eq!(index.names[98], "Dining Table");
    let coco = JsonOptions {
        format: Some(JsonFormat::Coco),
        ..JsonOptions::default()
    };
    assert_eq!(
        read_json_index(&renamed, &coco).expect("reads").names[98],
        "Dinning Table"
    );
}

/// A JSON whose listed images are all absent from the folder the reader searched is an error naming that
/// folder and `data.images`, not an empty dataset; pointing `data.images` at them reads all 128.
#[test]
fn json_with_every_image_missing_names_the_folder_and_data_images() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("instances.json");
    fs::copy(
        shared_datasets().join("coco-json/instances_train2017_coco128.json"),
        &json,
    )
    .unwrap();
    let split = yolo_burn::data::SplitName::Train;
    let err = yolo_burn::data::read_index(&json, None, split)
        .unwrap_err()
        .to_string();
    for needle in [
        "none of the 128 images",
        &dir.path().display().to_string(),
        "data.images",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    let images = shared_datasets().join("coco128/images/train2017");
    let index = yolo_burn::data::read_index(&json, Some(&images), split).unwrap();
    assert_eq!(index.images.len(), 128);
}

/// A split whose every image is unreadable: the loader says so, with the counts by kind, instead of only "no
/// images".
#[test]
fn empty_split_says_why() {
    let dir = tempfile::tempdir().unwrap();
    for split in ["train", "val"] {
        let images = dir.path().join("images").join(split);
        let labels = dir.path().join("labels").join(split);
        fs::create_dir_all(&images).unwrap();
        fs::create_dir_all(&labels).unwrap();
        for i in 0..3 {
            fs::write(images.join(format!("{i}.jpg")), b"not a jpeg").unwrap();
            fs::write(labels.join(format!("{i}.txt")), "0 0.5 0.5 0.2 0.2\n").unwrap();
        }
    }
    let yaml = dir.path().join("d.yaml");
    fs::write(
        &yaml,
        format!(
            "path: {}\ntrain: images/train\nval: images/val\nnames: [a]\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let index =
        yolo_burn::data::read_index(&yaml, None, yolo_burn::data::SplitName::Train).unwrap();
    assert!(index.images.is_empty());
    let config = yolo_burn::config::Config::default();
    let err = match yolo_burn::data::loader::Loader::new(
        &index,
        yolo_burn::data::loader::LoaderConfig::train(&config).unwrap(),
    ) {
        Ok(_) => panic!("an empty split is refused"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("every image it lists was skipped (3 unreadable image"),
        "{err}"
    );
    assert!(err.contains("data check"), "{err}");
}
