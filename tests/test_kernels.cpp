// Every fast kernel against its plain twin, on every instruction set this CPU runs, across sizes
// and tail lengths; then the fast model against the plain model and the fixtures.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <thread>

#include <gemma3/checkpoint.hpp>
#include <gemma3/kernels/fast.hpp>
#include <gemma3/synth.hpp>
#include <gemma3/text/functions.hpp>
#include <gemma3/text/model.hpp>
#include <gemma3/vision/layer_norm.hpp>

#include "test_helpers.hpp"

using namespace gemma3;

namespace {

// Calls f(Arch{}, name) for every instruction set the kernels were built for and this CPU supports.
template <typename F>
void for_each_isa(F&& f) {
#if GEMMA3_KERNEL_DISPATCH
  const unsigned best = xsimd::available_architectures().best;
  auto run = [&]<class Arch>(Arch) {
    if (Arch::version() <= best) f(Arch{}, Arch::name());
  };
  [&]<class... Archs>(xsimd::arch_list<Archs...>) {
    (run(Archs{}), ...);
  }(kernels::dispatch_archs{});
#else
  f(xsimd::default_arch{}, xsimd::default_arch::name());
#endif
}

struct RandomWeight {
  std::vector<std::byte> bytes;
  TensorView view;
  RandomWeight(int64_t rows, int64_t cols, DType dtype, uint64_t seed) {
    bytes = synthesize_tensor(seed, "w", {rows, cols}, Init::Linear, dtype);
    view = TensorView{.name = "w", .dtype = dtype, .shape = {rows, cols}, .data = bytes.data()};
  }
};

Mat<float> random_matrix(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  Mat<float> m(rows, cols);
  for (auto& v : m.reshaped()) v = normal(rng);
  return m;
}

// A copy of w's bytes that starts `offset` bytes past a cache line, as checkpoint tensors do.
struct WeightAt {
  std::vector<std::byte> buffer;
  TensorView view;
  WeightAt(const RandomWeight& w, int offset) : buffer(w.bytes.size() + 128), view(w.view) {
    const auto base = reinterpret_cast<uintptr_t>(buffer.data());
    std::byte* data = buffer.data() + (64 - base % 64) % 64 + offset;
    std::memcpy(data, w.bytes.data(), w.bytes.size());
    view.data = data;
  }
};

// y = W·x for one token on the GEMV kernel of `arch` that takes w's dtype.
template <class Arch>
Mat<float> gemv_kernel(Arch arch, const TensorView& w, const Mat<float>& x) {
  const TensorView* ws[] = {&w};
  const fast::GemvInput input(ws, x.data(), w.cols());
  Mat<float> y(1, w.rows());
  if (w.dtype == DType::BF16)
    kernels::simd::GemvBf16{}(arch, reinterpret_cast<const uint16_t*>(w.data), w.rows(), w.cols(),
                              input.get(), y.data());
  else
    kernels::simd::GemvF32{}(arch, reinterpret_cast<const float*>(w.data), w.rows(), w.cols(),
                             input.get(), y.data());
  return y;
}

}  // namespace

TEST_CASE("GEMV kernels equal their plain twin on every ISA, all tail lengths", "[kernels]") {
  // Tolerance: relative 1e-5 of sum |w·x| (float reassociation of up to 2560 products).
  for (const DType dtype : {DType::BF16, DType::F32})
    for (const int64_t in : {1, 2, 7, 8, 31, 255, 256, 2560})
      for (const int64_t rows : {1, 3, 4, 7, 66}) {
        const RandomWeight w(rows, in, dtype, uint64_t(in * 131 + rows));
        const Mat<float> x = random_matrix(1, in, uint64_t(in));
        const Mat<float> expected = plain::linear<float>(x, w.view);
        const double bound =
            1e-5 * (x.cwiseAbs() * w.view.as<float>().cwiseAbs().transpose()).maxCoeff() + 1e-7;
        // The weights at every offset from a cache line, in bytes (the kernels read each row from
        // the 64-byte boundary before it, x from a copy for that offset), odd ones included.
        for (const int offset : {0, 1, 2, 4, 10, 62}) {
          const WeightAt at(w, offset);
          for_each_isa([&](auto arch, const char* isa) {
            INFO(dtype_name(dtype) << " rows " << rows << " in " << in << " " << isa << ", at byte "
                                   << offset << " of a cache line");
            CHECK(test::max_abs_diff(gemv_kernel(arch, at.view, x), expected) <= bound);
          });
        }
      }
}

TEST_CASE("GEMV rows read no products of their neighbours' weights", "[kernels]") {
  // A row's first and last vector share cache lines with the rows beside it; those lanes must be
  // dropped, not multiplied by zero (inf · 0 is NaN).
  for (const DType dtype : {DType::BF16, DType::F32}) {
    const int64_t in = 40;
    RandomWeight w(3, in, dtype, 7);
    const std::size_t bytes = dtype_size(dtype);
    for (const int64_t r : {int64_t(0), int64_t(2)})
      for (int64_t i = 0; i < in; ++i) {  // rows 0 and 2 all infinite, row 1 finite
        const float inf = std::numeric_limits<float>::infinity();
        const uint16_t inf_bf16 = 0x7f80;
        std::memcpy(w.bytes.data() + std::size_t(r * in + i) * bytes,
                    dtype == DType::BF16 ? static_cast<const void*>(&inf_bf16) : &inf, bytes);
      }
    const Mat<float> x = random_matrix(1, in, 3);
    const Mat<float> expected = plain::linear<float>(x, w.view);
    const WeightAt at(w, 6);
    for_each_isa([&](auto arch, const char* isa) {
      INFO(dtype_name(dtype) << " " << isa);
      const Mat<float> y = gemv_kernel(arch, at.view, x);
      CHECK(std::isfinite(y(0, 1)));
      CHECK(std::abs(y(0, 1) - expected(0, 1)) <= 1e-4 * (1 + std::abs(expected(0, 1))));
    });
  }
}

TEST_CASE("GEMM kernel equals its plain twin on every ISA, all tile tails", "[kernels]") {
  for (const DType dtype : {DType::BF16, DType::F32})
    for (const int64_t tokens : {1, 5, 6, 7, 13, 64, 100})
      for (const auto& shape : {std::pair<int64_t, int64_t>{1, 1},
                                {7, 255},
                                {33, 256},
                                {64, 300},
                                {70, 513},
                                {260, 1100}}) {
        const int64_t out = shape.first,
                      in = shape.second;  // (clang < 16 cannot capture structured bindings)
        const RandomWeight w(out, in, dtype, uint64_t(out * 7 + in));
        const Mat<float> x = random_matrix(tokens, in, uint64_t(tokens));
        const Mat<float> expected = plain::linear<float>(x, w.view);
        const double bound =
            1e-5 * (x.cwiseAbs() * w.view.as<float>().cwiseAbs().transpose()).maxCoeff() + 1e-7;
        for_each_isa([&](auto arch, const char* isa) {
          INFO(dtype_name(dtype) << " tokens " << tokens << " out " << out << " in " << in << " "
                                 << isa);
          // X packed in token panels, W in blocks of RB rows, as fast::linear does.
          const kernels::simd::GemmLayout layout = kernels::simd::GemmTokenLayout{}(arch);
          const int64_t t_pad = (tokens + layout.lanes - 1) / layout.lanes * layout.lanes;
          std::vector<float> xp(std::size_t(t_pad * in));
          for (int64_t p = 0; p * layout.panel < t_pad; ++p)
            fast::detail::pack_token_panel(x.data(), tokens, in, layout, p, xp.data());
          constexpr int64_t RB = kernels::simd::Gemm<float>::RB;
          std::vector<float> partial(std::size_t(RB * t_pad));
          const auto product = [&](float* y, bool packed) {
            for (int64_t r0 = 0; r0 < out; r0 += RB) {
              const int64_t n = std::min(RB, out - r0);
              if (dtype == DType::BF16)
                kernels::simd::Gemm<uint16_t>{}(
                    arch, reinterpret_cast<const uint16_t*>(w.view.data) + r0 * in, n, in,
                    xp.data(), tokens, t_pad, partial.data(), {y, out, r0, packed});
              else
                kernels::simd::Gemm<float>{}(
                    arch, reinterpret_cast<const float*>(w.view.data) + r0 * in, n, in, xp.data(),
                    tokens, t_pad, partial.data(), {y, out, r0, packed});
            }
          };
          Mat<float> y = Mat<float>::Constant(tokens, out, std::nanf(""));
          product(y.data(), false);
          CHECK(test::max_abs_diff(y, expected) <= bound);  // every element written (NaN before)
          // Y packed like X, with `out` for K (how the MLP's gate/up feed its down projection):
          // the same values, and the padding tokens written as zeros.
          std::vector<float> yp(std::size_t(t_pad * out), std::nanf(""));
          product(yp.data(), true);
          Mat<float> unpacked(tokens, out);
          bool padding_zero = true;
          for (int64_t t = 0; t < t_pad; ++t) {
            const int64_t t0 = t / layout.panel * layout.panel,
                          width = std::min(layout.panel, t_pad - t0);
            for (int64_t r = 0; r < out; ++r) {
              const float v = yp[std::size_t(t0 * out + r * width + (t - t0))];
              if (t < tokens)
                unpacked(t, r) = v;
              else
                padding_zero = padding_zero && v == 0.f;
            }
          }
          CHECK(test::max_abs_diff(unpacked, expected) <= bound);
          CHECK(padding_zero);
        });
        // And the public fast::linear (dispatch, threads, GEMV/GEMM switch).
        INFO("fast::linear " << dtype_name(dtype) << " tokens " << tokens << " out " << out
                             << " in " << in);
        CHECK(test::max_abs_diff(fast::linear(x, w.view), expected) <= bound);
        // Weights of different heights that read the same x at once (q/k/v), as the decoder
        // calls them: one packing of x, one parallel region over the rows of both.
        const RandomWeight w2(out + 5, in, dtype, uint64_t(out * 11 + in));
        const auto ys = fast::linear(x, std::array{&w.view, &w2.view});
        CHECK(test::max_abs_diff(ys[0], expected) <= bound);
        const double bound2 =
            1e-5 * (x.cwiseAbs() * w2.view.as<float>().cwiseAbs().transpose()).maxCoeff() + 1e-7;
        CHECK(test::max_abs_diff(ys[1], plain::linear<float>(x, w2.view)) <= bound2);
      }
}

