//! Muon's orthogonalised momentum update, the half of Ultralytics' MuSGD that plain SGD lacks.
//!
//! Ultralytics 8.4.190 trains with MuSGD whenever `optimizer=auto` sees more than 10,000 iterations: every conv
//! weight gets Muon's update (Nesterov momentum, then the matrix `[c_out, c_in·kh·kw]` pushed towards the
//! nearest semi-orthogonal matrix by five quintic Newton-Schulz steps) plus an SGD step; everything else gets
//! SGD alone. Ultralytics runs Newton-Schulz in bfloat16 for GPU throughput; we run it in f32, which is closer to
//! the exact iteration and, on this CPU, not slower (docs/benchmarks.md, the half-precision conv stack).
//!
//! Source: ultralytics/optim/muon.py (`zeropower_via_newtonschulz5`, `muon_update`, `MuSGD.step`).

use gemm::{gemm, Parallelism};

/// The quintic's coefficients, from muon.py.
const NS_COEFFS: (f32, f32, f32) = (3.4445, -4.7750, 2.0315);
const NS_STEPS: usize = 5;
const NS_EPS: f32 = 1e-7;
/// Below this many multiply-adds per product a parallel GEMM costs more than it saves.
const PARALLEL_MACS: usize = 1 << 20;

/// `dst = alpha·dst + beta·lhs·rhs` for row-major `lhs` (m×k) and `rhs` (k×n), `rhs` optionally read as the
/// transpose of a row-major n×k matrix.
#[allow(clippy::too_many_arguments)]
fn matmul(
    dst: &mut [f32],
    alpha: f32,
    beta: f32,
    lhs: &[f32],
    rhs: &[f32],
    rhs_transposed: bool,
    (m, n, k): (usize, usize, usize),
) {
    assert!(dst.len() == m * n && lhs.len() == m * k && rhs.len() == k * n);
    let (rhs_cs, rhs_rs) = if rhs_transposed {
        (k as isize, 1)
    } else {
        (1, n as isize)
    };
    let par = if m * n * k >= PARALLEL_MACS {
        Parallelism::Rayon(rayon::current_num_threads())
    } else {
        Parallelism::None
    };
    // SAFETY: the assert above gives every operand exactly the size its strides address.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            alpha != 0.0,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            rhs_cs,
            rhs_rs,
            alpha,
            beta,
            false,
            false,
            false,
            par,
        )
    }
}

fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; x.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = x[r * cols + c];
        }
    }
    t
}

/// `zeropower_via_newtonschulz5`: an approximate `U·Vᵀ` of the row-major `rows × cols` matrix `g = U·S·Vᵀ`
/// (singular values land in roughly 0.5..1.5, which is what Muon wants, not an exact orthogonalisation).
pub fn newton_schulz(g: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let norm = g.iter().map(|v| v * v).sum::<f32>().sqrt();
    let mut x: Vec<f32> = g.iter().map(|v| v / (norm + NS_EPS)).collect();
    // Work on the wide orientation so that X·Xᵀ is the small square.
    let tall = rows > cols;
    let (r, c) = if tall {
        x = transpose(&x, rows, cols);
        (cols, rows)
    } else {
        (rows, cols)
    };
    let (a, b, cc) = NS_COEFFS;
    let mut gram = vec![0.0; r * r];
    let mut poly = vec![0.0; r * r];
    let mut next = vec![0.0; r * c];
    for _ in 0..NS_STEPS {
        matmul(&mut gram, 0.0, 1.0, &x, &x, true, (r, r, c)); // A = X·Xᵀ
        poly.copy_from_slice(&gram);
        matmul(&mut poly, b, cc, &gram, &gram, false, (r, r, r)); // B = b·A + c·A·A
        next.copy_from_slice(&x);
        matmul(&mut next, a, 1.0, &poly, &x, false, (r, c, r)); // X = a·X + B·X
        std::mem::swap(&mut x, &mut next);
    }
    if tall {
        transpose(&x, r, c)
    } else {
        x
    }
}

/// `muon_update(grad, momentum, beta, nesterov=True)` for one parameter of shape `dims` (2-D or 4-D), flat
/// in row-major order. Updates `momentum` in place and returns the orthogonalised update, already scaled by
/// muon.py's `sqrt(max(1, dims[-2] / dims[-1]))` (which, for a conv weight, compares kh with kw).
pub fn muon_update(grad: &[f32], momentum: &mut [f32], beta: f32, dims: &[usize]) -> Vec<f32> {
    debug_assert_eq!(grad.len(), momentum.len());
    let rows = dims.first().copied().unwrap_or(1);
    let cols = grad.len() / rows.max(1);
    let mut update = Vec::with_capacity(grad.len());
    for (m, &g) in momentum.iter_mut().zip(grad) {
        *m = beta * *m + (1.0 - beta) * g;
        update.push(beta * *m + (1.0 - beta) * g);
    }
    let mut ortho = newton_schulz(&update, rows, cols);
    let (d2, d1) = match dims {
        [.., d2, d1] => (*d2 as f32, *d1 as f32),
        _ => (1.0, 1.0),
    };
    let scale = (d2 / d1).max(1.0).sqrt();
    if scale != 1.0 {
        ortho.iter_mut().for_each(|v| *v *= scale);
    }
    ortho
}

#[cfg(test)]
mod tests {
    use super::*;

    fn singular_values_2x2(m: &[f32]) -> (f32, f32) {
        // of a 2×2 matrix via the eigenvalues of MᵀM
        let (a, b, c, d) = (m[0], m[1], m[2], m[3]);
        let p = a * a + c * c;
        let q = a * b + c * d;
        let r = b * b + d * d;
        let mean = (p + r) / 2.0;
        let disc = (((p - r) / 2.0).powi(2) + q * q).sqrt();
        ((mean + disc).sqrt(), (mean - disc).max(0.0).sqrt())
    }

    #[test]
    fn newton_schulz_flattens_the_spectrum() {
        // singular values 10 and 0.5 (a 20× spread) come out within Muon's 0.5..1.5 band
        let g = [10.0, 0.0, 0.0, 0.5];
        let (s1, s2) = singular_values_2x2(&newton_schulz(&g, 2, 2));
        assert!(
            (0.5..1.5).contains(&s1) && (0.5..1.5).contains(&s2),
            "{s1} {s2}"
        );
        assert!(s1 / s2 < 2.0, "{s1} {s2}");
    }

    #[test]
    fn tall_and_wide_orientations_agree() {
        let g: Vec<f32> = (0..12).map(|i| ((i * 7 % 5) as f32 - 2.0) * 0.3).collect();
        let wide = newton_schulz(&g, 3, 4);
        let tall = transpose(&newton_schulz(&transpose(&g, 3, 4), 4, 3), 4, 3);
        for (a, b) in wide.iter().zip(&tall) {
            assert!((a - b).abs() < 1e-5, "{a} {b}");
        }
    }
}
