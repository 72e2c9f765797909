// C++ tests of the CPU model and the tiling: every rule of the model fails loudly and its fixed toy
// runs, the tiling respects UB / repeat / stride limits and covers every pixel exactly once, and
// both kernels match a direct reference on a small case split over uneven blocks.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dcn_tiling.h"

extern "C" {
int mxdcn_sim_selftest_count();
const char* mxdcn_sim_selftest_name(int toy);
const char* mxdcn_sim_selftest_expect(int toy);
int mxdcn_sim_selftest(int toy, int fixed, char* err, int errLen);
int mxdcn_sim_im2col(const float* x, const float* offset, const float* mask, float* columns, const uint64_t* shape,
                     uint32_t coreNum, uint32_t ubBytes, char* err, int errLen);
int mxdcn_sim_col2im(const float* x, const float* offset, const float* mask, const float* gradColumns, float* gradX,
                     float* gradOffset, float* gradMask, const uint64_t* shape, uint32_t coreNum, uint32_t ubBytes,
                     char* err, int errLen);
uint32_t mxdcn_sim_last_block_dim();
}

namespace {

int g_failures = 0;

void Expect(bool ok, const std::string& what) {
  if (!ok) {
    ++g_failures;
    std::printf("FAIL: %s\n", what.c_str());
  }
}

void TestModelRules() {
  // Every toy (sim/selftest_kernels.cpp): the broken variant stops with its rule's message, the
  // fixed variant runs.
  Expect(mxdcn_sim_selftest_count() >= 25, "toy count");
  for (int toy = 0; toy < mxdcn_sim_selftest_count(); ++toy) {
    const std::string name = mxdcn_sim_selftest_name(toy), expect = mxdcn_sim_selftest_expect(toy);
    char err[1024] = {0};
    const int broken = mxdcn_sim_selftest(toy, 0, err, sizeof(err));
    Expect(broken == 1 && std::strstr(err, expect.c_str()) != nullptr,
           "toy " + name + " fails with '" + expect + "', got: " + err);
    std::printf("  %-26s %s\n", name.c_str(), broken ? err : "ran cleanly (WRONG)");
    char err2[1024] = {0};
    const int fixed = mxdcn_sim_selftest(toy, 1, err2, sizeof(err2));
    Expect(fixed == 0, "toy " + name + " (fixed) runs cleanly, got: " + err2);
  }
}

void TestTilingSweep() {
  using namespace mxdcn;
  int tiled = 0, rejected = 0;
  const uint64_t channels[] = {64, 128, 192, 256, 1024, 1984};
  const uint64_t kernels[] = {1, 3, 5, 7};
  const uint64_t pixels[] = {1, 5, 47, 48, 49, 1000, 123457};
  const uint32_t cores[] = {1, 7, 40, 48};
  for (int kind = 0; kind < 2; ++kind)
    for (uint64_t c : channels)
      for (uint64_t k : kernels)
        for (uint64_t p : pixels)
          for (uint32_t cn : cores)
            for (int mode = 0; mode < 4; ++mode) {
              const bool mask = mode & 1, det = (mode & 2) != 0;
              DcnShape s{2, 33, 35, c, 17, 18, k, k, 2, 2, 1, 1, 1, 1, mask, det, 0, 3, p};
              TilingResult r = ComputeDcnTiling(KernelKind(kind), s, PlatformFacts{cn, kDefaultUbBytes});
              if (r.status != TilingStatus::kOk) { ++rejected; continue; }
              ++tiled;
              const DcnTilingData& d = r.data;
              const std::string tag = "c=" + std::to_string(c) + " k=" + std::to_string(k) + " p=" + std::to_string(p);
              Expect(d.ubBytes <= kDefaultUbBytes, "UB fits: " + tag);
              Expect(d.ubBytes == DcnUbBytes(KernelKind(kind), d), "ubBytes consistent: " + tag);
              Expect(d.subRows >= 1 && d.subRows <= kMaxRepeat, "repeat limit: " + tag);
              Expect(c / 8 <= kMaxRepeat && (35 - 1) * c / 8 <= kMaxBlockStride, "stride limits: " + tag);
              Expect(d.tilePixels >= 1 && d.blockDim >= 1 && d.blockDim <= cn, "tile/block counts: " + tag);
              Expect(d.planLen % 64 == 0 && d.planLen >= k * k * d.tileStride, "plan length: " + tag);
              Expect((d.bandRows > 0) == (d.deterministic != 0), "band iff deterministic: " + tag);
              // Coverage: the block ranges tile [0, p) contiguously, without gap or overlap.
              uint64_t next = 0;
              for (uint32_t b = 0; b < d.blockDim; ++b) {
                const uint64_t begin = uint64_t(b) * d.pixelsPerBlock + (b < d.pixelsRemainder ? b : d.pixelsRemainder);
                const uint64_t count = d.pixelsPerBlock + (b < d.pixelsRemainder ? 1 : 0);
                Expect(begin == next && count >= 1, "contiguous blocks: " + tag);
                next = begin + count;
              }
              Expect(next == p, "every pixel covered once: " + tag);
            }
  std::printf("  tiling sweep: %d tiled, %d rejected\n", tiled, rejected);
  Expect(tiled > 1000, "most of the sweep tiles");

  // Shapes that cannot be tiled are reported, not tiled wrongly.
  DcnShape hugeKernel{1, 200, 200, 64, 100, 100, 101, 101, 1, 1, 0, 0, 1, 1, true, false, 0, 0, 10};
  Expect(ComputeDcnTiling(KernelKind::kCol2im, hugeKernel, PlatformFacts{48, kDefaultUbBytes}).status ==
             TilingStatus::kTooManyTaps, "101x101 kernel is reported (taps)");
  DcnShape wide{1, 4, 4, 2048, 4, 4, 1, 1, 1, 1, 0, 0, 1, 1, true, false, 0, 0, 16};
  Expect(ComputeDcnTiling(KernelKind::kIm2col, wide, PlatformFacts{48, kDefaultUbBytes}).status ==
             TilingStatus::kChannelStride, "2048 channels are reported (repeat stride field)");
  DcnShape odd{1, 4, 4, 96, 4, 4, 1, 1, 1, 1, 0, 0, 1, 1, true, false, 0, 0, 16};
  Expect(ComputeDcnTiling(KernelKind::kIm2col, odd, PlatformFacts{48, kDefaultUbBytes}).status ==
             TilingStatus::kChannelsNotMultipleOf64, "96 channels are reported");
}

// im2col and col2im (atomic and deterministic) on a small case over 5 uneven blocks against a direct
// double-precision reference; offsets (N, 2K, Ho, Wo), masks (N, K, Ho, Wo).
void TestKernelsSmall() {
  const uint64_t n = 2, h = 5, w = 7, c = 128, kh = 3, kw = 3, sh = 2, sw = 1, ph = 1, pw = 2, dh = 1, dw = 2;
  const uint64_t ho = (h + 2 * ph - dh * (kh - 1) - 1) / sh + 1, wo = (w + 2 * pw - dw * (kw - 1) - 1) / sw + 1;
  const uint64_t taps = kh * kw, pixels = n * ho * wo, plane = ho * wo;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(n * h * w * c), offset(pixels * taps * 2), mask(pixels * taps), columns(pixels * taps * c, NAN);
  for (float& v : x) v = normal(rng);
  for (float& v : offset) v = 2.0f * normal(rng);
  for (float& v : mask) v = std::fabs(normal(rng));
  auto dyAt = [&](uint64_t p, uint64_t t) { return offset[((p / plane) * 2 * taps + 2 * t) * plane + p % plane]; };
  auto dxAt = [&](uint64_t p, uint64_t t) { return offset[((p / plane) * 2 * taps + 2 * t + 1) * plane + p % plane]; };
  auto maskAt = [&](uint64_t p, uint64_t t) -> float& { return mask[((p / plane) * taps + t) * plane + p % plane]; };
  uint64_t shape[19] = {n, h, w, c, ho, wo, kh, kw, sh, sw, ph, pw, dh, dw, 1, 0, 0, 0, pixels};
  char err[512] = {0};
  const int status = mxdcn_sim_im2col(x.data(), offset.data(), mask.data(), columns.data(), shape, 5,
                                      mxdcn::kDefaultUbBytes, err, sizeof(err));
  Expect(status == 0, std::string("im2col runs: ") + err);
  Expect(mxdcn_sim_last_block_dim() == 5, "five blocks");
  double worst = 0;
  for (uint64_t p = 0; p < pixels; ++p) {
    const uint64_t b = p / (ho * wo), oh = p / wo % ho, ow = p % wo;
    for (uint64_t t = 0; t < taps; ++t) {
      const double y = double(oh * sh) - ph + double(t / kw * dh) + dyAt(p, t);
      const double xx = double(ow * sw) - pw + double(t % kw * dw) + dxAt(p, t);
      for (uint64_t ch = 0; ch < c; ++ch) {
        double v = 0;
        if (y > -1 && y < h && xx > -1 && xx < w) {
          const double y0 = std::floor(y), x0 = std::floor(xx);
          for (int k = 0; k < 4; ++k) {
            const double r = y0 + k / 2, cc = x0 + k % 2;
            if (r < 0 || r >= h || cc < 0 || cc >= w) continue;
            const double wy = k / 2 ? y - y0 : 1 - (y - y0), wx = k % 2 ? xx - x0 : 1 - (xx - x0);
            v += wy * wx * x[((b * h + uint64_t(r)) * w + uint64_t(cc)) * c + ch];
          }
        }
        v *= maskAt(p, t);
        worst = std::fmax(worst, std::fabs(v - columns[(p * taps + t) * c + ch]));
      }
    }
  }
  Expect(worst < 1e-4, "im2col matches the reference, max error " + std::to_string(worst));
  std::printf("  im2col small case: max error %.3g over 5 blocks\n", worst);

  // col2im on the same case against the reference, atomic and deterministic (a 96 KiB UB in the latter
  // for bands of few rows).
  std::vector<float> gradColumns(pixels * taps * c);
  for (float& v : gradColumns) v = normal(rng);
  std::vector<double> wantX(x.size(), 0.0), wantOffset(offset.size(), 0.0), wantMask(mask.size(), 0.0);
  for (uint64_t p = 0; p < pixels; ++p) {
    const uint64_t b = p / (ho * wo), oh = p / wo % ho, ow = p % wo;
    for (uint64_t t = 0; t < taps; ++t) {
      const double y = double(oh * sh) - ph + double(t / kw * dh) + dyAt(p, t);
      const double xx = double(ow * sw) - pw + double(t % kw * dw) + dxAt(p, t);
      const double m = maskAt(p, t);
      if (!(y > -1 && y < h && xx > -1 && xx < w)) continue;
      const double y0 = std::floor(y), x0 = std::floor(xx), ly = y - y0, lx = xx - x0;
      double dotV = 0, dotY = 0, dotX = 0;
      for (int k = 0; k < 4; ++k) {
        const double r = y0 + k / 2, cc = x0 + k % 2;
        if (r < 0 || r >= h || cc < 0 || cc >= w) continue;
        const double wy = k / 2 ? ly : 1 - ly, wx = k % 2 ? lx : 1 - lx;
        const double dwy = k / 2 ? 1 : -1, dwx = k % 2 ? 1 : -1;
        for (uint64_t ch = 0; ch < c; ++ch) {
          const uint64_t at = ((b * h + uint64_t(r)) * w + uint64_t(cc)) * c + ch;
          const double g = gradColumns[(p * taps + t) * c + ch];
          wantX[at] += m * wy * wx * g;
          dotV += wy * wx * g * x[at];
          dotY += dwy * wx * g * x[at];
          dotX += wy * dwx * g * x[at];
        }
      }
      const uint64_t o = ((p / plane) * 2 * taps + 2 * t) * plane + p % plane;
      wantOffset[o] = m * dotY;
      wantOffset[o + plane] = m * dotX;
      wantMask[((p / plane) * taps + t) * plane + p % plane] = dotV;
    }
  }
  for (int det = 0; det < 2; ++det) {
    std::vector<float> gradX(x.size(), 0.0f), gradOffset(offset.size(), NAN), gradMask(mask.size(), NAN);
    shape[15] = uint64_t(det);
    const int status2 = mxdcn_sim_col2im(x.data(), offset.data(), mask.data(), gradColumns.data(), gradX.data(),
                                         gradOffset.data(), gradMask.data(), shape, 5, det ? 96 * 1024 : mxdcn::kDefaultUbBytes,
                                         err, sizeof(err));
    Expect(status2 == 0, std::string("col2im runs: ") + err);
    double worstGrad = 0;
    for (size_t i = 0; i < x.size(); ++i) worstGrad = std::fmax(worstGrad, std::fabs(gradX[i] - wantX[i]));
    for (size_t i = 0; i < offset.size(); ++i) worstGrad = std::fmax(worstGrad, std::fabs(gradOffset[i] - wantOffset[i]));
    for (size_t i = 0; i < mask.size(); ++i) worstGrad = std::fmax(worstGrad, std::fabs(gradMask[i] - wantMask[i]));
    Expect(worstGrad < 1e-3, "col2im matches the reference, max error " + std::to_string(worstGrad));
    std::printf("  col2im small case (%s): max error %.3g over 5 blocks\n", det ? "deterministic" : "atomic", worstGrad);
  }
}

}  // namespace

int main() {
  std::printf("model rules:\n");
  TestModelRules();
  std::printf("tiling:\n");
  TestTilingSweep();
  std::printf("kernel:\n");
  TestKernelsSmall();
  if (g_failures) {
    std::printf("%d check(s) FAILED\n", g_failures);
    return 1;
  }
  std::printf("all model tests passed\n");
  return 0;
}