TEST_CASE("fast::linear names a weight whose width does not match its input", "[kernels]") {
  const RandomWeight w(4, 9, DType::BF16, 1);
  const Mat<float> x = random_matrix(5, 8, 2);
  CHECK_THROWS_WITH(fast::linear(x, w.view), Catch::Contains("w") && Catch::Contains("9 columns"));
}

TEST_CASE("bf16-input products equal the plain path on rounded inputs (vdpbf16ps and f32 kernels)",
          "[kernels][bf16]") {
  INFO("vdpbf16ps on this CPU: " << fast::bf16_dot_available());
  for (const int64_t tokens : {1, 4, 5, 16, 17, 64, 65, 100})
    for (const auto& shape : std::vector<std::pair<int64_t, int64_t>>{
             {1, 2}, {7, 256}, {33, 258}, {97, 512}, {200, 1100}, {70, 513}}) {
      const int64_t out = shape.first, in = shape.second;
      INFO("tokens " << tokens << " out " << out << " in " << in);
      const RandomWeight w(out, in, DType::BF16, uint64_t(out * 5 + in));
      const Mat<float> x = random_matrix(tokens, in, uint64_t(tokens + 1));
      const Mat<float> xr = fast::rounded_to_bf16(x);
      const Mat<float> expected = plain::linear<float>(xr, w.view);
      const double bound =
          1e-5 * (xr.cwiseAbs() * w.view.as<float>().cwiseAbs().transpose()).maxCoeff() + 1e-7;
      const Mat<float> y = fast::linear(x, w.view, fast::MatmulInputs::Bf16);
      CHECK(test::max_abs_diff(y, expected) <= bound);
      // The inputs really are rounded: the f32-input product differs.
      CHECK(test::max_abs_diff(y, fast::linear(x, w.view)) > bound);
      // Both kernels a bf16-input GEMM can run on: the f32 GEMM fed rounded inputs (CPUs without
      // AVX512-BF16) and vdpbf16ps (with it, `in` even).
      const TensorView* ws[] = {&w.view};
      Mat<float> y_f32(tokens, out);
      float* y_f32s[] = {y_f32.data()};
      fast::detail::gemm(fast::detail::F32Gemm<uint16_t>{}, ws, xr.data(), tokens, y_f32s);
      CHECK(test::max_abs_diff(y_f32, expected) <= bound);
      if (fast::bf16_dot_available() && in % 2 == 0) {
        Mat<float> y_dot(tokens, out), one(tokens, out);
        float* y_dots[] = {y_dot.data()};
        float* ones[] = {one.data()};
        fast::detail::gemm(fast::detail::Bf16DotGemm{}, ws, x.data(), tokens, y_dots);
        CHECK(test::max_abs_diff(y_dot, expected) <= bound);
        const int threads = omp_get_max_threads();
        omp_set_num_threads(1);
        fast::detail::gemm(fast::detail::Bf16DotGemm{}, ws, x.data(), tokens, ones);
        omp_set_num_threads(threads);
        CHECK(test::max_abs_diff(one, y_dot) == 0.0);
      }
      // Several weights at once (q/k/v, gate/up), as the decoder calls them.
      const RandomWeight w2(out, in, DType::BF16, uint64_t(out * 3 + in));
      const auto ys = fast::linear(x, std::array{&w.view, &w2.view}, fast::MatmulInputs::Bf16);
      CHECK(test::max_abs_diff(ys[0], expected) <= bound);
      CHECK(test::max_abs_diff(ys[1], plain::linear<float>(xr, w2.view)) <= bound);
    }
}

TEST_CASE("GeGLU kernel and its threaded pass equal gelu_tanh(gate) * up on every ISA",
          "[kernels]") {
  for (const auto& shape : std::vector<std::pair<int64_t, int64_t>>{
           {1, 1}, {1, 7}, {1, 17}, {3, 6912}, {5, 16384}, {2, 16385}}) {
    const int64_t rows = shape.first, cols = shape.second;  // (clang < 16: no captured bindings)
    INFO(rows << " x " << cols);
    Mat<float> gate = 4.f * random_matrix(rows, cols, 5), up = random_matrix(rows, cols, 6);
    gate(0, 0) = 30.f, gate(rows - 1, cols - 1) = -30.f;  // tanh saturated both ways
    const Mat<float> expected = (plain::gelu_tanh<float>(gate).array() * up.array()).matrix();
    const double bound = 1e-6 * expected.cwiseAbs().maxCoeff();
    for_each_isa([&](auto arch, const char* isa) {
      INFO(isa);
      Mat<float> act = Mat<float>::Constant(rows, cols, std::nanf(""));
      kernels::simd::GeluTanhMul{}(arch, gate.data(), up.data(), act.data(), gate.size());
      CHECK(test::max_abs_diff(act, expected) <= bound);
    });
    const Mat<float> act = fast::gelu_tanh_mul(gate, up);
    REQUIRE(act.rows() == rows);
    REQUIRE(act.cols() == cols);
    CHECK(test::max_abs_diff(act, expected) <= bound);
  }
}

TEST_CASE("fast::mlp equals down(gelu_tanh(gate·x) ⊙ up·x) on the plain path", "[kernels]") {
  for (const DType dtype : {DType::BF16, DType::F32})
    for (const int64_t tokens : {1, 3, 4, 17, 64, 100})
      for (const auto& shape : {std::pair<int64_t, int64_t>{8, 24}, {33, 70}, {64, 200}}) {
        const int64_t hidden = shape.first, intermediate = shape.second;
        INFO(dtype_name(dtype) << " tokens " << tokens << " hidden " << hidden << " intermediate "
                               << intermediate);
        const RandomWeight gate(intermediate, hidden, dtype, 1), up(intermediate, hidden, dtype, 2),
            down(hidden, intermediate, dtype, 3);
        const Mat<float> x = random_matrix(tokens, hidden, uint64_t(tokens));
        const Mat<float> act =
            (plain::gelu_tanh<float>(plain::linear<float>(x, gate.view)).array() *
             plain::linear<float>(x, up.view).array())
                .matrix();
        const Mat<float> expected = plain::linear<float>(act, down.view);
        const double bound =
            1e-5 * (act.cwiseAbs() * down.view.as<float>().cwiseAbs().transpose()).maxCoeff();
        const Mat<float> y = fast::mlp(x, gate.view, up.view, down.view);
        REQUIRE(y.rows() == tokens);
        REQUIRE(y.cols() == hidden);
        CHECK(test::max_abs_diff(y, expected) <= bound);
        // A strided view of a bigger matrix (the decoder passes blocks of its activations).
        Mat<float> wide = Mat<float>::Zero(tokens, hidden + 3);
        wide.leftCols(hidden) = x;
        CHECK(test::max_abs_diff(fast::mlp(wide.leftCols(hidden), gate.view, up.view, down.view),
                                 expected) <= bound);
      }
  // Mismatched shapes name the weight.
  const RandomWeight gate(16, 8, DType::BF16, 1), up(15, 8, DType::BF16, 2),
      down(8, 16, DType::BF16, 3), narrow(8, 12, DType::BF16, 4);
  const Mat<float> x = random_matrix(8, 8, 1);
  CHECK_THROWS_WITH(fast::mlp(x, gate.view, up.view, down.view),
                    Catch::Contains("has 15 rows but"));
  CHECK_THROWS_WITH(fast::mlp(x, gate.view, gate.view, narrow.view),
                    Catch::Contains("has 12 columns but the activations have 16"));
  CHECK_THROWS_WITH(fast::mlp(random_matrix(8, 9, 1), gate.view, gate.view, down.view),
                    Catch::Contains("has 8 columns but the input has 9"));
  // The same on the one-token (GEMV) path.
  CHECK_THROWS_WITH(fast::mlp(random_matrix(1, 8, 1), gate.view, up.view, down.view),
                    Catch::Contains("has 15 rows but"));
}

