//! Helpers of the training tests: a tiny generated YOLO dataset and a matching config.

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use yolo_burn::config::Config;

/// Writes `n_train` + `n_val` 64×64 images with one or two filled rectangles (class 0 red, class 1 green) and
/// their labels under `root`; returns the descriptor path.
pub fn tiny_dataset(root: &Path, n_train: usize, n_val: usize) -> PathBuf {
    for (split, n, offset) in [("train", n_train, 0), ("val", n_val, 1000)] {
        let images = root.join("images").join(split);
        let labels = root.join("labels").join(split);
        std::fs::create_dir_all(&images).unwrap();
        std::fs::create_dir_all(&labels).unwrap();
        for i in 0..n {
            let k = i + offset;
            let mut img = RgbImage::from_pixel(64, 64, Rgb([40, 40, 40]));
            let mut lines = String::new();
            for j in 0..(1 + k % 2) {
                let class = (k + j) % 2;
                let (x0, y0) = ((k * 7 + j * 29) % 36, (k * 11 + j * 23) % 36);
                let (w, h) = (12 + (k * 3) % 14, 12 + (k * 5) % 14);
                let colour = if class == 0 {
                    Rgb([220, 40, 40])
                } else {
                    Rgb([40, 220, 40])
                };
                for y in y0..(y0 + h).min(64) {
                    for x in x0..(x0 + w).min(64) {
                        img.put_pixel(x as u32, y as u32, colour);
                    }
                }
                let (w, h) = ((x0 + w).min(64) - x0, (y0 + h).min(64) - y0);
                lines.push_str(&format!(
                    "{class} {} {} {} {}\n",
                    (x0 as f32 + w as f32 / 2.0) / 64.0,
                    (y0 as f32 + h as f32 / 2.0) / 64.0,
                    w as f32 / 64.0,
                    h as f32 / 64.0
                ));
            }
            img.save(images.join(format!("{i:03}.png"))).unwrap();
            std::fs::write(labels.join(format!("{i:03}.txt")), lines).unwrap();
        }
    }
    let yaml = root.join("tiny.yaml");
    std::fs::write(
        &yaml,
        format!(
            "path: {}\ntrain: images/train\nval: images/val\nnames: [red, green]\n",
            root.display()
        ),
    )
    .unwrap();
    yaml
}

/// yolov8n, imgsz 64, batch 4, nbs 8 (accumulate 2), one warmup epoch, runs under `project`.
pub fn tiny_config(dataset: &Path, project: &Path, epochs: usize) -> Config {
    let text = format!(
        "[data]\ndataset = \"{}\"\n[train]\nepochs = {epochs}\nbatch = 4\nimgsz = 64\nnbs = 8\nworkers = 1\n\
         warmup_epochs = 1.0\nproject = \"{}\"\nname = \"run\"\n",
        dataset.display(),
        project.display()
    );
    Config::from_toml_str(&text, "tiny.toml", &[]).unwrap()
}
