//! Compound scaling: how Ultralytics turns one yaml into n/s/m/l/x models.
//!
//! The rows are copied from ultralytics/cfg/models/v8/yolov8.yaml and ultralytics/cfg/models/11/yolo11.yaml
//! (ultralytics 8.4.190); the rounding rules are `parse_model`'s in ultralytics/nn/tasks.py.

use crate::config::{Arch, ScaleName};

/// One `scales:` row of an Ultralytics model yaml.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    /// Multiplies the repeat count of C2f/C3k2/C2PSA layers.
    pub depth: f64,
    /// Multiplies every layer's output channels.
    pub width: f64,
    /// Caps a layer's nominal channels before `width` applies.
    pub max_channels: usize,
    /// YOLO11 m/l/x swap C3k2's Bottlenecks for C3k blocks (`parse_model`: `if scale in {"m","l","x"}`).
    pub c3k: bool,
}

/// `[depth, width, max_channels]` of yolov8.yaml, in n, s, m, l, x order.
pub const YOLOV8_SCALES: [Scale; 5] = [
    Scale {
        depth: 0.33,
        width: 0.25,
        max_channels: 1024,
        c3k: false,
    },
    Scale {
        depth: 0.33,
        width: 0.50,
        max_channels: 1024,
        c3k: false,
    },
    Scale {
        depth: 0.67,
        width: 0.75,
        max_channels: 768,
        c3k: false,
    },
    Scale {
        depth: 1.00,
        width: 1.00,
        max_channels: 512,
        c3k: false,
    },
    Scale {
        depth: 1.00,
        width: 1.25,
        max_channels: 512,
        c3k: false,
    },
];

/// `[depth, width, max_channels]` of yolo11.yaml, in n, s, m, l, x order.
pub const YOLO11_SCALES: [Scale; 5] = [
    Scale {
        depth: 0.50,
        width: 0.25,
        max_channels: 1024,
        c3k: false,
    },
    Scale {
        depth: 0.50,
        width: 0.50,
        max_channels: 1024,
        c3k: false,
    },
    Scale {
        depth: 0.50,
        width: 1.00,
        max_channels: 512,
        c3k: true,
    },
    Scale {
        depth: 1.00,
        width: 1.00,
        max_channels: 512,
        c3k: true,
    },
    Scale {
        depth: 1.00,
        width: 1.50,
        max_channels: 512,
        c3k: true,
    },
];

impl Scale {
    /// The row for an architecture and scale letter.
    pub fn of(arch: Arch, name: ScaleName) -> Scale {
        let index = match name {
            ScaleName::N => 0,
            ScaleName::S => 1,
            ScaleName::M => 2,
            ScaleName::L => 3,
            ScaleName::X => 4,
        };
        match arch {
            Arch::Yolov8 => YOLOV8_SCALES[index],
            Arch::Yolo11 => YOLO11_SCALES[index],
        }
    }

    /// A layer's real output channels: `make_divisible(min(c, max_channels) * width, 8)`.
    pub fn channels(&self, nominal: usize) -> usize {
        let scaled = nominal.min(self.max_channels) as f64 * self.width;
        ((scaled / 8.0).ceil() as usize) * 8
    }

    /// A layer's real repeat count: `max(round(n * depth), 1) if n > 1 else n`, with Python's round-half-even.
    pub fn repeats(&self, nominal: usize) -> usize {
        if nominal > 1 {
            ((nominal as f64 * self.depth).round_ties_even() as usize).max(1)
        } else {
            nominal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_match_ultralytics_make_divisible() {
        let n = Scale::of(Arch::Yolov8, ScaleName::N);
        assert_eq!(n.channels(64), 16);
        assert_eq!(n.channels(1024), 256);
        let m = Scale::of(Arch::Yolov8, ScaleName::M);
        assert_eq!(m.channels(1024), 576);
        let x = Scale::of(Arch::Yolo11, ScaleName::X);
        assert_eq!(x.channels(64), 96);
        assert_eq!(x.channels(1024), 768);
    }

    #[test]
    fn repeats_round_like_python() {
        let n = Scale::of(Arch::Yolov8, ScaleName::N);
        assert_eq!(n.repeats(3), 1);
        assert_eq!(n.repeats(6), 2);
        assert_eq!(n.repeats(1), 1);
        let m = Scale::of(Arch::Yolov8, ScaleName::M);
        assert_eq!(m.repeats(3), 2);
        assert_eq!(m.repeats(6), 4);
    }
}