TEST_CASE("online-softmax attention equals softmax(q·K)·V on every ISA", "[kernels]") {
  for (const int64_t nq : {1, 2, 4, 7})  // query heads sharing the keys (a GQA group)
    for (const int64_t d : {1, 16, 33, 256})
      for (const int64_t keys : {1, 5, 300}) {
        const Mat<float> q = random_matrix(nq, d, 1), k = random_matrix(keys, d, 2),
                         v = random_matrix(keys, d, 3);
        const float scale = 1.f / std::sqrt(float(d));
        for (const float cap : {0.f, 5.f}) {
          Mat<float> s = q * k.transpose() * scale;
          if (cap > 0) plain::soft_cap<float>(s, cap);
          plain::softmax_rows<float>(s);
          const Mat<float> expected = s * v;
          // Split the keys into two segments, as a wrapped ring buffer does.
          const int64_t split = keys / 3;
          const kernels::simd::KeySegment segs[2] = {
              {k.data(), v.data(), split, d},
              {k.data() + split * d, v.data() + split * d, keys - split, d}};
          for_each_isa([&](auto arch, const char* isa) {
            INFO("nq " << nq << " d " << d << " keys " << keys << " cap " << cap << " " << isa);
            Mat<float> out(nq, d);
            kernels::simd::AttendQuery{}(arch, q.data(), nq, d, segs, 2, scale, cap, out.data());
            CHECK(test::max_abs_diff(out, expected) <= 1e-5);
            // Each segment's partial softmax (o unnormalised, m and l), merged: the same.
            Mat<float> merged = Mat<float>::Zero(nq, d);
            std::vector<Mat<float>> o;
            std::vector<std::vector<float>> stats;
            for (const auto& seg : segs) {
              if (seg.count == 0) continue;
              o.emplace_back(nq, d), stats.emplace_back(2 * nq);
              kernels::simd::AttendQuery{}(arch, q.data(), nq, d, &seg, 1, scale, cap,
                                           o.back().data(), stats.back().data());
            }
            for (int64_t h = 0; h < nq; ++h) {
              float m = -std::numeric_limits<float>::infinity(), l = 0.f;
              for (const auto& st : stats) m = std::max(m, st[std::size_t(h)]);
              for (const auto& st : stats)
                l += std::exp(st[std::size_t(h)] - m) * st[std::size_t(nq + h)];
              for (std::size_t i = 0; i < o.size(); ++i)
                merged.row(h) += o[i].row(h) * (std::exp(stats[i][std::size_t(h)] - m) / l);
            }
            CHECK(test::max_abs_diff(merged, expected) <= 1e-5);
          });
        }
      }
}

// Runs f() with one thread, then with the default count (OpenMP's, the machine's cores).
template <typename F>
auto with_one_thread(F&& f) {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  auto result = f();
  omp_set_num_threads(threads);
  return result;
}

TEST_CASE("bidirectional panel attention equals softmax(scale·q·kᵀ)·v on every ISA",
          "[kernels][vision]") {
  const int64_t heads = 2;
  for (const int64_t d : {1, 7, 16, 72})
    for (const int64_t n : {1, 5, 64, 129, 300}) {  // key blocks of 128, panels of 32 or 64
      const Mat<float> q = random_matrix(n, heads * d, 1), k = random_matrix(n, heads * d, 2),
                       v = random_matrix(n, heads * d, 3);
      const float scale = 1.f / std::sqrt(float(d));
      Mat<float> expected(n, heads * d);
      for (int64_t h = 0; h < heads; ++h) {
        Mat<float> s = q.middleCols(h * d, d) * k.middleCols(h * d, d).transpose() * scale;
        plain::softmax_rows<float>(s);
        expected.middleCols(h * d, d) = s * v.middleCols(h * d, d);
      }
      for_each_isa([&](auto arch, const char* isa) {
        INFO("d " << d << " n " << n << " " << isa);
        const kernels::simd::GemmLayout layout = kernels::simd::GemmTokenLayout{}(arch);
        Mat<float> out = Mat<float>::Constant(n, heads * d, std::nanf(""));
        std::vector<float> scores(std::size_t(kernels::simd::kAttendKeyBlock * layout.panel)),
            acc(std::size_t(d * layout.panel));
        for (int64_t h = 0; h < heads; ++h) {
          Mat<float> vt = v.middleCols(h * d, d).transpose();  // [d, n] row-major
          for (int64_t t0 = 0; t0 < n; t0 += layout.panel) {
            const int64_t valid = std::min(layout.panel, n - t0);
            const int64_t width = (valid + layout.lanes - 1) / layout.lanes * layout.lanes;
            std::vector<float> qp(std::size_t(d * width), 0.f);
            for (int64_t i = 0; i < d; ++i)
              for (int64_t j = 0; j < valid; ++j)
                qp[std::size_t(i * width + j)] = q(t0 + j, h * d + i);
            kernels::simd::AttendPanel{}(arch, qp.data(), width, d, k.data() + h * d, heads * d,
                                         vt.data(), n, scale, scores.data(), acc.data(),
                                         out.data() + t0 * heads * d + h * d, heads * d, valid);
          }
        }
        CHECK(test::max_abs_diff(out, expected) <= 1e-5);  // every element written (NaN before)
      });
      // The threaded pass: the same within rounding, and bit-identical for any thread count.
      INFO("fast::attend_bidirectional d " << d << " n " << n);
      const Mat<float> fast = fast::attend_bidirectional(q, k, v, heads, d, scale);
      CHECK(test::max_abs_diff(fast, expected) <= 1e-5);
      CHECK(with_one_thread([&] { return fast::attend_bidirectional(q, k, v, heads, d, scale); }) ==
            fast);
    }
  // Sharp scores (one key dominating each query, then a later block overtaking it): the running
  // maximum and the correction of the earlier sums.
  const int64_t n = 300, d = 8;
  Mat<float> q = 20.f * random_matrix(n, d, 4), k = random_matrix(n, d, 5);
  const Mat<float> v = random_matrix(n, d, 6);
  k.row(n - 1) *= 10.f;
  Mat<float> s = q * k.transpose();
  // Scores in the hundreds: a few of their ulps (the two paths sum q·k in different orders) are
  // that much relative error in e^(s - m).
  const double bound = 1e-5 + 8 * double(s.cwiseAbs().maxCoeff()) *
                                  std::numeric_limits<float>::epsilon() * v.cwiseAbs().maxCoeff();
  plain::softmax_rows<float>(s);
  CHECK(test::max_abs_diff(fast::attend_bidirectional(q, k, v, 1, d, 1.f), s * v) <= bound);
}

