//! numpy 2.4.6's default float64 `np.argsort` on its three CPU paths (introsort, x86-simd-sort AVX2 and AVX-512),
//! emulated by `yolo_burn::data::loader::numpy_argsort`, against the orders numpy itself gave: every path is
//! checked whatever the host CPU. Cases come from scripts/numpy_argsort_reference.py
//! (tests/data/numpy_argsort.json), inputs regenerated here from their (kind, n, seed) recipe.
//!
//! `NUMPY_ARGSORT_CASES=<file>` points the tests at another case file, such as the script's `--images DIR`
//! case: the sizes of a dataset's images, whose order `rect_plan` must then also give on this host.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use yolo_burn::data::loader::numpy_argsort::{argsort, ArgsortKernel};
use yolo_burn::data::loader::rect_plan;

#[derive(Debug, Deserialize)]
struct Cases {
    numpy: String,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    kind: String,
    n: usize,
    seed: u64,
    /// `[w, h]` of images (kind "sizes"), sorted by h/w.
    sizes: Option<Vec<[u32; 2]>>,
    /// Explicit values (the adversarial kinds): the rank as f64, NaN where negative.
    ranks: Option<Vec<i64>>,
    /// The order numpy gave, by path name.
    expected: HashMap<String, Expected>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Expected {
    Full(Vec<usize>),
    Sha256 { sha256: String },
}

impl Expected {
    fn matches(&self, order: &[usize]) -> bool {
        match self {
            Expected::Full(want) => want == order,
            Expected::Sha256 { sha256 } => {
                let mut hasher = Sha256::new();
                for &i in order {
                    hasher.update((i as u64).to_le_bytes());
                }
                let got: String = hasher
                    .finalize()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                &got == sha256
            }
        }
    }
}

fn load_cases() -> Cases {
    let path = std::env::var_os("NUMPY_ARGSORT_CASES").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/numpy_argsort.json"),
        PathBuf::from,
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cases: Cases =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(cases.numpy, "2.4.6");
    cases
}

/// scripts/numpy_argsort_reference.py `splitmix64`.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// scripts/numpy_argsort_reference.py `COMMON_WH`.
const COMMON_WH: [(u32, u32); 16] = [
    (640, 480),
    (640, 480),
    (640, 480),
    (640, 427),
    (640, 427),
    (427, 640),
    (480, 640),
    (640, 640),
    (500, 375),
    (375, 500),
    (500, 333),
    (1280, 720),
    (1920, 1080),
    (640, 360),
    (612, 612),
    (640, 424),
];

/// scripts/numpy_argsort_reference.py `values`: the input array of a case.
fn values(case: &Case) -> Vec<f64> {
    if let Some(ranks) = &case.ranks {
        return ranks
            .iter()
            .map(|&r| if r < 0 { f64::NAN } else { r as f64 })
            .collect();
    }
    if let Some(sizes) = &case.sizes {
        return sizes.iter().map(|&[w, h]| h as f64 / w as f64).collect();
    }
    let mut rng = SplitMix64(case.seed);
    let n = case.n;
    let common = |r: u64| {
        let (w, h) = COMMON_WH[(r % COMMON_WH.len() as u64) as usize];
        h as f64 / w as f64
    };
    (0..n)
        .map(|i| {
            let r = rng.next();
            match case.kind.as_str() {
                "common" => common(r),
                "random" => (1 + r % 1000) as f64 / (1 + (r >> 32) % 1000) as f64,
                "two" => {
                    if r.is_multiple_of(4) {
                        1.0
                    } else {
                        0.75
                    }
                }
                "sorted" => (1 + i / 3) as f64 / 7.0,
                "reversed" => (1 + (n - 1 - i) / 3) as f64 / 7.0,
                "equal" => 0.75,
                "inf" => match r % 9 {
                    0 => f64::INFINITY,
                    1 => f64::NEG_INFINITY,
                    _ => common(r),
                },
                "nan" => match r % 11 {
                    0 => f64::NAN,
                    1 => f64::INFINITY,
                    2 => f64::NEG_INFINITY,
                    _ => common(r),
                },
                other => panic!("unknown case kind {other}"),
            }
        })
        .collect()
}

/// Checks every case on `kernel`; returns how many passed, panicking with the failures.
fn check(kernel: ArgsortKernel) -> usize {
    let cases = load_cases();
    let mut failed = Vec::new();
    for case in &cases.cases {
        let expected = case.expected.get(kernel.name()).unwrap_or_else(|| {
            panic!(
                "case {}/{} has no {} order",
                case.kind,
                case.n,
                kernel.name()
            )
        });
        let order = argsort(&values(case), kernel);
        if !expected.matches(&order) {
            failed.push(format!("{} n={} seed={}", case.kind, case.n, case.seed));
        }
    }
    let passed = cases.cases.len() - failed.len();
    eprintln!(
        "{}: {passed}/{} cases equal numpy's order",
        kernel.name(),
        cases.cases.len()
    );
    assert!(
        failed.is_empty(),
        "{} differs from numpy on {failed:?}",
        kernel.name()
    );
    passed
}

#[test]
fn introsort_matches_numpy() {
    assert!(check(ArgsortKernel::Introsort) > 0);
}

#[test]
fn avx2_matches_numpy() {
    assert!(check(ArgsortKernel::Avx2) > 0);
}

#[test]
fn avx512_matches_numpy() {
    assert!(check(ArgsortKernel::Avx512) > 0);
}

/// `rect_plan` orders image sizes as numpy does on this host.
#[test]
fn rect_plan_orders_sizes_like_numpy_on_this_host() {
    let kernel = ArgsortKernel::detect();
    for case in load_cases().cases.iter() {
        let sizes: Vec<[u32; 2]> = match &case.sizes {
            Some(sizes) => sizes.clone(),
            // Recipe cases of finite ratios h/w of small integers, as sizes.
            None if case.kind == "common" => {
                let mut rng = SplitMix64(case.seed);
                (0..case.n)
                    .map(|_| {
                        let (w, h) = COMMON_WH[(rng.next() % COMMON_WH.len() as u64) as usize];
                        [w, h]
                    })
                    .collect()
            }
            None => continue,
        };
        let plan = rect_plan(&sizes, 32, 640);
        assert!(
            case.expected[kernel.name()].matches(&plan.order),
            "{} n={}: rect_plan's order differs from numpy's {} order",
            case.kind,
            case.n,
            kernel.name()
        );
    }
}
