//! Fused CPU kernels for what candle runs as separate single-threaded passes: the bias add after a
//! GEMM, and the bias add + exact GELU of the MLPs. On other devices (or other layouts and dtypes)
//! the plain candle ops run instead, with the same result.

use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Rows handed to one rayon task: large enough to amortise scheduling, small enough to balance two cores.
const ROWS_PER_TASK: usize = 16;

/// `y + bias`, then optionally exact-erf GELU, over the last dimension of `y`.
struct BiasAct {
    gelu: bool,
}

impl CustomOp2 for BiasAct {
    fn name(&self) -> &'static str {
        if self.gelu { "bias-gelu" } else { "bias-add" }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(y), CpuStorage::F32(b)) = (s1, s2) else {
            candle_core::bail!("{}: only f32 is fused", self.name());
        };
        let (Some((y0, y1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
            candle_core::bail!("{}: inputs must be contiguous", self.name());
        };
        let (y, bias) = (&y[y0..y1], &b[b0..b1]);
        let width = bias.len();
        let mut out = vec![0f32; y.len()];
        out.par_chunks_mut(width * ROWS_PER_TASK).zip(y.par_chunks(width * ROWS_PER_TASK)).for_each(|(dst, src)| {
            for (dst_row, src_row) in dst.chunks_mut(width).zip(src.chunks(width)) {
                for ((d, &s), &b) in dst_row.iter_mut().zip(src_row).zip(bias) {
                    *d = s + b;
                }
                if self.gelu {
                    gelu_erf_in_place(dst_row);
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

fn fusable(y: &Tensor, bias: &Tensor) -> bool {
    matches!(y.device(), Device::Cpu)
        && y.dtype() == DType::F32
        && bias.dtype() == DType::F32
        && y.is_contiguous()
        && bias.is_contiguous()
        && bias.rank() == 1
        && y.dims().last() == Some(&bias.dim(0).unwrap_or(0))
}

/// `y + bias` broadcast over rows.
pub fn bias_add(y: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
    if fusable(y, bias) { y.apply_op2_no_bwd(bias, &BiasAct { gelu: false }) } else { y.broadcast_add(bias) }
}

/// `gelu(y + bias)` with the exact (erf) GELU of `nn.GELU()`.
pub fn bias_gelu(y: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
    if fusable(y, bias) { y.apply_op2_no_bwd(bias, &BiasAct { gelu: true }) } else { y.broadcast_add(bias)?.gelu_erf() }
}

/// `x * Φ(x)` in place. erf uses Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7), the
/// formula PyTorch's vectorised CPU `erf` uses too, written so the compiler can vectorise it.
fn gelu_erf_in_place(xs: &mut [f32]) {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_72, 1.421_413_8, -1.453_152_1, 1.061_405_4];
    for x in xs.iter_mut() {
        let v = *x;
        let z = (v * std::f32::consts::FRAC_1_SQRT_2).abs();
        let t = 1.0 / (1.0 + P * z);
        let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
        let erf_abs = 1.0 - poly * exp_neg(z * z);
        let erf = erf_abs.copysign(v);
        *x = 0.5 * v * (1.0 + erf);
    }
}

/// `exp(-a)` for `a ≥ 0`, branch-free (Cody–Waite reduction, degree-6 polynomial, ≤ 2 ulp);
/// underflows to 0 beyond 87.
#[inline(always)]
fn exp_neg(a: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = (-a).max(-87.0);
    // Round to nearest through the f32 mantissa (no libm call, so the loop vectorises).
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    let v = p * scale;
    if a > 87.0 { 0.0 } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erf_f64(x: f64) -> f64 {
        // Series for reference values (|x| ≤ 6 converges quickly enough in f64 for a test).
        let mut sum = 0.0f64;
        let mut term = x;
        let mut n = 0.0f64;
        while term.abs() > 1e-17 * sum.abs().max(1e-300) && n < 200.0 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -x * x / n;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn exp_neg_is_accurate() {
        for i in 0..2000 {
            let a = i as f32 * 0.05;
            let want = (-(a as f64)).exp();
            let got = exp_neg(a) as f64;
            assert!((got - want).abs() <= 3e-7 * want + 1e-37, "exp(-{a}) = {got}, want {want}");
        }
        assert_eq!(exp_neg(100.0), 0.0);
    }

    #[test]
    fn gelu_matches_exact_erf_gelu() {
        let mut xs: Vec<f32> = (-600..=600).map(|i| i as f32 * 0.01).collect();
        let want: Vec<f64> =
            xs.iter().map(|&x| 0.5 * x as f64 * (1.0 + erf_f64(x as f64 / std::f64::consts::SQRT_2))).collect();
        gelu_erf_in_place(&mut xs);
        for (g, w) in xs.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{g} vs {w}");
        }
    }

    #[test]
    fn fused_ops_equal_candle_ops() {
        let y = Tensor::randn(0f32, 2.0, (37, 50), &Device::Cpu).unwrap();
        let b = Tensor::randn(0f32, 1.0, 50, &Device::Cpu).unwrap();
        let fused = bias_gelu(&y, &b).unwrap();
        let plain = y.broadcast_add(&b).unwrap().gelu_erf().unwrap();
        let d = (fused - plain).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-6, "{d}");
        let added = bias_add(&y, &b).unwrap();
        let plain = y.broadcast_add(&b).unwrap();
        let d = (added - plain).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(d, 0.0);
    }
}