TEST_CASE("LayerNorm kernel and its threaded pass equal plain::layer_norm on every ISA",
          "[kernels][vision]") {
  for (const auto& shape :
       std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 7}, {5, 32}, {70, 17}, {130, 1152}}) {
    const int64_t rows = shape.first, cols = shape.second;
    INFO(rows << " x " << cols);
    // Rows far from zero mean: the variance is of the centred values.
    const Mat<float> x = (3.f * random_matrix(rows, cols, 7)).array() + 100.f;
    const Mat<float> w = random_matrix(1, cols, 8), b = random_matrix(1, cols, 9);
    const Vec<float> wv = w.row(0).transpose(), bv = b.row(0).transpose();
    const Mat<float> expected = plain::layer_norm<float>(x, wv, bv, 1e-6);
    const double bound = 1e-5 * (expected.cwiseAbs().maxCoeff() + 1.0);
    for_each_isa([&](auto arch, const char* isa) {
      INFO(isa);
      Mat<float> y = Mat<float>::Constant(rows, cols, std::nanf(""));
      kernels::simd::LayerNormRows{}(arch, x.data(), rows, cols, cols, wv.data(), bv.data(), 1e-6f,
                                     y.data());
      CHECK(test::max_abs_diff(y, expected) <= bound);
    });
    const Mat<float> y = fast::layer_norm(x, wv, bv, 1e-6);
    CHECK(test::max_abs_diff(y, expected) <= bound);
    CHECK(with_one_thread([&] { return fast::layer_norm(x, wv, bv, 1e-6); }) == y);
  }
}

TEST_CASE("linear with bias: the GEMM adds the bias as it stores, on every path",
          "[kernels][vision]") {
  for (const DType dtype : {DType::BF16, DType::F32})
    for (const int64_t tokens : {1, 5, 64, 100})
      for (const auto inputs : {fast::MatmulInputs::F32, fast::MatmulInputs::Bf16}) {
        const int64_t out = 70, in = 258;
        INFO(dtype_name(dtype) << " tokens " << tokens << " bf16 inputs "
                               << (inputs == fast::MatmulInputs::Bf16));
        const RandomWeight w(out, in, dtype, 3), w2(out + 5, in, dtype, 4);
        const Mat<float> x = random_matrix(tokens, in, 5);
        const Mat<float> b = 10.f * random_matrix(2, out + 5, 6);
        const Vec<float> b1 = b.row(0).head(out).transpose(), b2 = b.row(1).transpose();
        const Mat<float> xr = inputs == fast::MatmulInputs::Bf16 && dtype == DType::BF16
                                  ? fast::rounded_to_bf16(x)
                                  : x;
        const Mat<float> e1 = plain::linear<float>(xr, w.view).rowwise() + b1.transpose();
        const Mat<float> e2 = plain::linear<float>(xr, w2.view).rowwise() + b2.transpose();
        const double bound =
            1e-5 * (xr.cwiseAbs() * w2.view.as<float>().cwiseAbs().transpose()).maxCoeff() + 1e-5;
        CHECK(test::max_abs_diff(fast::linear(x, w.view, inputs, b1.data()), e1) <= bound);
        const auto ys = fast::linear(x, std::array{&w.view, &w2.view}, inputs,
                                     std::array<const float*, 2>{b1.data(), b2.data()});
        CHECK(test::max_abs_diff(ys[0], e1) <= bound);
        CHECK(test::max_abs_diff(ys[1], e2) <= bound);
        // One of the two without a bias.
        const auto partly = fast::linear(x, std::array{&w.view, &w2.view}, inputs,
                                         std::array<const float*, 2>{nullptr, b2.data()});
        CHECK(test::max_abs_diff(partly[0], plain::linear<float>(xr, w.view)) <= bound);
        CHECK(partly[1] == ys[1]);
      }
}

TEST_CASE("fast::gelu_mlp equals fc2(gelu_tanh(fc1·x + b1)) + b2 on the plain path",
          "[kernels][vision]") {
  for (const DType dtype : {DType::BF16, DType::F32})
    for (const int64_t tokens : {1, 3, 4, 17, 100})
      for (const auto& shape : {std::pair<int64_t, int64_t>{8, 24}, {33, 70}, {72, 200}}) {
        const int64_t hidden = shape.first, intermediate = shape.second;
        INFO(dtype_name(dtype) << " tokens " << tokens << " hidden " << hidden << " intermediate "
                               << intermediate);
        const RandomWeight fc1(intermediate, hidden, dtype, 1), fc2(hidden, intermediate, dtype, 2);
        const Mat<float> b = random_matrix(2, intermediate, 3);
        const Vec<float> b1 = b.row(0).transpose(), b2 = b.row(1).head(hidden).transpose();
        const Mat<float> x = random_matrix(tokens, hidden, uint64_t(tokens));
        const Mat<float> act = plain::gelu_tanh<float>(
            Mat<float>(plain::linear<float>(x, fc1.view).rowwise() + b1.transpose()));
        const Mat<float> expected = plain::linear<float>(act, fc2.view).rowwise() + b2.transpose();
        const double bound =
            1e-5 * (act.cwiseAbs() * fc2.view.as<float>().cwiseAbs().transpose()).maxCoeff() + 1e-5;
        const Mat<float> y = fast::gelu_mlp(x, fc1.view, b1.data(), fc2.view, b2.data());
        CHECK(test::max_abs_diff(y, expected) <= bound);
        CHECK(with_one_thread([&] {
                return fast::gelu_mlp(x, fc1.view, b1.data(), fc2.view, b2.data());
              }) == y);
        // The plain GELU by the GeGLU kernel (a product with 1).
        CHECK(test::max_abs_diff(fast::gelu_tanh(x), plain::gelu_tanh<float>(x)) <=
              1e-6 * (x.cwiseAbs().maxCoeff() + 1));
      }
}

TEST_CASE("fast model: fixtures within 1e-4 and the plain path within 2e-5",
          "[kernels][fixtures]") {
  for (const auto& name : test::text_fixtures()) {
    const auto dir = test::fixture(name);
    const auto ck = Checkpoint::open(dir);
    const TextModel<float> fast(ck, Backend::Fast), plain(ck, Backend::Plain);
    for (int k = 0; k < test::prompt_count(dir); ++k) {
      INFO(name << " prompt " << k);
      const std::string p = test::prompt_prefix(k);
      const auto ids = test::read_ids(dir / (p + "input_ids.npy"));
      const Mat<float> logits = fast.forward(ids);
      CHECK(test::max_abs_diff(logits, read_npy(dir / (p + "logits.npy")).matrix<double>()) <=
            1e-4);
      CHECK(test::max_abs_diff(logits, plain.forward(ids)) <= 2e-5);
    }
  }
}

TEST_CASE("fast-bf16 model: near the plain path, decode equals prefill",
          "[kernels][bf16][fixtures]") {
  for (const auto& name : test::text_fixtures()) {
    const auto dir = test::fixture(name);
    const auto ck = Checkpoint::open(dir);
    const TextModel<float> bf16(ck, Backend::FastBf16), plain(ck, Backend::Plain);
    for (int k = 0; k < test::prompt_count(dir); ++k) {
      INFO(name << " prompt " << k);
      const auto ids = test::read_ids(dir / (test::prompt_prefix(k) + "input_ids.npy"));
      const Mat<float> logits = bf16.forward(ids), expected = plain.forward(ids);
      // Each product's inputs carry a relative rounding error of up to 2^-9: the logits move by
      // about that, relative to their scale, and by much more than f32 reassociation (2e-5).
      const double scale = expected.cwiseAbs().maxCoeff();
      const double diff = test::max_abs_diff(logits, expected);
      INFO("max |logit| " << scale << ", max |diff| " << diff);
      CHECK(diff <= 0.02 * scale);
      CHECK(diff > 1e-6 * scale);
      // Decode (GEMV, rounded inputs) after a prefill (GEMM) against the full pass: the paths sum
      // in different orders, and a value that lands near the midpoint of two bf16 numbers rounds
      // to either, so they agree only to the rounding's own scale (a wrong cache row or position
      // would move the logits by their whole scale).
      const int64_t n = int64_t(ids.size()), P = std::max<int64_t>(1, n / 2);
      KVCache<float> cache(ck.config().text, n);
      bf16.forward(std::span(ids).first(P), cache);
      for (int64_t t = P; t < n; ++t)
        CHECK(test::max_abs_diff(bf16.forward(std::span(ids).subspan(t, 1), cache),
                                 logits.row(t)) <= 0.02 * scale);
    }
  }
}

// The decode tests' model: tiny, a vocabulary of 300, one local layer of the given window, then
// one global layer.
static ModelConfig local_global_config(int64_t window) {
  ModelConfig cfg = preset("tiny");
  cfg.text.vocab_size = 300;
  cfg.text.sliding_window = window;
  cfg.text.num_hidden_layers = 2;
  cfg.text.layer_types = {LayerKind::Local, LayerKind::Global};
  return cfg;
}

