/**
 * Float64 twin of kernels/box_clamp.wgsl as FT-L's norm constraint defines it (kmeng01/rome
 * `ft_main.py`: w = clamp(w, w0 − eps, w0 + eps)): each element compared with its float64 bounds
 * w0 ∓ eps; a clamped element takes the bound (stored as float32), others (NaN included) stay.
 */
export function refBoxClamp(x: Float32Array, center: Float32Array, eps: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const lo = center[i] - eps, hi = center[i] + eps;
    out[i] = x[i] < lo ? lo : x[i] > hi ? hi : x[i];
  }
  return out;
}