TEST_CASE(
    "fast model: decode equals prefill across the window, images bidirectional, threads don't "
    "matter",
    "[kernels][decode]") {
  const ModelConfig cfg = local_global_config(5);
  const auto dir = test::scratch_dir("fast_decode");
  synthesize_checkpoint(cfg, dir, {.seed = 11});
  const auto ck = Checkpoint::open(dir);
  const TextModel<float> fast(ck, Backend::Fast), plain(ck, Backend::Plain);
  std::vector<int32_t> ids(23);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 53 + 7) % 300);
  // Tokens 8..11 and 15..17 play two images: bidirectional within each.
  std::vector<int32_t> groups(ids.size(), -1);
  for (int i = 8; i < 12; ++i) groups[i] = 0;
  for (int i = 15; i < 18; ++i) groups[i] = 1;
  auto run = [&](const TextModel<float>& m) {
    KVCache<float> cache(cfg.text, 23);
    Mat<float> x = m.embed(ids);
    return Mat<float>(m.forward_embeddings(x, groups, cache, nullptr));
  };
  const Mat<float> expected = run(plain);
  CHECK(test::max_abs_diff(run(fast), expected) <= 2e-5);

  const Mat<float> full = fast.forward(ids);
  for (const int64_t P : {1, 4, 6, 12}) {
    INFO("prefill " << P);
    KVCache<float> cache(cfg.text, 23);
    fast.forward(std::span(ids).first(P), cache);
    for (int64_t t = P; t < 23; ++t)
      CHECK(test::max_abs_diff(fast.forward(std::span(ids).subspan(t, 1), cache), full.row(t)) <=
            1e-5);
  }

  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const Mat<float> one = fast.forward(ids);
  omp_set_num_threads(2);
  const Mat<float> two = fast.forward(ids);
  omp_set_num_threads(threads);
  CHECK(test::max_abs_diff(one, two) == 0.0);  // no reduction is split across threads
}

TEST_CASE("fast decode: keys in spans, merged in order, near the plain path for any threads",
          "[kernels][decode]") {
  // Several spans of keys (detail::kKeySpan) per decode step, and a local layer's ring wrapped.
  const ModelConfig cfg = local_global_config(3 * detail::kKeySpan / 2);
  const auto dir = test::scratch_dir("fast_decode_spans");
  synthesize_checkpoint(cfg, dir, {.seed = 5});
  const auto ck = Checkpoint::open(dir);
  const TextModel<float> fast(ck, Backend::Fast), plain(ck, Backend::Plain);
  const int64_t n = 4 * detail::kKeySpan + 5, P = detail::kKeySpan / 2;
  std::vector<int32_t> ids(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 53 + 7) % 300);
  const Mat<float> expected = plain.forward(ids);
  const auto decode = [&] {
    KVCache<float> cache(cfg.text, n);
    fast.forward(std::span(ids).first(P), cache);
    Mat<float> logits(n - P, cfg.text.vocab_size);
    for (int64_t t = P; t < n; ++t)
      logits.row(t - P) = fast.forward(std::span(ids).subspan(t, 1), cache);
    return logits;
  };
  const int threads = omp_get_max_threads();
  omp_set_num_threads(2);
  const Mat<float> two = decode();
  omp_set_num_threads(1);
  const Mat<float> one = decode();
  omp_set_num_threads(threads);
  CHECK(test::max_abs_diff(two, expected.bottomRows(n - P)) <= 2e-5);
  CHECK(test::max_abs_diff(one, two) == 0.0);  // the spans are fixed, not one per thread
}

TEST_CASE("Team: held threads run every body and split its loops; work's exception is rethrown",
          "[kernels][decode]") {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(2);
  constexpr int kBodies = 300, kItems = 1000;
  std::vector<int> hits(kItems, 0);
  std::vector<int> ran;  // threads that ran each body
  int size_inside = 0, nested_size = 0;
  const auto body = [&] {
    std::atomic<int> count{0};
    fast::Team::parallel([&] {
      count.fetch_add(1);
#pragma omp for schedule(dynamic) nowait
      for (int i = 0; i < kItems; ++i) hits[std::size_t(i)] += 1;  // each item once per body
    });
    ran.push_back(count.load());
  };
  fast::Team::hold([&] {
    size_inside = fast::Team::size();
    for (int b = 0; b < kBodies; ++b) body();
    // Long enough for the held thread to stop spinning and sleep: the next body wakes it.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    body();
    fast::Team::hold([&] { nested_size = fast::Team::size(); });  // already held: runs as it is
  });
  CHECK(size_inside == 2);
  CHECK(nested_size == 2);
  CHECK(std::count(ran.begin(), ran.end(), 2) == kBodies + 1);
  CHECK(std::count(hits.begin(), hits.end(), kBodies + 1) == kItems);
  // Outside hold, a body is a parallel region of its own.
  body();
  CHECK(ran.back() == 2);
  CHECK(std::count(hits.begin(), hits.end(), kBodies + 2) == kItems);

  CHECK_THROWS_AS(fast::Team::hold([] { throw InvalidArgument("ids", "empty sequence"); }),
                  InvalidArgument);
  fast::Team::hold(body);  // the region of the throw ended: a new one holds
  CHECK(ran.back() == 2);
  omp_set_num_threads(threads);
}

// ---- Block-quantized weights (quant.hpp) ----

TEST_CASE("quant: Q8_0 and Q4_0 blocks decode as ggml defines them", "[kernels][quant]") {
  // Q8_0: f16 scale 0.5 (0x3800), then int8 q; x = d * q.
  std::byte q8[34];
  const uint16_t half_05 = 0x3800;
  std::memcpy(q8, &half_05, 2);
  for (int j = 0; j < 32; ++j) q8[2 + j] = std::byte(uint8_t(int8_t(j * 8 - 128)));
  float out[32];
  quant::dequantize(quant::Type::Q8_0, q8, 32, out);
  for (int j = 0; j < 32; ++j) CHECK(out[j] == 0.5f * float(j * 8 - 128));
  // Q4_0: f16 scale -0.25 (0xB400); byte j holds element j (low nibble) and j + 16 (high); x = d *
  // (q - 8).
  std::byte q4[18];
  const uint16_t half_m025 = 0xB400;
  std::memcpy(q4, &half_m025, 2);
  for (int j = 0; j < 16; ++j) q4[2 + j] = std::byte(uint8_t(j | ((15 - j) << 4)));
  quant::dequantize(quant::Type::Q4_0, q4, 32, out);
  for (int j = 0; j < 16; ++j) {
    CHECK(out[j] == -0.25f * float(j - 8));
    CHECK(out[j + 16] == -0.25f * float(7 - j));
  }
  // f16 scales by their definition, subnormals and infinities included.
  const std::pair<uint16_t, float> halves[] = {
      {0x0001, 0x1p-24f}, {0x8400, -0x1p-14f}, {0x7bff, 65504.f}, {0x7c00, INFINITY}};
  for (const auto& [bits, value] : halves) {
    std::byte b[2];
    std::memcpy(b, &bits, 2);
    CHECK(quant::f16(b) == value);
  }
}

namespace {
// n normal floats, some blocks all zero and one constant (the degenerate scales).
std::vector<float> quant_test_values(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(static_cast<std::size_t>(n));
  for (float& v : x) v = normal(rng);
  if (n >= 512) {
    std::fill(x.begin() + 256, x.begin() + 288, 0.f);
    std::fill(x.begin() + 288, x.begin() + 320, 0.75f);
  }
  return x;
}

// A quantized [rows, cols] matrix made from normal floats.
struct QuantWeight {
  std::vector<std::byte> bytes;
  TensorView view;
  QuantWeight(quant::Type t, int64_t rows, int64_t cols, uint64_t seed) {
    const auto x = quant_test_values(rows * cols, seed);
    bytes.resize(std::size_t(rows * quant::row_bytes(t, cols)));
    quant::quantize(t, x.data(), rows * cols, bytes.data());
    view = TensorView{.name = std::string("w.") + quant::name(t),
                      .dtype = dtype_of(t),
                      .shape = {rows, cols},
                      .data = bytes.data()};
  }
};
}  // namespace

TEST_CASE("quant: every type round-trips within its resolution", "[kernels][quant]") {
  // RMS error relative to the values' RMS (1 here), the bound a few times what each type's levels
  // give for normal data: a wrong nibble, bit or scale position errs by the values' whole scale.
  const std::pair<quant::Type, double> bounds[] = {
      {quant::Type::Q8_0, 0.01}, {quant::Type::Q4_0, 0.15}, {quant::Type::Q4_1, 0.15},
      {quant::Type::Q5_0, 0.07}, {quant::Type::Q5_1, 0.07}, {quant::Type::Q4_K, 0.15},
      {quant::Type::Q5_K, 0.07}, {quant::Type::Q6_K, 0.04}};
  for (const auto& [t, bound] : bounds) {
    INFO(quant::name(t));
    const int64_t n = 1024;
    const auto x = quant_test_values(n, 11);
    std::vector<std::byte> bytes(std::size_t(quant::row_bytes(t, n)));
    quant::quantize(t, x.data(), n, bytes.data());
    std::vector<float> y(static_cast<std::size_t>(n));
    quant::dequantize(t, bytes.data(), n, y.data());
    double se = 0;
    for (int64_t i = 0; i < n; ++i) se += std::pow(double(x[i]) - y[i], 2);
    CHECK(std::sqrt(se / double(n)) <= bound);
    CHECK(std::sqrt(se / double(n)) > 0);  // (normal values are never all exact)
    // The zero block decodes to zeros, the constant one to its value within its resolution.
    for (int64_t i = 256; i < 288; ++i) CHECK(y[i] == 0.f);
    for (int64_t i = 288; i < 320; ++i) CHECK(std::fabs(y[i] - 0.75f) <= 0.75f * bound);
    // One element by at(), and whole rows by rows_as(), decode the same way.
    const TensorView v{
        .name = "v", .dtype = dtype_of(t), .shape = {4, n / 4}, .data = bytes.data()};
    CHECK(v.at<float>(300) == y[300]);
    CHECK(v.rows_as<float>(2, 1)(0, 7) == y[std::size_t(2 * n / 4 + 7)]);
    CHECK(v.nbytes() == bytes.size());
  }
}

TEST_CASE("quant: activations are blocks of 32 int8 with one scale", "[kernels][quant]") {
  const auto x = quant_test_values(64, 3);
  const quant::Activations a = quant::quantize_activations(x.data(), 1, 64, 64);
  for (int blk = 0; blk < 2; ++blk) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * blk + j]));
    CHECK(a.d[blk] == amax / 127.0f);
    for (int j = 0; j < 32; ++j) {
      CHECK(std::abs(a.q[32 * blk + j]) <= 127);
      CHECK(std::fabs(a.d[blk] * a.q[32 * blk + j] - x[32 * blk + j]) <= a.d[blk] * 0.5f + 1e-6f);
    }
    CHECK(a.s[2 * blk] + a.s[2 * blk + 1] ==
          std::accumulate(a.q.begin() + 32 * blk, a.q.begin() + 32 * blk + 32, 0));
  }
}

TEST_CASE("quant: a NaN or an infinity in the activations makes its products NaN, on every path",
          "[kernels][quant]") {
  for (const float bad : {NAN, INFINITY, -INFINITY}) {
    INFO(bad);
    auto x = quant_test_values(96, 4);
    x[40] = bad;  // in the second block of 32
    const quant::Activations a = quant::quantize_activations(x.data(), 1, 96, 96);
    CHECK(std::isnan(a.d[1]));
    CHECK(std::isfinite(a.d[0]));
    CHECK(std::isfinite(a.d[2]));
    for (int j = 32; j < 64; ++j) CHECK(a.q[j] == 0);
    // Through a quantized matrix: the token's outputs are NaN, on the plain and the fast path
    // (decode with 2 tokens, prefill with 6).
    const QuantWeight w(quant::Type::Q8_0, 8, 96, 2);
    for (const int64_t tokens : {2, 6}) {
      Mat<float> xm(tokens, 96);
      xm.setConstant(0.5f);
      xm.row(0) = Eigen::Map<const Eigen::RowVectorXf>(x.data(), 96);
      for (const Mat<float>& y : {plain::linear<float>(xm, w.view), fast::linear(xm, w.view)}) {
        CHECK(y.row(0).array().isNaN().all());
        CHECK(y.bottomRows(tokens - 1).array().isFinite().all());
      }
    }
  }
}

TEST_CASE("quant: the AVX-512 activation quantizer gives the definition's q, d and s",
          "[kernels][quant]") {
  if (!fast::vnni_available()) {
    WARN("no AVX512-VNNI on this CPU: the kernel is not used here");
    return;
  }
  // Blocks of 32: random values over eight decades, then the edge cases one block each: all
  // zero, all -0, subnormals only, exact ties (amax = 127, so id = 1 and x·id = k + 0.5 rounds to
  // even), the largest floats, and a NaN, +∞ or -∞ among finite values.
  const int64_t in = 32 * 40;
  std::vector<float> x = quant_test_values(in, 11);
  std::mt19937_64 rng(5);
  for (float& v : x) v *= std::pow(10.f, float(rng() % 9) - 4.f);
  float* b = x.data() + 32 * 30;
  for (int j = 0; j < 32; ++j) {
    b[j] = 0.f, b[32 + j] = -0.f, b[64 + j] = (j % 2 ? -1 : 1) * 1e-40f * float(j + 1);
    b[96 + j] = j == 0 ? 127.f : float(j % 7) - 3.5f;
    b[128 + j] = (j % 2 ? -1 : 1) * 3.4e38f / float(j + 1);
  }
  b[160 + 3] = NAN, b[192 + 31] = INFINITY, b[224] = -INFINITY;
  // Through quantize_activation_blocks, which hands each quantizer the row's arrays.
  quant::Activations def, simd;
  quant::resize_activations(def, 1, in);
  quant::resize_activations(simd, 1, in);
  quant::quantize_activation_blocks(x.data(), 0, 0, in / 32, def);
  quant::quantize_activation_blocks(x.data(), 0, 0, in / 32, simd, kernels::quantdot::quantize_row);
  const std::vector<int8_t>& q_def = def.q;
  const std::vector<float>& d_def = def.d;
  const std::vector<int32_t>& s_def = def.s;
  CHECK(simd.q == q_def);
  CHECK(simd.s == s_def);
  const auto bits = [](float v) { return std::bit_cast<uint32_t>(v); };
  for (int64_t blk = 0; blk < in / 32; ++blk) {
    INFO("block " << blk);
    const auto b = std::size_t(blk);
    CHECK(bits(simd.d[b]) == bits(d_def[b]));
    CHECK(bits(simd.e32[b]) == bits(def.e32[b]));
    CHECK(bits(simd.e16[2 * b]) == bits(def.e16[2 * b]));
    CHECK(bits(simd.e16[2 * b + 1]) == bits(def.e16[2 * b + 1]));
    // The offsets are d times the block's sums (a NaN block's: NaN).
    CHECK(bits(def.e32[b]) == bits(d_def[b] * float(s_def[2 * b] + s_def[2 * b + 1])));
    CHECK(bits(def.e16[2 * b + 1]) == bits(d_def[b] * float(s_def[2 * b + 1])));
  }
  CHECK(std::isnan(d_def[35]));
  CHECK(std::isnan(d_def[36]));
  CHECK(std::isnan(d_def[37]));
  // Block 32, subnormals only: 127/amax overflows, so the block is scaled first (q is still
  // round(127·x/amax)).
  CHECK(q_def[32 * 32] == 4);
  CHECK(q_def[32 * 32 + 31] == -127);
  // The ties of block 33 (x·id = x there): -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -3.5 to even.
  const std::vector<int8_t> ties(q_def.begin() + 32 * 33 + 1, q_def.begin() + 32 * 33 + 8);
  CHECK(ties == std::vector<int8_t>{-2, -2, 0, 0, 2, 2, -4});
}

TEST_CASE("quantized products equal dequantize-then-multiply on every ISA and the VNNI kernel",
          "[kernels][quant]") {
  for (const quant::Type t : quant::kAllTypes)
    // 37 rows: the prefill GEMM's two panels, then one of 5 rows; 23: two panels, the second of 7.
    for (const int64_t rows : {37, 23}) {
      // 7 blocks of 32: the decode kernel's pairs of pairs, a pair and an odd block.
      const int64_t in = quant::layout(t).block_elements == 256 ? 512 : 224;
      const QuantWeight w(t, rows, in, 5 + uint64_t(t));
      for (const int64_t tokens : {1, 3, 4, 6, 70}) {
        INFO(quant::name(t) << ", " << rows << " rows, " << tokens << " tokens");
        const Mat<float> x = random_matrix(tokens, in, 17 + uint64_t(tokens));
        const Mat<float> expected = plain::linear<float>(x, w.view);  // [tokens, rows]
        const double tol = 1e-5 * (expected.cwiseAbs().maxCoeff() + 1);
        const quant::Activations xq = quant::quantize_activations(x.data(), tokens, in, in);
        const auto xv = kernels::simd::QuantX::of(xq, 0);
        std::vector<uint8_t> q(static_cast<std::size_t>(kernels::quantdot::scratch_bytes(in)));
        std::vector<float> ab(static_cast<std::size_t>(kernels::quantdot::scratch_floats(in)));
        const auto check = [&](auto&& run, const std::string& isa) {
          INFO(isa);
          Mat<float> y(tokens, rows);
          y.setConstant(NAN);
          run(y.data());
          CHECK(test::max_abs_diff(y, expected) <= tol);
        };
        for_each_isa([&](auto arch, const char* name) {
          check(
              [&](float* y) {
                kernels::simd::QuantRows{}(arch, t, w.bytes.data(), rows, in, xv, tokens, y, rows,
                                           q.data(), ab.data());
              },
              name);
        });
        if (fast::vnni_available())
          check(
              [&](float* y) {
                kernels::quantdot::rows(t, w.bytes.data(), rows, in, xv, tokens, y, rows, q.data(),
                                        ab.data());
              },
              "avx512vnni");
        // Through fast::linear (threads, row blocks, token chunks), bit-identical on one thread.
        const Mat<float> y = fast::linear(x, w.view);
        CHECK(test::max_abs_diff(y, expected) <= tol);
        CHECK(with_one_thread([&] { return fast::linear(x, w.view); }) == y);
      }
    }
}

// Rows of kernels::quantdot::kWideRows or more ask twice as far ahead in decode (quantdot.hpp,
// decode_ahead). A thread's run may begin at any panel (fast::detail::RowShares), so each panel's
// values must be the same, bit for bit, in one call over all the rows as in a call of its own, and
// they must be the product's.
TEST_CASE("decode's wide rows: the values of one panel at a time, and the product's",
          "[kernels][quant]") {
  if (!fast::vnni_available()) return;  // (no panel kernels to compare)
  for (const quant::Type t : quant::kAllTypes) {
    if (!quant::interleavable(t) || quant::layout(t).block_elements != 32) continue;
    INFO(quant::name(t));
    const int64_t rows = 48, in = 4096;  // three panels; kWideRows elements
    const int64_t stride = quant::row_bytes(t, in);
    const QuantWeight w(t, rows, in, 31 + uint64_t(t));
    std::vector<std::byte> bytes = w.bytes;
    for (int64_t p = 0; p < rows; p += quant::kPanelRows)
      quant::interleave_panel(t, w.bytes.data() + p * stride, in, bytes.data() + p * stride);
    const Mat<float> x = random_matrix(1, in, 37);
    const quant::Activations xq = quant::quantize_activations(x.data(), 1, in, in);
    const auto xt = kernels::simd::QuantX::of(xq, 0);
    std::vector<float> together(std::size_t(rows), NAN), alone(std::size_t(rows), NAN);
    kernels::quantdot::panels(t, bytes.data(), rows, in, xt, 1, together.data(), rows);
    for (int64_t p = 0; p < rows; p += quant::kPanelRows)
      kernels::quantdot::panels(t, bytes.data() + p * stride, quant::kPanelRows, in, xt, 1,
                                alone.data() + p, rows);
    CHECK(std::memcmp(together.data(), alone.data(), together.size() * sizeof(float)) == 0);
    const Mat<float> expected = plain::linear<float>(x, w.view);
    const Eigen::Map<const Mat<float>> y(together.data(), 1, rows);
    CHECK(test::max_abs_diff(y, expected) <= 1e-5 * (expected.cwiseAbs().maxCoeff() + 1));
  }
}

TEST_CASE("interleaved rows: the file's bytes reordered, decoded and multiplied as in file order",
          "[kernels][quant]") {
  for (const quant::Type t : quant::kAllTypes) {
    if (!quant::interleavable(t)) {  // refused, not scrambled
      const QuantWeight w(t, 16, 256, 1);
      std::vector<std::byte> panel(w.bytes.size());
      CHECK_THROWS_WITH(quant::interleave_panel(t, w.bytes.data(), 256, panel.data()),
                        Catch::Contains("not interleaved"));
      continue;
    }
    // 37 rows: two panels and 5 rows in file order; 48: three panels.
    for (const int64_t rows : {37, 48}) {
      // Seven blocks of 32, or three of 256.
      const int64_t in = quant::layout(t).block_elements == 256 ? 768 : 224;
      const int64_t stride = quant::row_bytes(t, in);
      const QuantWeight w(t, rows, in, 11 + uint64_t(t));
      std::vector<std::byte> bytes = w.bytes;
      for (int64_t p = 0; p < quant::interleaved_rows(rows); p += quant::kPanelRows)
        quant::interleave_panel(t, w.bytes.data() + p * stride, in, bytes.data() + p * stride);
      INFO(quant::name(t) << ", " << rows << " rows");
      // A reordering: the same bytes, another order, and back exactly.
      CHECK(bytes != w.bytes);
      std::vector<std::byte> sorted_a = bytes, sorted_b = w.bytes;
      std::sort(sorted_a.begin(), sorted_a.end());
      std::sort(sorted_b.begin(), sorted_b.end());
      CHECK(sorted_a == sorted_b);
      std::vector<std::byte> back = bytes;
      for (int64_t p = 0; p < quant::interleaved_rows(rows); p += quant::kPanelRows)
        quant::deinterleave_panel(t, bytes.data() + p * stride, in, back.data() + p * stride);
      CHECK(back == w.bytes);
      // Row 17 is row 1 of the second panel: its 4-byte units 64 bytes apart there.
      std::vector<std::byte> row(static_cast<std::size_t>(stride));
      CHECK(std::memcmp(quant::interleaved_row(t, bytes.data(), rows, in, 17, row.data()),
                        w.bytes.data() + 17 * stride, std::size_t(stride)) == 0);
      TensorView view = w.view;
      view.data = bytes.data();
      view.interleaved = true;
      // The values, element by element and by rows, exactly those of the file order.
      CHECK(view.as<float>() == w.view.as<float>());
      for (const int64_t i : {int64_t(0), 17 * in + 33, rows * in - 1})
        CHECK(view.at<float>(i) == w.view.at<float>(i));
      // Products: the panel kernels (decode's and prefill's), the others on the rows put back in
      // file order.
      for (const int64_t tokens : {1, 2, 3, 4, 6, 70}) {
        INFO(tokens << " tokens");
        const Mat<float> x = random_matrix(tokens, in, 23 + uint64_t(tokens));
        const Mat<float> expected = plain::linear<float>(x, w.view);
        const double tol = 1e-5 * (expected.cwiseAbs().maxCoeff() + 1);
        CHECK(test::max_abs_diff(plain::linear<float>(x, view), expected) == 0);
        if (fast::vnni_available() && tokens <= kernels::quantdot::kFusedTokens) {
          const quant::Activations xq = quant::quantize_activations(x.data(), tokens, in, in);
          Mat<float> y(tokens, rows);
          y.setConstant(NAN);
          const int64_t panel_rows = quant::interleaved_rows(rows);
          kernels::quantdot::panels(t, bytes.data(), panel_rows, in,
                                    kernels::simd::QuantX::of(xq, 0), tokens, y.data(), rows);
          CHECK(test::max_abs_diff(y.leftCols(panel_rows), expected.leftCols(panel_rows)) <= tol);
          CHECK(std::isnan(y(0, rows - 1)) == (panel_rows < rows));  // nothing written past them
        }
        if (fast::vnni_available() && tokens > kernels::quantdot::kFusedTokens) {
          // Prefill's GEMM on the panels as they lie: packed into what the file order packs to.
          const quant::Activations xq = quant::quantize_activations(x.data(), tokens, in, in);
          std::vector<uint8_t> q(std::size_t(kernels::quantdot::scratch_bytes(in)));
          std::vector<float> ab(std::size_t(kernels::quantdot::scratch_floats(in)));
          Mat<float> y(tokens, rows), file_order(tokens, rows);
          y.setConstant(NAN);
          const int64_t panel_rows = quant::interleaved_rows(rows);
          const auto xt = kernels::simd::QuantX::of(xq, 0);
          kernels::quantdot::panels_gemm(t, bytes.data(), panel_rows, in, xt, tokens, y.data(),
                                         rows, q.data(), ab.data());
          kernels::quantdot::rows(t, w.bytes.data(), panel_rows, in, xt, tokens, file_order.data(),
                                  rows, q.data(), ab.data());
          CHECK(y.leftCols(panel_rows) == file_order.leftCols(panel_rows));
          CHECK(std::isnan(y(0, rows - 1)) == (panel_rows < rows));  // nothing written past them
        }
        const Mat<float> y = fast::linear(x, view);
        CHECK(test::max_abs_diff(y, expected) <= tol);
        CHECK(with_one_thread([&] { return fast::linear(x, view); }) == y);
        if (tokens > kernels::quantdot::kFusedTokens)  // prefill: the same sums as in file order
          CHECK(y == fast::linear(x, w.view));
      }
    }
  }
}

TEST_CASE("quantized products: mixed types in one pass, biases, and the activations' rounding",
          "[kernels][quant]") {
  const int64_t in = 256;
  const QuantWeight a(quant::Type::Q4_K, 40, in, 1), b(quant::Type::Q6_K, 24, in, 2),
      c(quant::Type::Q8_0, 8, in, 3);
  const std::vector<float> bias(24, 0.5f);
  const TensorView* views[] = {&a.view, &b.view, &c.view};
  // Decode (1 and 4 tokens: runs of rows that cross from one matrix into the next, 40 rows not a
  // multiple of the 16-row unit) and prefill (5), bit-identical for any thread count.
  for (const int64_t tokens : {1, 4, 5}) {
    INFO(tokens << " tokens");
    const Mat<float> x = random_matrix(tokens, in, 9);
    const auto product = [&] {
      return fast::linear(x, std::array{&a.view, &b.view, &c.view}, fast::MatmulInputs::F32,
                          std::array<const float*, 3>{nullptr, bias.data(), nullptr});
    };
    const auto ys = product();
    for (int m = 0; m < 3; ++m) {
      Mat<float> expected = plain::linear<float>(x, *views[m]);
      if (m == 1) expected.array() += 0.5f;
      CHECK(test::max_abs_diff(ys[std::size_t(m)], expected) <=
            1e-5 * (expected.cwiseAbs().maxCoeff() + 1));
    }
    CHECK(with_one_thread(product) == ys);
  }
  // The activations' quantization is part of the product: against f32 activations times the
  // decoded weights the result differs, by about the int8 rounding (2^-8 of each block's range).
  const Mat<float> x = random_matrix(5, in, 9);
  const auto ys = fast::linear(x, std::array{&a.view, &b.view, &c.view}, fast::MatmulInputs::F32,
                               std::array<const float*, 3>{nullptr, bias.data(), nullptr});
  const Mat<float> decoded = a.view.as<float>();
  const Mat<float> unquantized = x * decoded.transpose();
  const double scale = unquantized.cwiseAbs().maxCoeff(),
               diff = test::max_abs_diff(ys[0], unquantized);
  CHECK(diff > 1e-6 * scale);
  CHECK(diff < 0.05 * scale);
}

TEST_CASE(
    "quantized GGUF models: fast equals plain, decode near prefill, observing changes nothing",
    "[kernels][quant][gguf]") {
  const auto dir = test::fixture("text-tiny-a");
  const auto ck = Checkpoint::open(dir);
  const TextModel<float> reference(ck, Backend::Plain);
  const auto ids = test::read_ids(dir / (test::prompt_prefix(0) + "input_ids.npy"));
  // The fixture's longest prompt: a prefill of several tokens (the GEMM), then decode steps.
  const auto long_ids =
      test::read_ids(dir / (test::prompt_prefix(test::prompt_count(dir) - 1) + "input_ids.npy"));
  REQUIRE(long_ids.size() > 8);
  const Mat<float> f32_logits = reference.forward(ids);
  const double scale = f32_logits.cwiseAbs().maxCoeff();
  const auto out = test::scratch_dir("quant_models");
  // The bound on the distance from the f32 model: what each file type's resolution allows.
  const std::pair<gguf::FileType, double> cases[] = {{gguf::FileType::Q8_0, 0.02},
                                                     {gguf::FileType::Q4_0, 0.25},
                                                     {gguf::FileType::Q5_1, 0.12},
                                                     {gguf::FileType::Q4_K_M, 0.25},
                                                     {gguf::FileType::Q6_K, 0.06}};
  for (const auto& [ft, bound] : cases) {
    INFO("file type " << int(ft));
    const auto path = out / "m.gguf";
    gguf::write_gguf(ck.config(), ck.weights(), path, ft);
    const auto q = Checkpoint::open(path);
    bool any_quantized = false;
    for (const auto& [name, view] : q.store().tensors()) any_quantized |= is_quantized(view.dtype);
    CHECK(any_quantized);
    const TextModel<float> fast(q, Backend::Fast), plain(q, Backend::Plain);
    const Mat<float> logits = fast.forward(ids);
    CHECK(test::max_abs_diff(logits, plain.forward(ids)) <= 2e-5 * scale);
    const double diff = test::max_abs_diff(logits, f32_logits);
    INFO("max |diff| from the f32 model " << diff << " of " << scale);
    CHECK(diff <= bound * scale);
    CHECK(diff > 1e-5 * scale);
    // Read into memory of its own, where the CPU runs the int8 kernels, the matrices of the types
    // with a panel kernel have their rows interleaved: the same values (the plain path's logits
    // exactly), the same products up to the order of the sums.
    const auto copied = Checkpoint::open(path, Residency::HugePages);
    bool interleavable = false, interleaved = false;
    for (const auto& [name, view] : copied.store().tensors()) {
      CHECK_FALSE(q.store().tensors().at(name).interleaved);  // (mapped: never)
      interleavable |= view.shape.size() == 2 && is_quantized(view.dtype) &&
                       quant::interleavable(quant_type(view.dtype)) && view.rows() >= 16;
      interleaved |= view.interleaved;
    }
    CHECK(interleaved == (interleavable && fast::vnni_available()));
    const TextModel<float> fast_copy(copied, Backend::Fast), plain_copy(copied, Backend::Plain);
    CHECK(plain_copy.forward(ids) == plain.forward(ids));
    CHECK(test::max_abs_diff(fast_copy.forward(ids), logits) <= 2e-5 * scale);
    // The long prompt prefilled whole, and half of it then decoded a token at a time: the two
    // orders of sums round some activations to other integers, so the logits agree within the
    // file type's resolution, not to the float rounding. Observing every site runs the MLP
    // unfused (GeGLU in a pass of its own, not inside down's quantization) and changes no number.
    const int64_t n = int64_t(long_ids.size()), P = n / 2;
    for (const TextModel<float>* model : {&fast, &fast_copy}) {
      const Mat<float> prefilled = model->forward(long_ids);
      const auto decode = [&](Observer<float>* obs) {
        KVCache<float> cache(q.config().text, n);
        model->forward(std::span(long_ids).first(P), cache, LogitRows::none());
        Mat<float> steps(n - P, prefilled.cols());
        for (int64_t t = P; t < n; ++t)
          steps.row(t - P) = obs ? model->forward(std::span(long_ids).subspan(t, 1), cache, *obs)
                                 : model->forward(std::span(long_ids).subspan(t, 1), cache);
        return steps;
      };
      const Mat<float> steps = decode(nullptr);
      CHECK(test::max_abs_diff(steps, prefilled.bottomRows(n - P)) <= bound * scale);
      Capture<float> everything(SiteSet::all());
      CHECK(decode(&everything) == steps);
      CHECK(model->forward(long_ids, everything) == prefilled);
    }
  }
}

TEST_CASE("synth straight to GGUF equals converting the bf16 checkpoint synth writes",
          "[kernels][quant][gguf]") {
  const auto out = test::scratch_dir("synth_gguf");
  const ModelConfig cfg = preset("tiny");
  synthesize_checkpoint(cfg, out / "dir", {.seed = 3});
  const auto direct = out / "direct.gguf", converted = out / "converted.gguf";
  synthesize_gguf(cfg, direct, gguf::FileType::Q4_K_M, {.seed = 3});
  gguf::write_gguf(cfg, Checkpoint::open(out / "dir").weights(), converted, gguf::FileType::Q4_K_M);
  const gguf::File a(direct), b(converted);
  REQUIRE(a.tensors().size() == b.tensors().size());
  std::set<std::string> types;
  for (std::size_t i = 0; i < a.tensors().size(); ++i) {
    const auto& x = a.tensors()[i];
    const auto& y = b.tensors()[i];
    INFO(x.name);
    CHECK(x.name == y.name);
    CHECK(x.type == y.type);
    REQUIRE(x.nbytes == y.nbytes);
    CHECK(std::memcmp(x.data, y.data, x.nbytes) == 0);
    types.insert(gguf::type_name(x.type));
  }
  // The tiny preset's rows mix whole K blocks and fallbacks, as a 1B-shaped Q4_K_M file does.
  CHECK(types.count("Q4_K"));
  CHECK(types.count("Q6_K"));
  CHECK(types.count("F32"));
}
